"""A corpus of bad and unusual inputs, generated here (no committed binaries), through every door.

Each image case goes through the API (``read_rgb`` + ``predict``), the ``predict`` and ``evaluate``
command lines and the demo's ``/predict``; each checkpoint case through ``load_model``, both command
lines and the demo's start-up. Every case states its exact outcome: converted as expected (the
output equals the model on the expected RGB image), or refused with one line naming the file and the
reason (exit 2); never a traceback, a partial file, or code named by a checkpoint running (the
payload module writes a marker file if it is ever imported).
"""
from __future__ import annotations

import gzip
import importlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from src.io.images import read_rgb
from src.errors import UserError
from src.cli import run_cli
from src.models import CompactNet, exact_sobel_net, load_model, save_model
from src.io.images import to_uint8
from src.inference.predict import NonFiniteOutput, predict

predict_cli = importlib.import_module("src.inference.predict")  # src.testing re-exports the function `predict`
evaluate_cli = importlib.import_module("src.evaluation.evaluate")
ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 90
PAYLOAD = "lf_corpus_payload"  # a module that must never be imported on a checkpoint's word


# ----------------------------------------------------------------------------------------------- images
@dataclass
class ImageCase:
    name: str  # file name written (suffix included)
    make: Callable[[Path], np.ndarray | None]  # writes the file; returns the RGB a viewer shows (None: refused)
    refused: str | None = None  # the reason every door must give
    note: str | None = None  # a conversion the API states
    in_folder: bool = True  # listed when its folder is evaluated (False: no image suffix)


def _rgb(h=9, w=13, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(img: Image.Image, **kw):
    def make(path: Path) -> np.ndarray:
        img.save(path, **kw)
        with Image.open(path) as back:  # what a viewer decodes (JPEG is lossy)
            return np.asarray(back.convert("RGB"))
    return make


def _over(rgba: np.ndarray, bg: int = 255) -> np.ndarray:
    a = rgba[..., -1:].astype(np.float64) / 255
    out = np.round(rgba[..., :-1] * a + bg * (1 - a)).astype(np.uint8)
    return np.repeat(out, 3, 2) if out.shape[2] == 1 else out


def _rgba(path: Path) -> np.ndarray:
    rgba = np.dstack([_rgb(), np.tile(np.array([0, 64, 128, 255], np.uint8), 4)[:13][None].repeat(9, 0)])
    Image.fromarray(rgba).save(path)
    return _over(rgba)


def _la(path: Path) -> np.ndarray:
    la = np.dstack([_rgb()[..., 0], np.full((9, 13), 100, np.uint8)])
    Image.fromarray(la, "LA").save(path)
    return _over(la)


def _palette_transparent(path: Path) -> np.ndarray:
    im = Image.fromarray(_rgb()).quantize(8)
    im.info["transparency"] = 0
    im.save(path, transparency=0)
    return _over(np.asarray(Image.open(path).convert("RGBA")))


def _gray16(path: Path) -> np.ndarray:
    import cv2

    a = (np.arange(9 * 13, dtype=np.uint16).reshape(9, 13) * 500)
    cv2.imwrite(str(path), a)
    g = np.round(a / 65535 * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, 2)


def _rgb16(path: Path) -> np.ndarray:
    import cv2

    a = _rgb().astype(np.uint16) * 257
    cv2.imwrite(str(path), a[..., ::-1])
    return _rgb()


def _float_tiff(scale: float, values: np.ndarray | None = None):
    def make(path: Path) -> np.ndarray | None:
        g = values if values is not None else (np.arange(9 * 13, dtype=np.float32).reshape(9, 13) / 116) * scale
        Image.fromarray(g.astype(np.float32), "F").save(path)
        if not np.isfinite(g).all() or g.min() < 0:
            return None
        out = np.round(g.astype(np.float64) * 255 / scale).astype(np.uint8)
        return np.repeat(out[..., None], 3, 2)
    return make


def _int_tiff(path: Path) -> None:
    Image.fromarray(np.linspace(0, 1_000_000, 9 * 13).astype(np.int32).reshape(9, 13), "I").save(path)


def _frames(fmt: str):
    def make(path: Path) -> np.ndarray:
        frames = [Image.fromarray(_rgb(seed=i)) for i in range(3)]
        if fmt == "GIF":
            frames = [f.quantize(256) for f in frames]
        frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
        return np.asarray(Image.open(path).convert("RGB"))
    return make


def _exif_rotated(path: Path) -> np.ndarray:
    img = Image.fromarray(_rgb(9, 13))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(path, exif=exif, quality=95)
    return np.asarray(Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_270))


