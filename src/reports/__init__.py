"""The README's figures, redrawn from committed tables and the shipped checkpoints (``make figures``), and the
plots the studies draw (:mod:`src.reports.sweeps`); and ``make results`` (:mod:`src.reports.results`), which runs every
study and benchmark that makes a quoted table, each as its own process.

May import: :mod:`src.training` and down. Imported by :mod:`src.studies` (their plots), never the reverse.
"""
