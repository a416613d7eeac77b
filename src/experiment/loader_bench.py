"""Moved to :mod:`src.bench.loader`; this old path keeps ``python -m src.experiment.loader_bench`` and old imports working."""
from src.bench import loader as _moved
from src.bench.loader import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
