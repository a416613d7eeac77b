"""The old path of :mod:`src.kernels.compact` (a thin alias, so existing imports keep working)."""
import sys

import src.kernels.compact as _compact

sys.modules[__name__] = _compact
