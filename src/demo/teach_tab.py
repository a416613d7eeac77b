"""The demo's Teach tab and ``/teach`` endpoint: learn a filter from one before/after pair in the browser.

Each browser session (Gradio's ``session_hash``; a ``gradio_client.Client`` is one session too) gets one
temporary folder under ``TEACH_DIR``: the *after* images filled from zoo filters, each job's training
folder and checkpoint. It is removed when the page is closed (``unload``) or after ``SESSION_KEEP_S`` of
inactivity (swept whenever a session starts). A session runs one job at a time; at most ``TEACH_JOBS``
jobs run on the server at once, the others wait in Gradio's queue, which shows their position. The
models a session taught appear in its Predict tab (``Sessions.taught``).
"""

import gc
import math
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src.demo.support import (
    TILE,
    TILE_ABOVE_PIXELS,
    Checkpoint,
    compare,
    heatmap,
    load_checkpoint,
    write_panel,
    write_panels,
)
from src.errors import UserError
from src.filters import get_filter
from src.filters.zoo import ZOO_FILTERS
from src.inference.predict import predict
from src.io.images import read_rgb, to_uint8, write_png
from src.models import load_model
from src.training.teach import (
    DEFAULT_STEPS,
    HOLDOUT,
    MAX_PAIR_PIXELS,
    MAX_STEPS,
    TEACH_MODELS,
    check_pair,
    describe,
    holdout_prediction,
    teach,
)

TEACH_DIR = Path(tempfile.gettempdir()) / "learn-filters-teach"
TEACH_JOBS = 2  # jobs training at once on the server (each uses one CPU thread for the compact net)
SESSION_KEEP_S = 3600  # an idle session's folder is removed after this
POLL_S = 0.5  # how often the live curve refreshes


def fill_choices() -> list[str]:
    """Zoo filters that can fill *after* from *before* (the zoo run's list, in its order)."""
    return [name for name, _ in ZOO_FILTERS]


@dataclass
class Taught:
    path: Path
    model: str
    psnr: float
    source: str | None  # the zoo filter that made *after*, when one did

    @property
    def label(self) -> str:
        src = f" ({self.source})" if self.source else ""
        return f"taught: {self.path.parent.name}{src} — {self.model}, {self.psnr:.1f} dB held out"


@dataclass
class Session:
    folder: Path
    used: float = field(default_factory=time.time)
    busy: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    taught: list[Taught] = field(default_factory=list)
    filled: dict[str, str] = field(default_factory=dict)  # after-image path -> zoo filter that made it
    jobs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    """Per-session folders and taught models, by Gradio session hash (thread-safe)."""

    def __init__(self, root: Path = TEACH_DIR, keep_s: float = SESSION_KEEP_S):
        self.root, self.keep_s = Path(root), keep_s
        self._by_hash: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, session_hash: str | None) -> Session:
        key = session_hash or "anonymous"
        with self._lock:
            self._sweep()
            s = self._by_hash.get(key)
            if s is None:
                self.root.mkdir(parents=True, exist_ok=True)
                s = self._by_hash[key] = Session(Path(tempfile.mkdtemp(dir=self.root)))
            s.used = time.time()
            return s

    def _sweep(self) -> None:
        now = time.time()
        for key, s in list(self._by_hash.items()):
            if not s.busy and now - s.used > self.keep_s:
                self._drop(key)

    def _drop(self, key: str) -> None:
        s = self._by_hash.pop(key, None)
        if s is not None:
            s.stop.set()  # a job still running ends at its next step
            shutil.rmtree(s.folder, ignore_errors=True)

    def close(self, session_hash: str | None) -> None:
        """The page was closed: stop its job and remove its folder."""
        with self._lock:
            self._drop(session_hash or "anonymous")

    def taught(self, session_hash: str | None, path: str | None) -> Taught | None:
        with self._lock:
            s = self._by_hash.get(session_hash or "anonymous")
            return next((t for t in s.taught if str(t.path) == path), None) if s else None

    def choices(self, session_hash: str | None) -> list[tuple[str, str]]:
        with self._lock:
            s = self._by_hash.get(session_hash or "anonymous")
            return [(t.label, str(t.path)) for t in s.taught] if s else []


def fill_after(session: Session, before_path: str, filter_name: str) -> str:
    """Apply the zoo filter ``filter_name`` to *before*; the PNG lands in the session's folder."""
    params = dict(ZOO_FILTERS)[filter_name]
    rgb = read_rgb(before_path, max_pixels=MAX_PAIR_PIXELS)
    out = session.folder / "filled" / f"{filter_name}-{time.time_ns()}.png"
    write_png(out, get_filter(filter_name, **params)(rgb))
    session.filled[str(out)] = filter_name
    return str(out)


