"""Moved to :mod:`src.training.train`; this old path keeps ``python -m src.experiment.train`` and old imports working."""
from src.training import train as _moved
from src.training.train import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
