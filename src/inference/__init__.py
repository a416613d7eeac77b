"""Running a trained network: ``predict`` at any size (whole or in tiles, any image in), the runtimes behind it
(one numba pass or OpenCV row bands on the CPU, compiled torch on CUDA), lower-precision copies and ONNX export.

    from src.inference import predict
    edges = predict(net, rgb)      # float32 (H, W) in [0, 1], any H, W >= 1

``predict`` is resolved on first use, not when the package is imported, so ``python -m src.inference.predict``
starts without a double-import warning (the same call as ``from src.inference.predict import predict``).
May import: :mod:`src.io`, :mod:`src.kernels`, :mod:`src.filters`, :mod:`src.models`.
"""

__all__ = ["predict"]


def __getattr__(name: str):
    if name == "predict":
        from src.inference.predict import predict  # lazy: resolved on first use, so python -m of the module runs without a double import

        return predict
    raise AttributeError(f"module 'src.inference' has no attribute {name!r}")
