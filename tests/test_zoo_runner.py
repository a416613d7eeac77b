"""The zoo runner's parts: kernel collapse, its figure, the table, and its argument checks (no training)."""
import numpy as np
import pytest
import torch

from src.errors import UserError
from src.studies.zoo import main, markdown_table, model_args
from src.evaluation.kernels import cosine_similarity, effective_kernel, plot_kernels
from src.filters import get_filter
from src.filters.functional import BT601
from src.filters.linear import unit_affine
from src.models import build_model
from src.inference.predict import predict


def exact_linear_net(flt):
    """A linear compact net with the filter's weights set by hand."""
    kernel = flt.extra["kernel"]
    scale, offset = unit_affine(kernel)
    net = build_model("compact", **model_args("compact", flt))
    with torch.no_grad():
        net.mix.weight.copy_(torch.tensor(BT601).view(1, 3, 1, 1))
        net.bank.weight.copy_(torch.from_numpy(kernel).float()[None, None])
        net.head.weight.fill_(scale)
        net.head.bias.fill_(offset)
    return net.eval()


@pytest.mark.parametrize("name,params", [("random", {"seed": 11, "size": 3}), ("random", {"seed": 11, "size": 5}),
                                         ("laplacian", {}), ("laplacian", {"ksize": 3}), ("emboss", {})])
def test_collapsing_the_exact_linear_net_gives_the_true_kernel(name, params, photo):
    flt = get_filter(name, **params)
    net = exact_linear_net(flt)
    assert np.abs(predict(net, photo) - flt(photo)).max() < 1e-5  # the net is the filter
    learned = effective_kernel(net, flt.extra["kernel"].shape[0])
    np.testing.assert_allclose(learned, flt.extra["rgb_kernel"], atol=1e-6)
    assert cosine_similarity(learned, flt.extra["rgb_kernel"]) == pytest.approx(1.0, abs=1e-9)


def test_kernel_figure_is_written(tmp_path):
    k = get_filter("random", seed=2).extra["rgb_kernel"]
    plot_kernels(tmp_path / "k.png", k * 0.9, k, "test")
    assert (tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"


def test_table_has_one_row_per_run_and_states_the_budget():
    row = {"filter": "sobel", "model": "can", "psnr": 31.5, "ssim": 0.98, "params": 99, "net_mps": 1.0,
           "ref_mps": 4.0, "speed_ratio": 0.25}
    table = markdown_table([row, dict(row, model="compact", kernel_cosine=0.5, gray_kernel_cosine=0.9)], "75 optimiser steps")
    assert "| sobel | can | 31.50 |  | 0.9800 | 99 | 1.00 | 4.00 | 0.25x |  |" in table
    assert "| sobel | can | 31.50 | 10.89 |" in markdown_table([dict(row, trivial_psnr=10.891)], "75 optimiser steps")
    assert "0.50000 / 0.90000" in table and "75 optimiser steps of CPU training" in table


def test_zoo_refuses_unknown_filters_and_models_before_training():
    with pytest.raises(UserError, match="unknown filter 'nope'"):
        main(["--filters", "nope"])
    with pytest.raises(UserError, match="unknown zoo model 'gan'"):
        main(["--models", "gan"])


def test_shards_merge_into_one_table_in_zoo_order(tmp_path):
    from src.studies.zoo import write_table
    from src.io.tables import read_csv

    row = {"ssim": 0.9, "params": 55, "net_mps": 10.0, "ref_mps": 5.0, "speed_ratio": 2.0, "train_s": 60.0}
    write_table([dict(row, filter="stylization", model="can", psnr=20.0)], 60, tmp_path, "b")
    write_table([dict(row, filter="sobel", model="autoencoder", psnr=21.0), dict(row, filter="sobel", model="compact", psnr=50.0)],
                60, tmp_path, "a")
    assert main(["--merge", str(tmp_path / "b.csv"), str(tmp_path / "a.csv"), "--figures", str(tmp_path), "--threads", "1"]) == 0
    rows = read_csv(tmp_path / "zoo.csv")
    assert [(r["filter"], r["model"]) for r in rows] == [("sobel", "compact"), ("sobel", "autoencoder"), ("stylization", "can")]
    assert rows[0]["params"] == 55 and rows[0]["psnr"] == 50.0
    assert "1 CPU thread(s) per run" in (tmp_path / "zoo.md").read_text()
    with pytest.raises(UserError, match="no table at"):
        main(["--merge", str(tmp_path / "missing.csv"), "--figures", str(tmp_path)])


def test_trivial_psnr_is_all_zeros_for_gray_filters_and_the_input_for_rgb_ones():
    from src.dataset.sources import load_split
    from src.studies.zoo import trivial_psnr
    from src.models import exact_sobel_net
    from src.evaluation.evaluate import evaluate_images

    sobel = get_filter("sobel")
    _, mean = evaluate_images(exact_sobel_net(), sobel, load_split("skimage", "test"))
    assert trivial_psnr(sobel) == pytest.approx(mean["zero_psnr"], abs=1e-6)
    # a 1x1 box blur is the identity: returning the input is exact (the PSNR cap)
    assert trivial_psnr(get_filter("box", ksize=1)) == pytest.approx(100.0)
