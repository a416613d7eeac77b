"""The Gradio demo: the real server on a free port, driven by gradio_client and headless Chromium."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.io.images import read_rgb
from src.models import exact_sobel_net, load_model, save_model
from src.demo import support as demo_support
from src.demo.support import Checkpoint, compare, find_checkpoints
from src.io.images import to_uint8
from src.inference.predict import predict
from tests.conftest import ROOT, keep_screenshot, settled_screenshot

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_CHROMIUM = ("no headless Chromium found (looked for {names} on PATH and Playwright's own browser); install one: "
                    "Debian: sudo apt-get install chromium; Ubuntu, whose apt chromium is a snap stub that does not run "
                    "headless in CI: .venv/bin/python -m playwright install --with-deps chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_S = 60


def is_snap_stub(path: str) -> bool:
    """Ubuntu's apt "chromium" is a wrapper that starts the snap, which does not run headless in containers."""
    real = os.path.realpath(path)
    if real.startswith("/snap/"):
        return True
    try:
        with open(real, "rb") as f:
            head = f.read(4096)
    except OSError:
        return True
    return head.startswith(b"#!") and b"snap" in head


def find_chromium() -> str | None:
    """A Chromium that runs headless: the first of CHROMIUM_NAMES on PATH (no snap stub), else Playwright's own."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path and not is_snap_stub(path):
            return path
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:  # playwright missing or its driver broken: treated as no browser
        return None
    return path if path and os.access(path, os.X_OK) else None


def detuned_sobel_net():
    """The exact Sobel net, slightly detuned, so prediction and reference differ visibly."""
    net = exact_sobel_net()
    with torch.no_grad():
        net.head.weight.mul_(0.9)
        net.head.bias.fill_(0.01)
    return net


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore", GRADIO_ANALYTICS_ENABLED="False")
    return subprocess.Popen([sys.executable, "demo_gradio.py", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.stdout.read()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    return save_model(models / "detuned-sobel.ckpt", detuned_sobel_net(), "compact", "sobel", metrics={"test_psnr": 31.27})


@pytest.fixture(scope="module")
def server(ckpt):
    """The demo as a user starts it, on a free port, serving ``ckpt``; stopped after the module."""
    port = free_port()
    proc = start_demo("--port", str(port), "--model", str(ckpt), "--models-dir", str(ckpt.parent))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"demo exited with {proc.returncode}:\n{stop(proc)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"demo did not answer within {WAIT_S} s:\n{stop(proc)}")
        time.sleep(0.5)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    from gradio_client import Client

    return Client(server, verbose=False, analytics_enabled=False, download_files=str(tmp_path_factory.mktemp("dl")),
                  httpx_kwargs={"timeout": WAIT_S})


def api_predict(client, path):
    from gradio_client import handle_file

    return client.submit(handle_file(str(path)), api_name="/predict").result(timeout=WAIT_S)


def test_api_prediction_equals_predict_on_an_odd_size_photo(client, ckpt, photo, tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    out = api_predict(client, src)
    assert str(out[0]).endswith(".png")
    got = np.asarray(Image.open(out[0]))
    want = to_uint8(predict(load_model(ckpt), photo))
    assert got.shape == photo.shape[:2]
    assert np.abs(got.astype(int) - want).max() <= 1
    assert "PSNR" in out[3] and "whole image" in out[3]


@pytest.mark.parametrize("name, content, message", [
    ("notes.png", b"this is text, not a picture\n", "not an image"),
    ("empty.png", b"", "empty file"),
    ("cut.png", None, "truncated"),
    ("huge.png", None, "over the 50 MP limit"),
])
def test_bad_upload_gives_a_readable_error_and_the_server_keeps_serving(client, photo, tmp_path, name, content, message):
    from gradio_client.exceptions import AppError

    bad = tmp_path / name
    if name == "cut.png":
        Image.fromarray(photo).save(bad)
        bad.write_bytes(bad.read_bytes()[:2000])
    elif name == "huge.png":
        Image.new("1", (8000, 7000)).save(bad)  # 56 MP of zeros: a 7 kB file
    else:
        bad.write_bytes(content)
    with pytest.raises(AppError, match=message) as info:
        api_predict(client, bad)
    assert str(tmp_path) not in str(info.value) and "/tmp/gradio" not in str(info.value)
    good = tmp_path / "good.png"
    Image.fromarray(photo[:40, :50]).save(good)
    assert np.asarray(Image.open(api_predict(client, good)[0])).shape == (40, 50)


@pytest.mark.slow
def test_browser_uploads_an_image_and_sees_the_prediction(server, tmp_path):
    """Screenshot into tmp_path; ``make screenshot`` (DEMO_SCREENSHOT=figures/gradio.png) refreshes the README's."""
    chromium = find_chromium()
    if chromium is None:  # under CI=true this skip is a failure (tests/conftest.py)
        pytest.skip(INSTALL_CHROMIUM.format(names=", ".join(CHROMIUM_NAMES)))
    import skimage.data
    from playwright.sync_api import expect, sync_playwright

    src = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()).save(src)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=WAIT_S * 1000)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(server, timeout=WAIT_S * 1000)
            page.locator("#input input[type=file]").set_input_files(str(src), timeout=WAIT_S * 1000)
            page.locator("#prediction img").wait_for(state="visible", timeout=WAIT_S * 1000)
            expect(page.locator("#info")).to_contain_text("PSNR", timeout=WAIT_S * 1000)
            assert ".png" in page.locator("#prediction img").get_attribute("src")
            # Gradio dims outputs while an event is pending (the upload can trigger a second run): wait it out
            shot = settled_screenshot(page, tmp_path / "gradio.png", WAIT_S)
        finally:
            browser.close()
    assert read_rgb(shot).shape[1] == 1600
    keep_screenshot(shot, "DEMO_SCREENSHOT")


