"""How good is a model: PSNR/SSIM at native resolution (data range 1, borders included, with the
all-zeros baseline), evaluation of a checkpoint on a split, and what its kernels have learned.

May import: :mod:`src.io`, :mod:`src.filters`, :mod:`src.dataset`, :mod:`src.models`, :mod:`src.inference`.
"""
