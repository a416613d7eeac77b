"""The README's figures, redrawn from committed tables and the shipped checkpoints (``make figures``), and the
plots the studies draw (:mod:`src.reports.sweeps`).

May import: :mod:`src.training` and down. Imported by :mod:`src.studies` (their plots), never the reverse.
"""