def curve_frame(points: list[tuple[int, float]], baseline: float | None):
    """The live plot's data: validation PSNR per step, and the baseline as a flat line."""
    import pandas as pd  # start-up: pandas only when called

    rows = [{"step": step, "psnr": v, "series": "held-out stripe"} for step, v in points]
    if baseline is not None and points:
        rows += [{"step": points[0][0], "psnr": baseline, "series": "baseline"},
                 {"step": points[-1][0], "psnr": baseline, "series": "baseline"}]
    return pd.DataFrame(rows, columns=["step", "psnr", "series"]).astype({"step": int, "psnr": float})


class Job:
    """One teaching run in a background thread, watched by the page (``points``, ``step``) until ``done``."""
    def __init__(self, session: Session, before: str, after: str, model: str, steps: int):
        self.session, self.points, self.step, self.max_steps = session, [], 0, steps
        self.baseline: float | None = None
        self.result: tuple[Path, dict[str, Any]] | None = None
        self.error: BaseException | None = None
        session.jobs += 1
        self.workdir = session.folder / f"job{session.jobs}"
        self.args = (before, after, model, steps, session.filled.get(after))
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"teach-{self.workdir.name}")

    def _progress(self, event: dict[str, Any]) -> None:
        self.step, self.baseline = event["step"], event["baseline_psnr"]
        if event["val_psnr"] is not None:
            self.points.append((event["step"], event["val_psnr"]))

    def _run(self) -> None:
        before, after, model, steps, source = self.args
        try:
            self.result = teach(before, after, model=model, max_steps=steps, workdir=self.workdir,
                                progress=self._progress, stop=self.session.stop, source=source)
        except BaseException as exc:  # reported to the page by the watcher
            self.error = exc
        finally:
            self.session.busy = False

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def start_job(session: Session, before: str | None, after: str | None, model: str, steps: Any) -> Job:
    """Check what can be checked at once, then start the job (one per session)."""
    if before is None or after is None:
        raise UserError("upload a before image and an after image (or pick a zoo filter to make the after image)")
    if model not in TEACH_MODELS:
        raise UserError(f"unknown network {model!r}; choose one of {', '.join(TEACH_MODELS)}")
    if isinstance(steps, float) and steps.is_integer():  # a slider or number field sends 150.0
        steps = int(steps)
    with session.lock:
        if session.busy:
            raise UserError("this session is already teaching a model; wait for it or press Stop")
        session.busy = True
    session.stop.clear()
    job = Job(session, before, after, model, DEFAULT_STEPS[model] if steps in (None, "") else steps)
    job.thread.start()
    return job


def finish_job(session: Session, job: Job) -> tuple[Path, dict[str, Any]]:
    """The job's result (its error re-raised); the model joins the session's Predict list."""
    job.thread.join()
    # The run's memory, collected once its thread has ended: collected inside the job (the end of train()), the
    # server still grew ~30 MB a job; here it stays flat (12 jobs in one process: 1,263-1,302 MB; src.demo.soak).
    gc.collect()
    if job.error is not None:
        raise job.error
    path, summary = job.result
    session.taught.append(Taught(path, summary["model"], summary["holdout_psnr"], summary["source"]))
    return path, summary


def holdout_panels(path: Path, before: str, after: str, folder: Path) -> tuple[str, str]:
    """The model's output and its |error| heat map on the held-out stripe, as PNG files in ``folder``."""
    b, a, channels = check_pair(before, after)
    pred, target = holdout_prediction(load_model(path), b, a, channels)
    err = np.abs(pred - target)
    err = err.max(axis=2) if err.ndim == 3 else err
    vmax = float(err.max())
    return (write_panel(folder / "holdout-output.png", to_uint8(pred), "holdout-output"),
            write_panel(folder / "holdout-error.png", heatmap(err, vmax), "holdout-error"))


def status_line(job: Job) -> str:
    best = max((v for _, v in job.points), default=None)
    parts = [f"step {job.step} of {job.max_steps}"]
    if best is not None:
        parts.append(f"best held-out PSNR {best:.2f} dB")
    if job.baseline is not None and math.isfinite(job.baseline):
        parts.append(f"baseline {job.baseline:.2f} dB")
    return " · ".join(parts)


