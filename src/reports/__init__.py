"""The README's figures, redrawn from committed tables and the shipped checkpoints (``make figures``).

May import: anything below it (:mod:`src.experiment` and down). Nothing imports it.
"""
