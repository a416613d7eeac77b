"""Moved to :mod:`src.training.teach`; this old path keeps old imports working."""
from src.training import teach as _moved
from src.training.teach import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)
