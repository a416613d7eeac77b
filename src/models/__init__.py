"""Networks (plain ``nn.Module``s), the Lightning module that trains them, and checkpoints."""
from src.models.can import ContextAggregationNet
from src.models.checkpoint import load_model, read_checkpoint, save_model
from src.models.networks import MODELS, CompactNet, SeedAutoencoder, build_model, count_parameters, exact_sobel_net
from src.models.pix2pix import PatchDiscriminator, UNetGenerator

__all__ = [
    "MODELS",
    "CompactNet",
    "PatchDiscriminator",
    "UNetGenerator",
    "ContextAggregationNet",
    "SeedAutoencoder",
    "build_model",
    "count_parameters",
    "exact_sobel_net",
    "load_model",
    "read_checkpoint",
    "save_model",
]
