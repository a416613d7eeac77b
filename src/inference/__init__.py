"""Inference: predict at any size, tiling, runtimes, export, and the batch folder tool (may import dataset, models)."""
