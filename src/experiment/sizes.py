"""Moved to :mod:`src.studies.sizes`; this old path keeps ``python -m src.experiment.sizes`` and old imports working."""
from src.studies import sizes as _moved
from src.studies.sizes import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