def _bytes(data: bytes):
    def make(path: Path) -> None:
        path.write_bytes(data)
    return make


def _truncated(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[:300])


def _bad_crc(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:90] = bytes(30)  # inside the image data
    path.write_bytes(bytes(data))


def _huge(w: int, h: int):
    def make(path: Path) -> None:
        Image.new("1", (w, h)).save(path)  # a few kB on disk, many MP when decoded
    return make


def _cmyk(path: Path) -> np.ndarray:
    img = Image.fromarray(_rgb()).convert("CMYK")
    img.save(path, quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


IMAGE_CASES = [
    ImageCase("rgb.png", _save(Image.fromarray(_rgb()))),
    ImageCase("gray.png", _save(Image.fromarray(_rgb()[..., 0]))),
    ImageCase("bilevel.png", _save(Image.fromarray(_rgb()[..., 0] > 128))),
    ImageCase("gray16.png", _gray16),
    ImageCase("rgb16.png", _rgb16),
    ImageCase("palette.png", _save(Image.fromarray(_rgb()).quantize(16))),
    ImageCase("palette-transparent.png", _palette_transparent, note="transparent: composited over white"),
    ImageCase("rgba-opaque.png", _save(Image.fromarray(np.dstack([_rgb(), np.full((9, 13), 255, np.uint8)])))),
    ImageCase("rgba-half.png", _rgba, note="transparent: composited over white"),
    ImageCase("gray-alpha.png", _la, note="transparent: composited over white"),
    ImageCase("photo.jpg", _save(Image.fromarray(_rgb()), quality=95)),
    ImageCase("gray.jpeg", _save(Image.fromarray(_rgb()[..., 1]), quality=95)),
    ImageCase("cmyk.jpg", _cmyk),
    ImageCase("exif-rotated.jpg", _exif_rotated),
    ImageCase("image.bmp", _save(Image.fromarray(_rgb()))),
    ImageCase("image.ppm", _save(Image.fromarray(_rgb()))),
    ImageCase("lossless.webp", _save(Image.fromarray(_rgb()), lossless=True)),
    ImageCase("float01.tif", _float_tiff(1.0)),
    ImageCase("float255.tif", _float_tiff(255.0), note="read as the range 0..255"),
    ImageCase("float65535.tif", _float_tiff(65535.0), note="read as the range 0..65535"),
    ImageCase("animated.gif", _frames("GIF"), note="3 frames: the first one is used"),
    ImageCase("pages.tiff", _frames("TIFF"), note="3 frames: the first one is used"),
    ImageCase("one-pixel.png", _save(Image.fromarray(_rgb(1, 1)))),
    ImageCase("thin.png", _save(Image.fromarray(_rgb(1, 300)))),
    ImageCase("UPPER.PNG", _save(Image.fromarray(_rgb()))),
    ImageCase("no-extension", _save(Image.fromarray(_rgb()), format="PNG"), in_folder=False),
    ImageCase("text.png", _bytes(b"this is text, not a picture\n"), refused="not an image"),
    ImageCase("empty.png", _bytes(b""), refused="empty file"),
    ImageCase("gzip.png", _bytes(gzip.compress(b"\0" * 1000)), refused="not an image"),
    ImageCase("html.jpg", _bytes(b"<html><body>404</body></html>"), refused="not an image"),
    ImageCase("truncated.png", _truncated, refused="corrupt or truncated"),
    ImageCase("bad-data.png", _bad_crc, refused="corrupt or truncated"),
    ImageCase("over-limit.png", _huge(8000, 7000), refused="over the 50 MP limit"),
    ImageCase("bomb.png", _huge(15000, 14000), refused="over the 50 MP limit"),
    ImageCase("int32-wide.tif", _int_tiff, refused="32-bit integer image with values in"),
    ImageCase("nan.tif", _float_tiff(1.0, np.full((9, 13), np.nan, np.float32)), refused="NaN or infinite"),
    ImageCase("negative.tif", _float_tiff(1.0, np.linspace(-1, 1, 9 * 13, dtype=np.float32).reshape(9, 13)),
              refused="not in 0..1, 0..255 or 0..65535"),
]
assert len(IMAGE_CASES) >= 30


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray | None]]:
    """Every image case written into its own folder: name -> (path, expected RGB or None)."""
    root = tmp_path_factory.mktemp("images")
    out = {}
    for case in IMAGE_CASES:
        folder = root / case.name.replace(".", "_")
        folder.mkdir()
        path = folder / case.name
        expected = case.make(path)
        assert (expected is None) == (case.refused is not None), case.name
        out[case.name] = (path, expected)
    return out


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("good") / "sobel.ckpt", exact_sobel_net(), "compact", "sobel",
                      metrics={"test_psnr": 60.0})


