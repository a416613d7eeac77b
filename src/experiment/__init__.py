"""Training runs and studies: the one training entry point (``train(TrainConfig)``, ``python -m
src.experiment.train``) and its callbacks; the studies that train or time networks: the filter zoo, the size
and depth sweeps, the CPU and GPU benchmarks, the speed knobs, the size study and the quantisation table.

May import: :mod:`src.io`, :mod:`src.filters`, :mod:`src.dataset`, :mod:`src.models`, :mod:`src.inference`,
:mod:`src.evaluation`. Lightning is imported inside functions (start-up speed), never to dodge a cycle.
"""
