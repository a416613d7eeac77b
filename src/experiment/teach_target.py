"""Moved to :mod:`src.studies.teach_target`; this old path keeps ``python -m src.experiment.teach_target`` and old imports working."""
from src.studies import teach_target as _moved
from src.studies.teach_target import *  # noqa: F401,F403


def __getattr__(name: str):  # every other name, private ones too, from the new home
    return getattr(_moved, name)


if __name__ == "__main__":
    from src.cli import run_cli

    run_cli(_moved.main)
