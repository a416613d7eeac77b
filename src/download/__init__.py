"""The public data sets by name (``make data NAME=...``): what each is and where it comes from
(:mod:`~src.download.catalog`), fetching it with checksums and atomic writes (:mod:`~src.download.download`),
and preparing it into ``data/interim`` and ``data/processed`` (:mod:`~src.download.prepare`).
Starts without torch (the filters are imported when a target is computed).

May import: :mod:`src.errors`, :mod:`src.cli`, :mod:`src.io`, :mod:`src.filters`.
"""
