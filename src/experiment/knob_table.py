"""Moved to :mod:`src.bench.knob_table`; this old path keeps old imports working."""
from src.bench import knob_table as _moved
from src.bench.knob_table import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)
