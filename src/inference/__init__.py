"""Running a trained network: ``predict`` at any size (whole or in tiles, any image in), the runtimes behind it
(OpenCV fused on CPU, compiled torch on CUDA), lower-precision copies and ONNX export.

May import: :mod:`src.io`, :mod:`src.filters`, :mod:`src.models`. Modules are imported by path
(``from src.inference.predict import predict``) so ``python -m src.inference.predict`` starts cleanly.
"""
