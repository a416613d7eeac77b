"""The bottom layer: files (atomic writes), images (read anything into RGB uint8, write PNG), tables (CSV,
Markdown), plots (save a figure) and timing (median of repeated calls).

May import: :mod:`src.errors` only. Nothing here knows about filters, data sets or networks.
"""