def test_demo_without_any_checkpoint_exits_with_a_clear_message(tmp_path):
    proc = start_demo("--port", str(free_port()), "--models-dir", str(tmp_path))
    try:
        proc.wait(timeout=WAIT_S)
    finally:
        out = stop(proc)
    assert proc.returncode == 2
    assert "no checkpoint" in out and "--model PATH" in out


def test_checkpoints_are_labelled_with_model_filter_and_test_psnr(ckpt):
    found, skipped = find_checkpoints(ckpt.parent)
    assert [c.label for c in found] == ["detuned-sobel.ckpt — compact, sobel, 31.3 dB"]
    assert skipped == []
    assert Checkpoint(Path("x.ckpt"), "autoencoder", "sobel", {}).label == "x.ckpt — autoencoder, sobel"


def test_large_images_are_tiled_with_the_same_result(photo, monkeypatch):
    net = detuned_sobel_net()
    whole = compare(net, photo, "sobel")
    monkeypatch.setattr(demo_support, "TILE_ABOVE_PIXELS", 100)
    monkeypatch.setattr(demo_support, "TILE", 64)
    tiled = compare(net, photo, "sobel")
    assert "tiled (64 px tiles)" in tiled.summary() and "whole image" in whole.summary()
    assert np.array_equal(tiled.prediction, whole.prediction)
    assert tiled.psnr == pytest.approx(whole.psnr)


def test_the_learned_operators_in_models_operators_are_listed_by_their_folder_and_name(ckpt, tmp_path):
    (tmp_path / "operators").mkdir()
    shutil.copy(ckpt, tmp_path / "operators" / "l0-smooth.ckpt")
    found, _ = find_checkpoints(tmp_path)
    assert [c.label for c in found] == ["operators/l0-smooth.ckpt — compact, sobel, 31.3 dB"]


def test_error_heat_map_is_scaled_to_the_largest_error():
    err = np.array([[0.0, 0.05], [0.1, 0.025]], np.float32)
    rgb = demo_support.heatmap(err, float(err.max()))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[1, 0].sum() > rgb[0, 1].sum() > rgb[1, 1].sum() > rgb[0, 0].sum()


def test_the_demo_lists_every_shipped_checkpoint_pix2pix_included():
    found, skipped = find_checkpoints(ROOT / "models")
    assert skipped == []
    models = {c.path.name: c.model for c in found}
    assert {"sobel.ckpt": "compact", "autoencoder.ckpt": "autoencoder", "pix2pix.ckpt": "pix2pix"}.items() <= models.items()
    assert "dB" in next(c.label for c in found if c.path.name == "pix2pix.ckpt")  # its test PSNR, recorded by training
