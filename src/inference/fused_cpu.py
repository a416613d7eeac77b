"""The old path of :mod:`src.kernels.compact` (a thin re-export, so existing imports keep working)."""
from src.kernels.compact import BAND_ROWS, OUT_SCALE, PARALLEL_PIXELS, flat_args, fused_compact, runner, scratch  # noqa: F401
