"""A black-box filter known from examples: a folder of inputs and a folder of their outputs.

Files are matched by their path relative to the folder without the suffix (``a/x.jpg`` <-> ``a/x.png``),
and every pair must have the same width and height. All problems (inputs without an output, outputs
without an input, size mismatches, unreadable files) are collected and refused in one error before
training starts. Outputs that are gray in every file (R = G = B) are learned as one channel.

The examples define a filter, ``get_filter("pairs", in_dir=..., out_dir=...)``, that knows its
outputs on exactly its example inputs (looked up by content), so evaluation and checkpoints work as
for any other filter. Training on them: :mod:`src.dataset.pairs`.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from src.errors import UserError
from src.filters.registry import Filter, register
from src.io.images import NamedImage, list_images, read_rgb

MAX_LISTED = 5


def _stem(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix(""))


def _listed(items: list[str]) -> str:
    more = f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def _by_stem(root: Path) -> dict[str, Path]:
    """Images of ``root`` by name without suffix; two files with one name (``x.png``, ``x.jpg``) are refused."""
    by_stem: dict[str, list[Path]] = {}
    for p in list_images(root)[0]:
        by_stem.setdefault(_stem(p, root), []).append(p)
    if ambiguous := sorted(" / ".join(q.name for q in ps) for ps in by_stem.values() if len(ps) > 1):
        raise UserError(f"--pairs: {len(ambiguous)} ambiguous name(s) in {root}, pairs are matched by name without "
                        f"the extension ({_listed(ambiguous)}); keep one file per name")
    return {k: ps[0] for k, ps in by_stem.items()}


def match_pairs(in_dir: str | Path, out_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """``(name, input_path, output_path)`` for every matched pair; one ``UserError`` listing every mismatch."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    for d, what in ((in_dir, "input"), (out_dir, "output")):
        if not d.is_dir():
            raise UserError(f"--pairs: {what} folder {d} does not exist")
    ins, outs = _by_stem(in_dir), _by_stem(out_dir)
    problems = []
    if missing_out := sorted(set(ins) - set(outs)):
        problems.append(f"{len(missing_out)} input(s) without an output in {out_dir} ({_listed(missing_out)})")
    if missing_in := sorted(set(outs) - set(ins)):
        problems.append(f"{len(missing_in)} output(s) without an input in {in_dir} ({_listed(missing_in)})")
    if problems:
        raise UserError("--pairs: " + "; ".join(problems))
    if not ins:
        raise UserError(f"--pairs: no images in {in_dir} and {out_dir}")
    return [(name, ins[name], outs[name]) for name in sorted(ins)]


def content_key(rgb: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()


@lru_cache(maxsize=4)
def load_pairs(in_dir: str, out_dir: str) -> tuple[list[NamedImage], dict[str, np.ndarray], int]:
    """Inputs, their targets (float32 ``(H, W, C)`` in [0, 1], by content key) and the channel count C."""
    pairs = match_pairs(in_dir, out_dir)
    inputs, targets, problems = [], {}, []
    for name, pin, pout in pairs:
        try:
            rgb, out = read_rgb(pin), read_rgb(pout)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if rgb.shape != out.shape:
            problems.append(f"{name}: input {rgb.shape[1]}x{rgb.shape[0]} vs output {out.shape[1]}x{out.shape[0]}")
            continue
        inputs.append(NamedImage(name, rgb))
        targets[content_key(rgb)] = out
    if problems:
        raise UserError(f"--pairs: {len(problems)} pair(s) refused: {_listed(problems)}")
    gray = all((t[..., 0] == t[..., 1]).all() and (t[..., 0] == t[..., 2]).all() for t in targets.values())
    channels = 1 if gray else 3
    targets = {k: (t[..., :channels].astype(np.float32) / np.float32(255.0)) for k, t in targets.items()}
    return inputs, targets, channels


def pairs_filter(in_dir: str, out_dir: str) -> Filter:
    """The filter the examples define; it answers only for its example inputs."""
    in_dir, out_dir = str(in_dir), str(out_dir)
    _, targets, channels = load_pairs(in_dir, out_dir)

    def reference(rgb: np.ndarray) -> np.ndarray:
        t = targets.get(content_key(rgb))
        if t is None:
            raise UserError(f"the 'pairs' filter knows only the {len(targets)} example inputs in {in_dir}; "
                            "this image is not one of them")
        return t[..., 0] if channels == 1 else t

    return Filter(name="pairs", params={"in_dir": in_dir, "out_dir": out_dir}, reference=reference,
                  out_channels=channels, description=f"examples {in_dir} -> {out_dir}",
                  extra={"key": f"pairs-{Path(out_dir).name or 'out'}"})


@register("pairs", "A black-box filter known from examples: inputs in in_dir, outputs in out_dir (--pairs)")
def make_pairs(in_dir: str, out_dir: str) -> Filter:
    return pairs_filter(in_dir, out_dir)
