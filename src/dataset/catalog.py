"""Moved to :mod:`src.download.catalog`; this old path keeps old imports working."""
from src.download import catalog as _moved
from src.download.catalog import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)