def run_main(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """A command line run as ``python -m`` runs it (``run_cli``), in this process for speed."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def no_temp_files(folder: Path) -> bool:
    return not any(p.name.endswith(".part") for p in folder.rglob("*")) if folder.exists() else True


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_image_case_through_the_api(case, corpus):
    path, expected = corpus[case.name]
    notes: list[str] = []
    if case.refused:
        with pytest.raises(UserError, match=case.refused) as info:
            read_rgb(path, notes=notes)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
        return
    rgb = read_rgb(path, notes=notes)
    assert rgb.dtype == np.uint8 and rgb.shape == expected.shape
    assert np.abs(rgb.astype(int) - expected).max() <= 1, "converted as a viewer shows it"
    assert any(case.note in n for n in notes) if case.note else notes == []
    assert predict(exact_sobel_net(), rgb).shape == rgb.shape[:2]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_image_case_through_the_predict_cli(case, corpus, good_ckpt, tmp_path, capsys):
    path, expected = corpus[case.name]
    out_dir = tmp_path / "out"
    code, out, err = run_main(predict_cli.main, ["--checkpoint", str(good_ckpt), "--input", str(path),
                                                 "--output", str(out_dir)], capsys)
    if case.refused:
        assert_one_line_error(code, err, str(path), case.refused)
        assert not any(out_dir.iterdir()), "nothing written"
        return
    assert code == 0, err
    written = out_dir / (Path(case.name).stem + ".png")
    got = np.asarray(Image.open(written))
    want = to_uint8(predict(exact_sobel_net(), expected))
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    assert (f"note: {path}: " in out) == (case.note is not None)
    assert no_temp_files(out_dir)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_image_case_through_the_evaluate_cli(case, corpus, good_ckpt, tmp_path, capsys):
    path, expected = corpus[case.name]
    figures = tmp_path / "figures"
    code, out, err = run_main(evaluate_cli.main, ["--checkpoint", str(good_ckpt), "--data", str(path.parent),
                                                  "--figures", str(figures), "--name", "ev"], capsys)
    if case.refused:
        assert_one_line_error(code, err, case.name, case.refused)
        assert not (figures / "ev.csv").exists()
    elif not case.in_folder:
        assert_one_line_error(code, err, "no image files")
    else:
        assert code == 0, err
        assert (figures / "ev.csv").exists() and "100.00" in out  # the exact Sobel net matches its reference
        assert (f"note: {path}: " in out) == (case.note is not None)
    assert no_temp_files(figures)


# ------------------------------------------------------------------------------------------ checkpoints
def _payload_module(folder: Path) -> Path:
    """A module whose import (or call) writes MARKER: proof that code named by a checkpoint ran."""
    (folder / f"{PAYLOAD}.py").write_text(
        "from pathlib import Path\n"
        "Path(__file__).with_name('MARKER').write_text('imported')\n"
        "def payload(rgb, **kw):\n"
        "    Path(__file__).with_name('MARKER').write_text('called')\n"
        "    return rgb[..., 0]\n")
    return folder / "MARKER"


class _Pickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _blob() -> dict:
    """A valid checkpoint of the exact Sobel net, as the dict that ``save_model`` writes."""
    from src.models.checkpoint import FORMAT, VERSION

    net = exact_sobel_net()
    return {"format": FORMAT, "version": VERSION, "model": "compact",
            "model_kwargs": {k: v for k, v in net.config.items() if k != "out_channels"}, "out_channels": 1,
            "filter": "sobel", "filter_params": {}, "metrics": {"test_psnr": 60.0}, "info": {},
            "state_dict": {k: v.clone() for k, v in net.state_dict().items()}}


def _edit(change: Callable[[dict], None]):
    def make(path: Path, marker: Path) -> None:
        blob = _blob()
        change(blob)
        torch.save(blob, path)
    return make


def _raw(data: bytes):
    def make(path: Path, marker: Path) -> None:
        path.write_bytes(data)
    return make


def _torch_obj(obj):
    def make(path: Path, marker: Path) -> None:
        torch.save(obj, path)
    return make


def _pickle_payload(path: Path, marker: Path) -> None:
    blob = _blob()
    blob["state_dict"]["evil"] = _Pickled(marker)
    torch.save(blob, path)


def _truncated_ckpt(path: Path, marker: Path) -> None:
    buf = io.BytesIO()
    torch.save(_blob(), buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _lightning(width: int):
    def make(path: Path, marker: Path) -> None:
        torch.save({"hyper_parameters": {"model_name": "can", "model_kwargs": {"width": width}, "out_channels": 1,
                                         "filter_name": "sobel"}, "state_dict": {}}, path)
    return make


def _nan_output(path: Path, marker: Path) -> None:
    """Finite weights whose output is inf - inf = NaN: data that validates, a network that fails."""
    net = CompactNet(pairs=2)
    with torch.no_grad():
        net.bank.weight.fill_(1e30)
        net.head.weight.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
    save_model(path, net, "compact", "sobel")


def _pop(key):
    return lambda b: b.pop(key)


def _set(key, value):
    return lambda b: b.__setitem__(key, value)


def _kw(key, value):
    return lambda b: b["model_kwargs"].__setitem__(key, value)


def _weights(fill):
    return lambda b: b["state_dict"]["bank.weight"].fill_(fill)


@dataclass
class CkptCase:
    name: str
    make: Callable[[Path, Path], None]
    refused: str | None  # load_model's reason (None: the data is valid)
    predict: str | None = None  # the predict CLI's reason when the data loads (None: it succeeds)
    evaluate: str | None = None  # the evaluate CLI's reason when the data loads


CKPT_CASES = [
    CkptCase("text.ckpt", _raw(b"model = 'sobel'\n"), "not a readable checkpoint (not a PyTorch file)"),
    CkptCase("empty.ckpt", _raw(b""), "not a readable checkpoint (an empty file)"),
    CkptCase("truncated.ckpt", _truncated_ckpt, "not a readable checkpoint"),
    CkptCase("pickle-payload.ckpt", _pickle_payload, "which is code, not weights"),
    CkptCase("foreign.ckpt", _torch_obj({"weights": torch.zeros(3)}), "not a checkpoint written by this project"),
    CkptCase("a-list.ckpt", _torch_obj([1, 2, 3]), "not a checkpoint written by this project"),
    CkptCase("no-state-dict.ckpt", _edit(_pop("state_dict")), "field 'state_dict' is missing"),
    CkptCase("no-model-kwargs.ckpt", _edit(_pop("model_kwargs")), "field 'model_kwargs' is missing"),
    CkptCase("no-model.ckpt", _edit(_pop("model")), "field 'model' is missing"),
    CkptCase("no-filter.ckpt", _edit(_pop("filter")), "field 'filter' is missing"),
    CkptCase("kwargs-list.ckpt", _edit(_set("model_kwargs", [1, 2])), "field 'model_kwargs' must be dict"),
    CkptCase("state-dict-text.ckpt", _edit(_set("state_dict", "weights")), "field 'state_dict' must be dict"),
    CkptCase("unknown-model.ckpt", _edit(_set("model", "resnet")), "model 'resnet' is not one of"),
    CkptCase("can-width-4000.ckpt", _edit(lambda b: (b.update(model="can", model_kwargs={"width": 4000}))),
             "width=4000 is not a int in 1..256"),
    CkptCase("can-width-200000.ckpt", _edit(lambda b: (b.update(model="can", model_kwargs={"width": 200_000}))),
             "width=200000 is not a int in 1..256"),
    CkptCase("kernel-as-text.ckpt", _edit(_kw("kernel_size", "5")), "kernel_size='5' is not a int"),
    CkptCase("eps-nan.ckpt", _edit(_kw("eps", float("nan"))), "eps=nan is not a float"),
    CkptCase("unknown-kwarg.ckpt", _edit(_kw("evil", 1)), "'evil' is not a hyper-parameter"),
    CkptCase("out-channels-1000.ckpt", _edit(_set("out_channels", 1000)), "out_channels must be an int in 1..4"),
    CkptCase("wrong-shape.ckpt", _edit(_kw("kernel_size", 7)), "weights do not fit a 'compact' network"),
    CkptCase("extra-tensor.ckpt", _edit(lambda b: b["state_dict"].__setitem__("extra", torch.zeros(10**4))),
             "unexpected 'extra'"),
    CkptCase("tensor-is-text.ckpt", _edit(lambda b: b["state_dict"].__setitem__("bank.weight", "x")),
             "state_dict['bank.weight'] must be a tensor"),
    CkptCase("nan-weights.ckpt", _edit(_weights(float("nan"))), "weight 'bank.weight' holds NaN or infinite"),
    CkptCase("inf-weights.ckpt", _edit(_weights(float("inf"))), "weight 'bank.weight' holds NaN or infinite"),
    CkptCase("nan-metric.ckpt", _edit(lambda b: b["metrics"].__setitem__("test_psnr", float("nan"))),
             "metric 'test_psnr' is nan"),
    CkptCase("metric-text.ckpt", _edit(lambda b: b["metrics"].__setitem__("test_psnr", "100")),
             "metrics['test_psnr'] must be a number"),
    CkptCase("filter-param-tensor.ckpt", _edit(lambda b: b["filter_params"].__setitem__("k", torch.zeros(1))),
             "filter_params['k'] must be a number"),
    CkptCase("lightning-huge-can.ckpt", _lightning(10**6), "width=1000000 is not a int in 1..256"),
    CkptCase("filter-is-code.ckpt", _edit(_set("filter", f"{PAYLOAD}:payload")), None,
             evaluate="is code named inside the checkpoint"),
    CkptCase("unknown-filter.ckpt", _edit(_set("filter", "nosuch")), None, evaluate="unknown filter 'nosuch'"),
    CkptCase("nan-output.ckpt", _nan_output, None, predict="NaN or infinite", evaluate="NaN or infinite"),
]
assert len(CKPT_CASES) >= 20


@pytest.fixture(scope="module")
def ckpt_corpus(tmp_path_factory) -> tuple[Path, Path]:
    """All checkpoint cases in one folder (plus the payload module beside them); returns (folder, marker)."""
    folder = tmp_path_factory.mktemp("ckpts")
    marker = _payload_module(folder)
    for case in CKPT_CASES:
        case.make(folder / case.name, marker)
    assert not marker.exists()
    return folder, marker


@pytest.fixture
def importable_payload(ckpt_corpus, monkeypatch):
    """The payload module on sys.path and in the current folder: importing it would succeed, if anything tried."""
    folder, marker = ckpt_corpus
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    yield folder, marker
    assert not marker.exists(), "code named by a checkpoint ran"
    sys.modules.pop(PAYLOAD, None)


@pytest.mark.parametrize("case", CKPT_CASES, ids=lambda c: c.name)
def test_checkpoint_case_through_the_api(case, importable_payload):
    folder, _ = importable_payload
    if case.refused:
        with pytest.raises(UserError, match=case.refused.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            load_model(folder / case.name)
        return
    net = load_model(folder / case.name)
    if case.predict:
        with pytest.raises(NonFiniteOutput):
            predict(net, _rgb())


@pytest.mark.parametrize("case", CKPT_CASES, ids=lambda c: c.name)
def test_checkpoint_case_through_the_predict_cli(case, importable_payload, tmp_path, capsys):
    folder, _ = importable_payload
    src = tmp_path / "in.png"
    Image.fromarray(_rgb()).save(src)
    out_dir = tmp_path / "out"
    code, out, err = run_main(predict_cli.main, ["--checkpoint", str(folder / case.name), "--input", str(src),
                                                 "--output", str(out_dir)], capsys)
    reason = case.refused or case.predict
    if reason:
        assert_one_line_error(code, err, reason)
        assert not out_dir.exists() or not any(out_dir.iterdir()), "nothing written"
    else:
        assert code == 0, err
        assert (out_dir / "in.png").exists() and no_temp_files(out_dir)


@pytest.mark.parametrize("case", CKPT_CASES, ids=lambda c: c.name)
def test_checkpoint_case_through_the_evaluate_cli(case, importable_payload, tmp_path, capsys):
    folder, _ = importable_payload
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_rgb(20, 24)).save(data / "a.png")
    figures = tmp_path / "figures"
    code, out, err = run_main(evaluate_cli.main, ["--checkpoint", str(folder / case.name), "--data", str(data),
                                                  "--figures", str(figures)], capsys)
    assert_one_line_error(code, err, case.refused or case.evaluate)
    assert not any(figures.iterdir()), "nothing written"


def test_a_trusted_filter_named_on_the_command_line_is_imported(importable_payload, tmp_path, capsys):
    """The one way code named in a checkpoint runs: the user names it (the marker proves the import)."""
    folder, marker = importable_payload
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_rgb(20, 24)).save(data / "a.png")
    code, _, err = run_main(evaluate_cli.main, ["--checkpoint", str(folder / "filter-is-code.ckpt"), "--data", str(data),
                                                "--figures", str(tmp_path / "fig"), "--filter", f"{PAYLOAD}:payload"], capsys)
    assert code == 0, err
    assert marker.read_text() == "called"
    marker.unlink()


# ------------------------------------------------------------------------------------------------ demo
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(ckpt_corpus, good_ckpt, tmp_path_factory):
    """One demo server over the checkpoint corpus (payload importable from its folder): (client, url, log lines)."""
    from gradio_client import Client

    folder, marker = ckpt_corpus
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{folder}", PYTHONWARNINGS="ignore",
               GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, str(ROOT / "demo_gradio.py"), "--port", str(port), "--model",
                             str(good_ckpt), "--models-dir", str(folder)], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT_S
    while True:
        assert proc.poll() is None, "".join(log)
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline, "".join(log)
            time.sleep(0.5)
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")),
                    httpx_kwargs={"timeout": WAIT_S})
    yield client, url, log
    proc.terminate()
    proc.wait(timeout=20)
    assert not marker.exists(), "code named by a checkpoint ran in the demo"


def _demo_predict(client, image: Path, model: Path | None = None):
    from gradio_client import handle_file

    args = (handle_file(str(image)),) if model is None else (handle_file(str(image)), "sobel", str(model))
    return client.submit(*args, api_name="/predict").result(timeout=WAIT_S)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_image_case_through_the_demo(case, corpus, demo):
    from gradio_client.exceptions import AppError

    client, _, _ = demo
    path, expected = corpus[case.name]
    if case.refused:
        with pytest.raises(AppError, match=case.refused) as info:
            _demo_predict(client, path)
        assert "Traceback" not in str(info.value) and "/tmp/gradio" not in str(info.value)
        return
    pred, _, _, summary = _demo_predict(client, path)
    got = np.asarray(Image.open(pred))
    want = to_uint8(predict(exact_sobel_net(), expected))
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    assert "100.00 dB" in summary  # the exact Sobel net matches its reference
    assert (case.note is not None and case.note in summary) or (case.note is None and "*Input:*" not in summary)


@pytest.mark.parametrize("case", CKPT_CASES, ids=lambda c: c.name)
def test_checkpoint_case_through_the_demo(case, demo, ckpt_corpus, corpus):
    """Refused checkpoints are listed as skipped at start-up (one line naming them) and not offered."""
    from gradio_client.exceptions import AppError

    client, url, log = demo
    folder, _ = ckpt_corpus
    path = folder / case.name
    with urllib.request.urlopen(url + "config", timeout=10) as r:
        config = r.read().decode()
    skipped = [line for line in log if line.startswith("skipped: ") and f"{path}:" in line]
    reason = case.refused or (case.evaluate if case.name != "nan-output.ckpt" else None)
    if reason:
        assert len(skipped) == 1 and reason in skipped[0], (reason, log)
        assert str(path) not in config and "100.0 dB" not in skipped[0]
        return
    assert skipped == [] and str(path) in config
    with pytest.raises(AppError, match="NaN or infinite") as info:
        _demo_predict(client, corpus["rgb.png"][0], path)
    assert "100" not in str(info.value)


# --------------------------------------------------------------------- the real entry points, a sample
@pytest.mark.parametrize("image, ckpt, reason", [
    ("truncated.png", None, "corrupt or truncated"),
    ("rgb.png", "nan-output.ckpt", "NaN or infinite"),
    ("rgb.png", "pickle-payload.ckpt", "which is code, not weights"),
])
def test_python_m_predict_gives_the_same_one_line_as_in_process(image, ckpt, reason, corpus, good_ckpt, ckpt_corpus,
                                                               tmp_path):
    """The in-process runs above stand for ``python -m``: a sample checked through the real entry point."""
    folder, marker = ckpt_corpus
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{folder}", PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, "-m", "src.inference.predict", "--checkpoint", str(folder / ckpt if ckpt else good_ckpt),
                          "--input", str(corpus[image][0]), "--output", str(tmp_path / "out")],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert_one_line_error(res.returncode, res.stderr, reason)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not marker.exists()