INTRO = (
    "### Teach by example\n"
    "Upload a *before* image and the same picture *after* some filter (or pick a zoo filter to make the "
    "*after* image), choose a network and press **Learn**. The network trains on random crops of the top "
    f"{100 - HOLDOUT * 100:.0f} % of the pair; the bottom {HOLDOUT * 100:.0f} % of the rows is **held out**: "
    "the curve, the choice of the best weights and the scores below are measured there, beside the trivial "
    "baseline (the better of outputting the *before* image and outputting zeros). "
    f"Limits: {MAX_PAIR_PIXELS / 1e6:.0f} MP per image, at most {MAX_STEPS} steps, one job per browser "
    f"session, {TEACH_JOBS} jobs on the server at once (others wait in the queue, their position shown). "
    "The learned model joins this session's model list in the Predict tab; uploads and models are kept in a "
    "temporary folder that is removed when you close the page."
)


def predict_taught(taught: Taught, rgb: np.ndarray, folder: Path) -> tuple[str, str | None, str | None, str]:
    """The Predict tab for a taught model: compared with the zoo filter that made its example, if one did;
    otherwise its output alone (a filter known from one example has no reference on other images)."""
    net = load_checkpoint(Checkpoint(taught.path, taught.model, "pairs", {}))
    if taught.source:
        result = compare(net, rgb, taught.source, dict(ZOO_FILTERS)[taught.source])
        return (*write_panels(result, folder), result.summary() + f"\n\n*Taught from one example pair made by the "
                f"{taught.source!r} filter; the reference here is that filter.*")
    t0 = time.perf_counter()
    pred = predict(net, rgb, tile=TILE if rgb.shape[0] * rgb.shape[1] > TILE_ABOVE_PIXELS else None)
    seconds = time.perf_counter() - t0
    write_png(folder / "prediction.png", pred)
    h, w = rgb.shape[:2]
    return (str(folder / "prediction.png"), None, None,
            f"**time** model {seconds:.3f} s · {w}×{h} px · taught from one example pair: there is no reference "
            "filter for other images, so only the model's output is shown")


NO_FILL = "(upload the after image)"  # the fill dropdown's first entry: keep the uploaded after image


@dataclass
class TeachPanel:
    """The Teach tab's components that its events read or write."""
    before: Any
    after: Any
    fill: Any
    net: Any
    steps: Any
    learn_btn: Any
    stop_btn: Any
    status: Any
    plot: Any
    out_img: Any
    err_img: Any
    summary_md: Any
    download: Any


def user_error(gr, exc: UserError):
    """A ``UserError`` as the toast Gradio shows, without a stack trace in the server log."""
    return gr.Error(str(exc), print_exception=False)


def build_teach_inputs(gr) -> tuple[Any, Any, Any, Any, Any]:
    """The *before* / *after* uploads, the zoo-filter fill, the network and the step budget."""
    upload = dict(type="filepath", image_mode=None, format="png", sources=["upload", "clipboard"],
                  buttons=["fullscreen"])
    with gr.Row(equal_height=True):
        before = gr.Image(label="Before", elem_id="teach-before", **upload)
        after = gr.Image(label="After", elem_id="teach-after", **upload)
    with gr.Row():
        fill = gr.Dropdown([NO_FILL] + fill_choices(), value=NO_FILL,
                           label="…or make the after image with a zoo filter", elem_id="teach-fill")
        net = gr.Radio(list(TEACH_MODELS), value="compact", label="Network", elem_id="teach-model",
                       info="compact: a few dozen weights, gray or RGB bank chosen from the after image; can: a "
                            "small context-aggregation network (slower, for photographic operators)")
        steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS["compact"], step=1, label="Step budget",
                          elem_id="teach-steps")
    return before, after, fill, net, steps


def build_teach_panel(gr) -> TeachPanel:
    """The Teach tab's layout: introduction, inputs, buttons, live curve and the learned model's outputs."""
    gr.Markdown(INTRO)
    before, after, fill, net, steps = build_teach_inputs(gr)
    with gr.Row():
        learn_btn = gr.Button("Learn", variant="primary", elem_id="teach-learn")
        stop_btn = gr.Button("Stop", elem_id="teach-stop")
    status = gr.Markdown(elem_id="teach-status")
    plot = gr.LinePlot(x="step", y="psnr", color="series", x_title="step", y_title="PSNR (dB)",
                       label="Held-out PSNR while learning",
                       elem_id="teach-plot", height=300)
    shown = dict(format="png", interactive=False, buttons=["download", "fullscreen"])
    with gr.Row(equal_height=True):
        out_img = gr.Image(label="Model output on the held-out stripe", elem_id="teach-output", **shown)
        err_img = gr.Image(label="|error| on the held-out stripe", elem_id="teach-error", **shown)
    summary_md = gr.Markdown(elem_id="teach-summary")
    download = gr.File(label="Learned checkpoint (load_model, predict --checkpoint)", elem_id="teach-download",
                       interactive=False)
    return TeachPanel(before, after, fill, net, steps, learn_btn, stop_btn, status, plot, out_img, err_img,
                      summary_md, download)


