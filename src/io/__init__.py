"""The bottom layer: files (atomic writes), images (read anything into RGB uint8, write PNG), tables (CSV,
Markdown), plots (save a figure), timing (median of repeated calls) and memory (a process tree's RSS).

May import: :mod:`src.errors` only. Nothing here knows about filters, data sets or networks.
"""
