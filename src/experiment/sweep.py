"""Moved to :mod:`src.studies.sweep`; this old path keeps ``python -m src.experiment.sweep`` and old imports working."""
from src.studies import sweep as _moved
from src.studies.sweep import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
