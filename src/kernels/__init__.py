"""Compiled CPU kernels (numba): each pixel's work in one pass over the image, the *schedules* whose algorithms
are the torch networks in :mod:`src.models` (Halide's split). ``compact``: the compact net in one pass (row bands,
scratch per thread, uint8 / uint16 / float32 out); ``grid``: the bilateral grid's passes (the stream's input, the
bins' statistics, the slice). :mod:`src.inference` chooses and calls them; parity tests hold each to its torch twin.

Importing a module compiles nothing: kernels compile on first call, cached on disk (numba ``cache=True``).
May import: :mod:`src.errors`, :mod:`src.io`; numba and numpy (and OpenCV for ``compact``'s thread count), no torch.
"""
