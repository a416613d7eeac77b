"""The old home of training, studies and benchmarks, kept so users' scripts and commands keep working:
``python -m src.experiment.train`` and ``from src.experiment.train import train`` still run.

Each module here is a thin shim that hands over to its new home: training in :mod:`src.training`, studies in
:mod:`src.studies`, benchmarks in :mod:`src.bench`. New code imports those.
May import: anything (it is the top layer; nothing in ``src`` imports it).
"""
