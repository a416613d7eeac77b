"""Moved to :mod:`src.studies.quantize`; this old path keeps ``python -m src.experiment.quantize`` and old imports working."""
from src.studies import quantize as _moved
from src.studies.quantize import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
