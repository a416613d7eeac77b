"""ONNX export with dynamic height and width; ONNX Runtime equals torch."""
import pytest

from src.models import CompactNet, SeedAutoencoder, exact_sobel_net
from src.inference.export import export_onnx, onnx_max_difference


@pytest.mark.parametrize("net", [exact_sobel_net(), CompactNet(mix=0, pairs=2, linear=1, hidden=4), SeedAutoencoder()],
                         ids=["compact", "compact-hidden", "autoencoder"])
def test_onnx_runtime_matches_torch_at_sizes_other_than_the_export_size(net, tmp_path):
    path = export_onnx(net.eval(), tmp_path / "net.onnx")
    assert onnx_max_difference(net, path, 97, 131) <= 1e-4
    assert onnx_max_difference(net, path, 200, 33) <= 1e-4
