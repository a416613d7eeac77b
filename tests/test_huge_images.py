"""Huge images in bounded memory: tiles computed band by band, each band deflated into the PNG as it comes
(``predict --tile``), the PNG reader's single copy, and the megapixel guard the user can raise."""
import importlib
import tracemalloc

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from src.bench.huge import main as huge_bench
from src.cli import run_cli
from src.errors import UserError
from src.inference.predict import NonFiniteOutput, predict, predict_bands
from src.io.images import read_rgb, write_png, write_png_bands
from src.models import UNetGenerator, exact_sobel_net, save_model
from src.models.bilateral_grid import BilateralGridNet

predict_cli = importlib.import_module("src.inference.predict")


def decoded(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (37, 91, 3), (64, 33)])
@pytest.mark.parametrize("bits", [8, 16])
def test_a_png_written_band_by_band_has_the_pixels_of_a_png_written_whole(tmp_path, rng, shape, bits):
    img = rng.random(shape).astype(np.float32)
    cuts = sorted({0, min(3, shape[0]), shape[0] // 2, shape[0]})
    write_png(tmp_path / "whole.png", img, bits)
    write_png_bands(tmp_path / "bands.png", shape[0], (img[a:b] for a, b in zip(cuts, cuts[1:]) if b > a), bits)
    whole, bands = decoded(tmp_path / "whole.png"), decoded(tmp_path / "bands.png")
    assert bands.dtype == whole.dtype and np.array_equal(bands, whole)
    with Image.open(tmp_path / "bands.png") as im:
        im.verify()  # every chunk's checksum, as a strict reader sees it


def test_a_band_that_fails_leaves_no_file_and_no_temporary_file(tmp_path, rng):
    def bands():
        yield rng.random((4, 9)).astype(np.float32)
        raise NonFiniteOutput("the network's output holds 1 NaN")

    with pytest.raises(NonFiniteOutput):
        write_png_bands(tmp_path / "out.png", 8, bands())
    assert list(tmp_path.iterdir()) == []


def test_too_few_rows_are_refused_and_nothing_is_written(tmp_path, rng):
    with pytest.raises(UserError, match="got 4 rows of an image 8 rows high"):
        write_png_bands(tmp_path / "out.png", 8, iter([rng.random((4, 9)).astype(np.float32)]))
    assert list(tmp_path.iterdir()) == []


def grid_net():
    net = BilateralGridNet().eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("make", [exact_sobel_net, grid_net, lambda: UNetGenerator(depth=4, ngf=4).eval()],
                         ids=["halo-tiles", "sliced-grid", "blended-unet"])
def test_bands_from_the_top_put_together_are_the_tiled_prediction(make, photo):
    net = make()
    bands = list(predict_bands(net, photo, tile=64))
    assert [y0 for y0, _ in bands] == sorted(y0 for y0, _ in bands) and bands[0][0] == 0
    assert all(b.shape[0] for _, b in bands)
    together = np.concatenate([b for _, b in bands])
    assert np.array_equal(together, predict(net, photo, tile=64))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "sobel.ckpt", exact_sobel_net(), "compact", "sobel")


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(predict_cli.main, argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_the_cli_in_tiles_writes_the_pixels_of_the_whole_image(ckpt, photo, tmp_path, capsys):
    Image.fromarray(photo).save(tmp_path / "in.png")
    for name, more in (("whole", []), ("tiled", ["--tile", "100"])):
        code, _, _ = run_main(["--checkpoint", str(ckpt), "--input", str(tmp_path / "in.png"),
                               "--output", str(tmp_path / name), "--no-progress", *more], capsys)
        assert code == 0
    assert np.array_equal(decoded(tmp_path / "tiled" / "in.png"), decoded(tmp_path / "whole" / "in.png"))


def test_the_cli_in_tiles_never_holds_the_whole_output(ckpt, tmp_path, capsys):
    """Traced allocations (numpy's included) while predicting a 3000 x 2000 image: in 128-px tiles the peak is the
    input and a few bands; whole, it holds the float output (23 MB) besides."""
    img = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), img)
    cv2.imwrite(str(tmp_path / "small.png"), img[:300, :300])
    run_main(["--checkpoint", str(ckpt), "--input", str(tmp_path / "small.png"), "--output", str(tmp_path / "warm"),
              "--no-progress", "--tile", "256"], capsys)  # loads the compiled kernels, not traced
    peaks = {}
    for name, more in (("tiled", ["--tile", "128"]), ("whole", [])):
        tracemalloc.start()
        code, _, _ = run_main(["--checkpoint", str(ckpt), "--input", str(tmp_path / "in.png"),
                               "--output", str(tmp_path / name), "--no-progress", *more], capsys)
        peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert code == 0
    input_mb, output_mb = img.nbytes / 2**20, img[..., 0].size * 4 / 2**20  # 17 and 23 MB
    assert peaks["tiled"] < input_mb + output_mb / 2, peaks
    assert peaks["whole"] > input_mb + output_mb, peaks


def test_a_plain_rgb_png_reads_as_pillow_reads_it(tmp_path, rng):
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = read_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, img)


def test_a_png_with_an_exif_orientation_is_still_turned_as_a_viewer_shows_it(tmp_path, rng):
    img = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(img).save(tmp_path / "r.png", exif=exif)
    assert np.array_equal(read_rgb(tmp_path / "r.png"), np.rot90(img, -1))


def test_an_image_over_the_megapixel_guard_names_the_option_that_raises_it(ckpt, tmp_path, capsys):
    Image.fromarray(np.zeros((600, 500, 3), np.uint8)).save(tmp_path / "big.png")
    argv = ["--checkpoint", str(ckpt), "--input", str(tmp_path / "big.png"), "--output", str(tmp_path / "o"),
            "--no-progress", "--tile", "128"]
    code, _, err = run_main([*argv, "--max-mp", "0.2"], capsys)
    assert code != 0 and "0.3 MP is over the 0.2 MP limit (--max-mp raises it)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o" / "big.png").exists()
    code, _, _ = run_main([*argv, "--max-mp", "0.5"], capsys)
    assert code == 0 and decoded(tmp_path / "o" / "big.png").shape == (600, 500)


def test_a_megapixel_guard_that_is_not_positive_is_refused(ckpt, tmp_path, capsys):
    code, _, err = run_main(["--checkpoint", str(ckpt), "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                             "--max-mp", "0"], capsys)
    assert code != 0 and "--max-mp must be a positive number of megapixels, got 0" in err


def test_the_huge_image_bench_measures_each_predict_process_and_its_memory(tmp_path):
    assert huge_bench(["--sizes", "0.05", "--tile", "64", "--out", str(tmp_path / "huge")]) == 0
    text = (tmp_path / "huge.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[2].strip() for r in rows] == ["64", "64", "none (whole)"]
    assert "Made by `python -m src.bench.huge --sizes 0.05 --tile 64" in text and "at commit" in text
    peaks = [float(r.split("|")[6]) for r in rows]
    assert all(0.1 < p < 4 for p in peaks)  # a real process's resident memory, in GiB
