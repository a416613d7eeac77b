"""Benchmarks: speed and memory, never quality (``make bench``, ``make gpu-bench``, ``make knobs``).

- :mod:`~src.bench.speed`: CPU inference MP/s of the shipped model against OpenCV's pipeline (``python -m src.bench``).
- :mod:`~src.bench.gpu`: the GPU figures in one budgeted run (``make gpu-bench``).
- :mod:`~src.bench.loader`: the training loader's crops/s and memory (``make bench-loader``).
- :mod:`~src.bench.knobs`, :mod:`~src.bench.knob_table`: each speed knob's measured speed-up, and its table.

May import: everything below it (:mod:`src.reports` and down). Not :mod:`src.studies`.
"""
