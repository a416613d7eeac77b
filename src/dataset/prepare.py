"""Moved to :mod:`src.download.prepare`; this old path keeps ``python -m src.dataset.prepare`` and old imports working."""
from src.download import prepare as _moved
from src.download.prepare import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
