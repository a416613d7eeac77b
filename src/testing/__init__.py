"""The README's old home of inference, kept so users' scripts keep working: ``from src.testing import predict``.

Inference now lives in :mod:`src.inference`, evaluation in :mod:`src.evaluation`. ``predict`` is resolved
on first use (not at import) so ``python -m src.testing.predict`` runs without a double-import warning.
May import: :mod:`src.inference`, :mod:`src.evaluation`.
"""

__all__ = ["predict"]


def __getattr__(name: str):
    if name == "predict":
        from src.inference.predict import predict  # lazy: resolved on first use, so python -m of the module runs without a double import

        return predict
    raise AttributeError(f"module 'src.testing' has no attribute {name!r}")
