"""Training runs: ``python -m src.experiment.train``."""