def learn_handler(gr, sessions: Sessions, uploaded_path, model_choices):
    """The Learn button: start a job, stream its curve, then show the held-out panels and select the model."""
    def learn(before_payload, after_payload, model, budget, filter_name, request: gr.Request):
        session = sessions.get(request.session_hash)
        try:
            job = start_job(session, uploaded_path(before_payload), uploaded_path(after_payload), model, budget)
        except UserError as exc:
            raise user_error(gr, exc) from None
        skip = (gr.skip(),) * 5
        try:
            while not job.done:  # the plot waits for its first point (an empty frame leaves it without colours)
                yield status_line(job), curve_frame(job.points, job.baseline) if job.points else gr.skip(), *skip
                time.sleep(POLL_S)
            path, summary = finish_job(session, job)
            output, error = holdout_panels(path, *job.args[:2], job.workdir)
        except UserError as exc:
            raise user_error(gr, exc) from None
        except GeneratorExit:  # the page went away: end the run
            session.stop.set()
            raise
        choices = model_choices(filter_name) + sessions.choices(request.session_hash)
        yield (f"done: {status_line(job)}", curve_frame(job.points, job.baseline), output, error,
               describe(summary), str(path), gr.Dropdown(choices=choices, value=str(path)))

    return learn


def wire_teach_events(gr, panel: TeachPanel, sessions: Sessions, uploaded_path, model_dd, filter_dd,
                      model_choices) -> None:
    """Fill *after* from a zoo filter, follow the network's default budget, Learn and Stop."""

    def on_fill(before_payload, name, request: gr.Request):
        if name == NO_FILL or before_payload is None:
            return gr.skip()
        try:
            return fill_after(sessions.get(request.session_hash), uploaded_path(before_payload), name)
        except UserError as exc:
            raise user_error(gr, exc) from None

    def stop(request: gr.Request):
        sessions.get(request.session_hash).stop.set()

    def on_model(model):
        return DEFAULT_STEPS[model]

    panel.fill.change(on_fill, [panel.before, panel.fill], panel.after, preprocess=False, api_visibility="private")
    panel.before.change(on_fill, [panel.before, panel.fill], panel.after, preprocess=False, api_visibility="private")
    panel.net.change(on_model, panel.net, panel.steps, api_visibility="private")
    panel.learn_btn.click(learn_handler(gr, sessions, uploaded_path, model_choices),
                          [panel.before, panel.after, panel.net, panel.steps, filter_dd],
                          [panel.status, panel.plot, panel.out_img, panel.err_img, panel.summary_md, panel.download,
                           model_dd],
                          preprocess=False, concurrency_id="teach", concurrency_limit=TEACH_JOBS,
                          api_visibility="private")
    panel.stop_btn.click(stop, None, None, concurrency_limit=None, api_visibility="private")


def add_teach_endpoint(gr, sessions: Sessions) -> None:
    """``/teach``: the same job for scripts (gradio_client), sharing the server's job cap."""
    api_before, api_after = gr.File(visible=False), gr.File(visible=False)
    api_model, api_steps = gr.Textbox(value="compact", visible=False), gr.Number(value=None, visible=False)
    api_ckpt, api_summary = gr.File(visible=False), gr.JSON(visible=False)

    def teach_api(before_file, after_file, model, budget, request: gr.Request):
        """Learn a filter from BEFORE and AFTER (files); returns the checkpoint file and a summary."""
        session = sessions.get(request.session_hash)
        try:
            job = start_job(session, before_file, after_file, model or "compact", budget)
            path, summary = finish_job(session, job)
        except UserError as exc:
            raise user_error(gr, exc) from None
        # model_id: the value that selects this model in /predict (the Predict tab's model list) for this session
        return str(path), {**summary, "model_id": str(path)}

    gr.Button(visible=False).click(teach_api, [api_before, api_after, api_model, api_steps], [api_ckpt, api_summary],
                                   api_name="teach", concurrency_id="teach", concurrency_limit=TEACH_JOBS)


def build_teach_tab(gr, sessions: Sessions, uploaded_path, model_dd, filter_dd, model_choices) -> None:
    """The Teach tab's components and events, inside the caller's ``gr.Tab``; also the ``/teach`` endpoint.

    ``uploaded_path``: the demo's payload -> path helper; ``model_dd``, ``filter_dd``, ``model_choices``: the
    Predict tab's model list, which gains each model taught in the session.
    """
    panel = build_teach_panel(gr)
    wire_teach_events(gr, panel, sessions, uploaded_path, model_dd, filter_dd, model_choices)
    add_teach_endpoint(gr, sessions)
