"""Training: what a user calls to train a network on a filter.

- :mod:`~src.training.config`: :class:`TrainConfig`, every option of a run as a typed field, and
  ``MODEL_DEFAULTS``, the one table of per-model defaults; the command line is generated from it.
- :mod:`~src.training.train`: :func:`train` (``python -m src.training.train``), the one training entry point.
- :mod:`~src.training.callbacks`: the Lightning callbacks a run uses (atomic checkpoints, plateau stage
  switch, finite guard, Ctrl-C, throughput).
- :mod:`~src.training.teach`: teach by example, one before/after pair to a checkpoint (the demo's Teach tab).

May import: :mod:`src.errors`, :mod:`src.cli`, :mod:`src.threads`, :mod:`src.io`, :mod:`src.filters`,
:mod:`src.dataset`, :mod:`src.models`, :mod:`src.inference`, :mod:`src.evaluation`.
"""
