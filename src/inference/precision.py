"""Moved to :mod:`src.models.precision` (a network in, a network out); this old path keeps old imports working."""
from src.models import precision as _moved
from src.models.precision import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)
