"""Moved to :mod:`src.training.callbacks`; this old path keeps old imports working."""
from src.training import callbacks as _moved
from src.training.callbacks import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)
