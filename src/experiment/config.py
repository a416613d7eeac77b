"""Moved to :mod:`src.training.config`; this old path keeps old imports working."""
from src.training import config as _moved
from src.training.config import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)
