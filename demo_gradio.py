"""The Gradio demo: input, reference filter, model prediction and |error| side by side.

    python demo_gradio.py [--host 127.0.0.1] [--port 7860] [--model models/sobel.ckpt] [--models-dir models]

Serves on 127.0.0.1 only unless ``--host`` says otherwise; no share link, no analytics. Requests queue
(``--queue-size``, default 64) for 5 worker threads; images over ``HEAVY_ABOVE_PIXELS`` also take one of
``HEAVY_WORKERS`` large-image slots (``HEAVY_WAITING`` more may wait for it, further ones are refused at
once), so ``LIGHT_WORKERS`` threads always serve the ordinary images while a 40 MP upload runs. The API
endpoint ``/predict`` takes an image file and returns the prediction (8-bit PNG, the input's size)
first, then the reference, the heat map and the summary, e.g. with ``gradio_client``:
``Client("http://127.0.0.1:7860/").predict(handle_file("photo.jpg"), api_name="/predict")``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Sequence

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: it reads this at import

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from src.cli import run_cli  # noqa: E402
from src.demo.support import (  # noqa: E402
    TILE,
    TILE_ABOVE_PIXELS,
    Checkpoint,
    HeavyGate,
    compare,
    find_checkpoints,
    load_checkpoint,
    read_upload,
    write_examples,
    write_panels,
)
from src.demo.teach_tab import Sessions, build_teach_tab, predict_taught  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.filters import available  # noqa: E402
from src.io.images import MAX_PIXELS  # noqa: E402

DEFAULT_MODEL = Path("models/sobel.ckpt")
MAX_UPLOAD = "200mb"  # bytes on the wire; the pixel limit (MAX_PIXELS) is checked from the header
QUEUE_SIZE = 64  # requests waiting at most (20 simultaneous users fit)
LIGHT_WORKERS = 2  # threads always free for images up to HEAVY_ABOVE_PIXELS
HEAVY_ABOVE_PIXELS = 8_000_000
HEAVY_WORKERS, HEAVY_WAITING = 1, 2  # large images: one at a time, two more may wait
PANELS_DIR = Path(tempfile.gettempdir()) / "learn-filters-demo-panels"
PANELS_KEEP_S = 600  # each request's PNG files are removed after this (Gradio keeps its own copy)


def image_pixels(path: str) -> int:
    """Pixel count from the file header (0 if unreadable: ``read_upload`` then says why)."""
    try:
        with Image.open(path) as im:
            return im.size[0] * im.size[1]
    except Exception:  # any decoding problem is reported by read_upload with the file's name
        return 0


def panels_folder() -> Path:
    """A fresh folder for one request's PNG panels; folders older than ``PANELS_KEEP_S`` are removed."""
    PANELS_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in PANELS_DIR.iterdir():
        try:
            if now - old.stat().st_mtime > PANELS_KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=PANELS_DIR))


def uploaded_path(payload: dict | None) -> str | None:
    """The server-side path of an uploaded file, from the raw ``gr.Image`` payload.

    The events run with ``preprocess=False``: the stock ``gr.Image`` preprocessing opens the file
    with PIL first, so a text file or an empty file would fail inside Gradio with no readable
    message; this way ``read_upload`` sees every file and explains. (Gradio still checks that the
    path lies in its upload folder before the function runs.)
    """
    if payload is None:
        return None
    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        raise gr.Error("no image file was received; upload a file")
    return path


INTRO = (
    "# Learned image filters\n"
    "Upload an image (or pick an example), choose a filter and a trained model, and compare the model's "
    f"prediction with the reference filter. Any size up to {MAX_PIXELS / 1e6:.0f} MP; images above "
    f"{TILE_ABOVE_PIXELS / 1e6:.0f} MP go through {TILE} px tiles and wait for a large-image slot above "
    f"{HEAVY_ABOVE_PIXELS / 1e6:.0f} MP. Outputs are lossless PNG. The **Teach** tab learns a new filter "
    "from one before/after pair."
)


