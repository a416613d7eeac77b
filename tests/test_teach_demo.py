"""The demo's Teach tab and /teach endpoint on the real server: gradio_client and headless Chromium."""

import numpy as np
import pytest
from PIL import Image

from src.io.images import read_rgb
from src.filters import get_filter
from src.models import load_model, read_checkpoint
from src.io.images import to_uint8
from src.inference.predict import predict
from tests.conftest import keep_screenshot, settled_screenshot
from tests.test_demo import CHROMIUM_ARGS, CHROMIUM_NAMES, INSTALL_CHROMIUM, WAIT_S, ckpt, find_chromium, server  # noqa: F401

TEACH_WAIT_S = 240  # a few dozen training steps on a shared CPU


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """before.png (a 96 x 128 photo crop) and after.png (its random 3x3 linear filter, gray)."""
    import skimage.data

    folder = tmp_path_factory.mktemp("pair")
    before = np.ascontiguousarray(skimage.data.astronaut()[100:196, 150:278])
    Image.fromarray(before).save(folder / "before.png")
    Image.fromarray(to_uint8(get_filter("random", seed=1, size=3)(before))).save(folder / "after.png")
    return folder / "before.png", folder / "after.png"


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):  # noqa: F811
    from gradio_client import Client

    return Client(server, verbose=False, analytics_enabled=False, download_files=str(tmp_path_factory.mktemp("dl")),
                  httpx_kwargs={"timeout": TEACH_WAIT_S})


def test_api_teach_then_predict_with_the_taught_model_on_an_unseen_photo(client, pair_files, tmp_path):
    import skimage.data
    from gradio_client import handle_file

    before, after = pair_files
    ckpt_file, summary = client.submit(handle_file(str(before)), handle_file(str(after)), "compact", 20,
                                       api_name="/teach").result(timeout=TEACH_WAIT_S)
    assert read_checkpoint(ckpt_file)["filter"] == "pairs"
    assert summary["steps"] == 20 and summary["holdout_psnr"] > summary["baseline_psnr"] + 10
    unseen = tmp_path / "coffee.png"
    photo = skimage.data.coffee()[:70, :90]
    Image.fromarray(photo).save(unseen)
    out = client.submit(handle_file(str(unseen)), "sobel", summary["model_id"], api_name="/predict").result(timeout=WAIT_S)
    got = np.asarray(Image.open(out[0]))
    assert np.array_equal(got, to_uint8(predict(load_model(ckpt_file), photo)))
    assert out[1] is None and out[2] is None, "a filter known from one example has no reference on other photos"
    assert "no reference filter" in out[3]


def test_api_teach_refuses_a_pair_of_different_sizes_in_one_line(client, pair_files, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    before, _ = pair_files
    small = tmp_path / "small.png"
    Image.open(before).crop((0, 0, 100, 80)).save(small)
    with pytest.raises(AppError, match="differ in size: 128x96 vs 100x80"):
        client.submit(handle_file(str(before)), handle_file(str(small)), "compact", 10,
                      api_name="/teach").result(timeout=WAIT_S)


@pytest.mark.slow
def test_browser_teaches_a_pair_and_gets_the_curve_and_the_download(server, pair_files, tmp_path):  # noqa: F811
    """Screenshot into tmp_path; ``make screenshot`` (TEACH_SCREENSHOT=figures/teach.png) refreshes the README's."""
    chromium = find_chromium()
    if chromium is None:  # under CI=true this skip is a failure (tests/conftest.py)
        pytest.skip(INSTALL_CHROMIUM.format(names=", ".join(CHROMIUM_NAMES)))
    from playwright.sync_api import expect, sync_playwright

    before, after = pair_files
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=WAIT_S * 1000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, timeout=WAIT_S * 1000)
            page.get_by_role("tab", name="Teach").click()
            page.locator("#teach-before input[type=file]").set_input_files(str(before), timeout=WAIT_S * 1000)
            page.locator("#teach-after input[type=file]").set_input_files(str(after), timeout=WAIT_S * 1000)
            page.locator("#teach-before img").wait_for(state="visible", timeout=WAIT_S * 1000)
            page.locator("#teach-after img").wait_for(state="visible", timeout=WAIT_S * 1000)
            steps = page.locator("#teach-steps input[type=number]")
            steps.fill("20")
            steps.press("Enter")
            page.locator("#teach-learn").click()
            expect(page.locator("#teach-download a[href$='learned.ckpt']")).to_be_visible(timeout=TEACH_WAIT_S * 1000)
            expect(page.locator("#teach-summary")).to_contain_text("better", timeout=WAIT_S * 1000)
            expect(page.locator("#teach-plot canvas, #teach-plot svg").first).to_be_visible(timeout=WAIT_S * 1000)
            page.locator("#teach-output img").wait_for(state="visible", timeout=WAIT_S * 1000)
            shot = settled_screenshot(page, tmp_path / "teach.png", WAIT_S)
        finally:
            browser.close()
    assert read_rgb(shot).shape[1] == 1400
    keep_screenshot(shot, "TEACH_SCREENSHOT")


def test_every_teach_event_shares_the_servers_cap_of_teach_jobs():
    """The Learn button and /teach share one concurrency group; each must carry its limit (an event without one
    gets Gradio's default of 1, which had the API run one job at a time)."""
    from pathlib import Path

    import demo_gradio
    from src.demo.support import find_checkpoints
    from src.demo.teach_tab import TEACH_JOBS

    checkpoints, _ = find_checkpoints(Path("models"))
    app = demo_gradio.build_app(checkpoints, checkpoints[0], [])
    teach = {fn.api_name: fn.concurrency_limit for fn in app.fns.values() if fn.concurrency_id == "teach"}
    assert set(teach) == {"learn", "teach"} and set(teach.values()) == {TEACH_JOBS} and TEACH_JOBS == 2


def test_a_finished_teach_job_leaves_no_training_objects_behind(pair_files, tmp_path):
    """The server's memory per job (src.demo.soak): Lightning's trainer, module and data module form a reference
    cycle; with the cyclic collector left to itself (disabled here, as it may not run for many allocations),
    finish_job must still leave none of them alive (they held ~100 MB a 1 MP job)."""
    import gc

    import pytorch_lightning as pl

    from src.demo.teach_tab import Sessions, finish_job, start_job

    before, after = pair_files
    sessions = Sessions(root=tmp_path)
    gc.collect()
    gc.disable()
    try:
        session = sessions.get("soak")
        finish_job(session, start_job(session, str(before), str(after), "compact", 3))
        alive = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (pl.Trainer, pl.LightningModule,
                                                                               pl.LightningDataModule))]
    finally:
        gc.enable()
    assert alive == []
