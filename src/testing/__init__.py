"""Inference at any size (whole or tiled) and evaluation against the reference filter."""
from src.testing.predict import predict

__all__ = ["predict"]