class PredictHandlers:
    """The Predict tab's events over the given checkpoints and the models each session taught."""

    def __init__(self, checkpoints: list[Checkpoint], sessions: Sessions, trust_filter: bool = False):
        self.checkpoints, self.sessions, self.trust_filter = checkpoints, sessions, trust_filter
        self.by_path = {str(c.path): c for c in checkpoints}
        self.heavy = HeavyGate(HEAVY_WORKERS, HEAVY_WAITING)

    def model_choices(self, filter_name: str) -> list[tuple[str, str]]:
        return [(c.label, str(c.path)) for c in self.checkpoints if c.filter == filter_name]

    def run(self, image: dict | None, filter_name: str, model_path: str | None, request: gr.Request = None):
        image_path = uploaded_path(image)
        if image_path is None:
            raise gr.Error("upload an image or pick an example first")
        ckpt = self.by_path.get(model_path or "")
        taught = (self.sessions.taught(request.session_hash if request else None, model_path)
                  if ckpt is None else None)
        if taught is not None:  # a model this session taught (the Teach tab)
            try:
                if image_pixels(image_path) > HEAVY_ABOVE_PIXELS:
                    with self.heavy.slot():
                        return predict_taught(taught, read_upload(image_path), panels_folder())
                return predict_taught(taught, read_upload(image_path), panels_folder())
            except UserError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
        if ckpt is None:
            raise gr.Error(f"no checkpoint for the {filter_name!r} filter; train one or start the demo with --model PATH")
        if ckpt.filter != filter_name:
            raise gr.Error(f"{ckpt.path.name} was trained for the {ckpt.filter!r} filter, not {filter_name!r}")
        try:
            if image_pixels(image_path) > HEAVY_ABOVE_PIXELS:
                with self.heavy.slot():
                    return self._compare(ckpt, image_path)
            return self._compare(ckpt, image_path)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def _compare(self, ckpt: Checkpoint, image_path: str):
        notes: list[str] = []
        rgb = read_upload(image_path, notes=notes)
        result = compare(load_checkpoint(ckpt), rgb, ckpt.filter, ckpt.filter_params, self.trust_filter)
        stated = "".join(f"\n\n*Input:* {note}" for note in notes)
        return (*write_panels(result, panels_folder()), result.summary() + stated)

    def run_if_image(self, image: dict | None, filter_name: str, model_path: str | None, request: gr.Request = None):
        """Re-run when the image or the model changes; a cleared image clears the outputs."""
        return (None, None, None, "") if image is None else self.run(image, filter_name, model_path, request)

    def on_filter(self, filter_name: str, request: gr.Request = None):
        choices = self.model_choices(filter_name) + self.sessions.choices(request.session_hash if request else None)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


class PredictTab(NamedTuple):
    """The Predict tab's components that its events read or write."""
    filter_dd: gr.Dropdown
    model_dd: gr.Dropdown
    run_btn: gr.Button
    image_in: gr.Image
    reference: gr.Image
    prediction: gr.Image
    error_map: gr.Image
    info: gr.Markdown


def build_predict_tab(handlers: PredictHandlers, default: Checkpoint, examples: list[Path]) -> PredictTab:
    """The Predict tab's layout: filter and model lists, input, reference, prediction, heat map and examples."""
    with gr.Tab("Predict", elem_id="predict-tab"):
        with gr.Row():
            filter_dd = gr.Dropdown(list(available()), value=default.filter, label="Filter")
            model_dd = gr.Dropdown(handlers.model_choices(default.filter), value=str(default.path), label="Model",
                                   scale=2)
            run_btn = gr.Button("Run", variant="primary", elem_id="run")
        with gr.Row(equal_height=True):
            image_in = gr.Image(label="Input", type="filepath", image_mode=None, format="png",
                                sources=["upload", "clipboard"], buttons=["fullscreen"], elem_id="input")
            shown = dict(format="png", interactive=False, buttons=["download", "fullscreen"])
            reference = gr.Image(label="Reference filter", elem_id="reference", **shown)
            prediction = gr.Image(label="Model prediction", elem_id="prediction", **shown)
            error_map = gr.Image(label="|error| heat map", elem_id="error", **shown)
        info = gr.Markdown(label="Summary", elem_id="info")
        gr.Examples([[str(p)] for p in examples], inputs=[image_in], label="Examples (scikit-image test photos)")
    return PredictTab(filter_dd, model_dd, run_btn, image_in, reference, prediction, error_map, info)


