"""Networks (plain ``nn.Module``s), the Lightning module that trains them, and checkpoints."""
from src.models.checkpoint import load_model, read_checkpoint, save_model
from src.models.networks import MODELS, CompactNet, SeedAutoencoder, build_model, count_parameters, exact_sobel_net

__all__ = [
    "MODELS",
    "CompactNet",
    "SeedAutoencoder",
    "build_model",
    "count_parameters",
    "exact_sobel_net",
    "load_model",
    "read_checkpoint",
    "save_model",
]
