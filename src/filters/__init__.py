"""The operators we learn, by name: ``get_filter("sobel")(rgb_uint8) -> float32 (H, W) in [0, 1]``."""
from src.filters.registry import Filter, available, get_filter, register, stored_filter
from src.filters.sobel import sobel_kernels, sobel_magnitude, sobel_magnitude_cv
from src.filters import operators, pairs, random_filters, zoo  # noqa: F401  (importing registers them)
from src.filters.user import user_filter

__all__ = [
    "Filter",
    "available",
    "get_filter",
    "register",
    "sobel_kernels",
    "sobel_magnitude",
    "sobel_magnitude_cv",
    "stored_filter",
    "user_filter",
]