def wire_predict_events(tab: PredictTab, handlers: PredictHandlers) -> None:
    """Run (also ``/predict``), re-run on a new image or model, and list the models of the chosen filter."""
    inputs = [tab.image_in, tab.filter_dd, tab.model_dd]
    outputs = [tab.prediction, tab.reference, tab.error_map, tab.info]
    workers = dict(concurrency_id="compare", concurrency_limit=LIGHT_WORKERS + HEAVY_WORKERS + HEAVY_WAITING)
    tab.run_btn.click(handlers.run, inputs, outputs, api_name="predict", preprocess=False, **workers)
    gr.on([tab.image_in.change, tab.model_dd.change], handlers.run_if_image, inputs, outputs,
          api_visibility="private", preprocess=False, **workers)
    tab.filter_dd.change(handlers.on_filter, tab.filter_dd, tab.model_dd, api_visibility="private")


def build_app(checkpoints: list[Checkpoint], default: Checkpoint, examples: list[Path],
              trust_filter: bool = False) -> gr.Blocks:
    """The page and its ``/predict`` endpoint, over the given checkpoints."""
    sessions = Sessions()  # the Teach tab's per-session folders and taught models
    handlers = PredictHandlers(checkpoints, sessions, trust_filter)

    def close_session(request: gr.Request):
        sessions.close(request.session_hash)

    with gr.Blocks(title="Learned image filters", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(INTRO)
        tab = build_predict_tab(handlers, default, examples)
        wire_predict_events(tab, handlers)
        with gr.Tab("Teach", elem_id="teach-tab"):
            build_teach_tab(gr, sessions, uploaded_path, tab.model_dd, tab.filter_dd, handlers.model_choices)
        app.unload(close_session)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python demo_gradio.py", description="Gradio demo of the learned filters.")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--model", default=None, help=f"checkpoint selected at start (default {DEFAULT_MODEL})")
    ap.add_argument("--models-dir", default="models", help="every *.ckpt here is offered in the model list")
    ap.add_argument("--queue-size", type=int, default=QUEUE_SIZE, help="requests that may wait (more are refused)")
    ap.add_argument("--trust-filter", action="store_true",
                    help="allow checkpoints whose filter is code (MODULE:FUNCTION), imported when first used")
    args = ap.parse_args(argv)
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected a port number in 1..65535")
    if args.queue_size < 1:
        raise UserError(f"--queue-size must be at least 1, got {args.queue_size}")

    checkpoints, skipped = find_checkpoints(args.models_dir, extra=args.model, trust_filter=args.trust_filter)
    for line in skipped:
        print(f"skipped: {line}")
    if not checkpoints:
        raise UserError(f"no checkpoint: {args.model or DEFAULT_MODEL} does not exist and {args.models_dir}/ holds "
                        "no readable *.ckpt; train one first (make train) or pass --model PATH")
    default = checkpoints[0]
    if args.model is None:
        default = next((c for c in checkpoints if c.path == DEFAULT_MODEL), default)
    examples = write_examples(Path(tempfile.gettempdir()) / "learn-filters-demo-examples")
    if args.host != "127.0.0.1":
        print(f"warning: serving on {args.host}: other machines on the network can reach the demo")
    build_app(checkpoints, default, examples, args.trust_filter).queue(max_size=args.queue_size).launch(
        server_name=args.host, server_port=args.port, share=False, max_file_size=MAX_UPLOAD,
        ssr_mode=False, mcp_server=False, footer_links=["api"],
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
