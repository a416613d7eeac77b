"""Images on disk: read anything into RGB uint8 (one clear error for what is not an image), write PNGs atomically."""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from src.errors import TooManyPixels, UserError
from src.io.files import atomic_open, atomic_write_bytes

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
# Refuse before decoding: a 50 MP limit guards against decompression bombs (a tiny file, a huge canvas).
MAX_PIXELS = 50_000_000


ALPHA_BACKGROUNDS = {"white": 255, "black": 0}  # what a transparent pixel shows (predict --alpha)
# Float images are read by the range their values lie in: [0, 1], else 8-bit or 16-bit scales.
FLOAT_RANGES = (1.0, 255.0, 65535.0)


@dataclass
class NamedImage:
    """An image and the name it is reported under (a file's relative path, or a scikit-image name)."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8


def _note(notes: list[str] | None, text: str) -> None:
    """Tell the caller how an unusual input was converted: into ``notes`` if given, else as a warning."""
    if notes is not None:
        notes.append(text)
    else:
        warnings.warn(text, ConversionNotice, stacklevel=3)


class ConversionNotice(UserWarning):
    """An input was converted in a way worth stating (float range, transparency, first of many frames)."""


def to_rgb_uint8(img: np.ndarray, alpha: str = "white", notes: list[str] | None = None) -> np.ndarray:
    """Convert gray, gray+alpha, RGBA, 16-bit, bool or float arrays to RGB uint8 ``(H, W, 3)``, as a viewer shows them.

    Transparent pixels are composited over ``alpha`` (``"white"`` or ``"black"``); 16-bit values are
    scaled by 255/65535; float values by the range they lie in (``[0, 1]``, else ``[0, 255]`` or
    ``[0, 65535]``, stated in ``notes``); other float ranges and NaN/Inf are refused.

    >>> to_rgb_uint8(np.zeros((4, 5), np.uint16)).shape
    (4, 5, 3)
    """
    if alpha not in ALPHA_BACKGROUNDS:
        raise UserError(f"alpha background must be one of {sorted(ALPHA_BACKGROUNDS)}, got {alpha!r}")
    a = np.asarray(img)
    if a.ndim not in (2, 3) or a.size == 0:
        raise UserError(f"expected an image of shape (H, W) or (H, W, C) with H, W >= 1, got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"expected 1 to 4 channels, got shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = np.round(a.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_to_uint8(a, notes)
    elif a.dtype != np.uint8:
        raise UserError(f"unsupported image dtype {a.dtype} (use uint8, uint16, bool or float)")
    if a.ndim == 2:
        a = a[:, :, None]
    channels = a.shape[2]
    if channels in (2, 4):
        a = _composite(a, ALPHA_BACKGROUNDS[alpha], alpha, notes)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def _float_to_uint8(a: np.ndarray, notes: list[str] | None) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise UserError("image has NaN or infinite values")
    scale = next((r for r in FLOAT_RANGES if lo >= 0.0 and hi <= r), None)
    if scale is None:
        raise UserError(f"float image with values in [{lo:.4g}, {hi:.4g}]: not in 0..1, 0..255 or 0..65535; "
                        "rescale it to one of those ranges")
    if scale != 1.0:
        _note(notes, f"float image with values in [{lo:.4g}, {hi:.4g}]: read as the range 0..{scale:.0f}")
    return np.round(a.astype(np.float64) * (255.0 / scale)).astype(np.uint8)


def _composite(a: np.ndarray, background: int, name: str, notes: list[str] | None) -> np.ndarray:
    """Colour (1 or 3 channels) + alpha -> colour over ``background``, as a viewer shows it."""
    colour, alpha = a[:, :, :-1], a[:, :, -1:]
    if alpha.min() == 255:
        return colour
    transparent = float(np.mean(alpha < 255))
    _note(notes, f"{transparent:.0%} of the pixels are (partly) transparent: composited over {name} (--alpha)")
    w = alpha.astype(np.float32) / np.float32(255.0)
    out = colour.astype(np.float32) * w + np.float32(background) * (1.0 - w)
    return np.round(out).astype(np.uint8)


def read_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, alpha: str = "white",
             notes: list[str] | None = None) -> np.ndarray:
    """Read any common image file into RGB uint8 ``(H, W, 3)``, as an image viewer shows it.

    Gray, palette, RGBA (over ``alpha``), 16-bit and float files are converted; EXIF orientation is
    applied; of a multi-frame file (GIF, TIFF) the first frame is used. Conversions worth knowing
    about go into ``notes`` (or a :class:`ConversionNotice` warning). Empty, truncated, corrupt,
    non-image and over-``max_pixels`` files raise :class:`UserError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            # our own limit (checked below from the header) replaces Pillow's warning; its hard error stays
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise TooManyPixels(f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP is over the {max_pixels / 1e6:g} MP limit")
                frames = getattr(im, "n_frames", 1)
                if (rgb := _read_plain_png(path, im)) is not None:
                    return rgb
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _pil_to_rgb(im, alpha, notes)
    except UserError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise UserError(f"{path}: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"{path}: too many pixels, over the {max_pixels / 1e6:g} MP limit ({exc})") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image (or a format this reader does not know)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: corrupt or truncated image ({exc})") from None
    if frames > 1:
        _note(notes, f"{frames} frames: the first one is used")
    return rgb


def _read_plain_png(path: Path, im: Image.Image) -> np.ndarray | None:
    """An 8-bit RGB PNG (no transparency, no EXIF) decoded by OpenCV straight into the one array it
    becomes: Pillow's route holds its own 4-byte-a-pixel copy and a bytes copy besides (a 100 MP photo: 1 GB
    for 0.3 GB of pixels). Lossless, so the pixels are Pillow's; None for anything else."""
    if im.format != "PNG" or im.mode != "RGB" or "transparency" in im.info or "exif" in im.info or \
            getattr(im, "n_frames", 1) > 1:  # an animated PNG keeps Pillow's route and its note
        return None  # (Pillow's getexif would decode the whole image to look for an orientation after it)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (im.height, im.width):
        return None  # let Pillow's reader say what is wrong with it
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def _pil_to_rgb(im: Image.Image, alpha: str, notes: list[str] | None) -> np.ndarray:
    mode = im.mode
    if mode in ("P", "PA", "L", "RGB") and "transparency" in im.info or mode in ("PA", "RGBa", "La"):
        im = im.convert("RGBA")
    elif mode == "P":
        im = im.convert("RGB")
    mode = im.mode
    if mode.startswith("I;16"):
        return to_rgb_uint8(np.asarray(im).astype(np.uint16), alpha, notes)
    if mode == "I":  # 16-bit PNGs often open as 32-bit ints holding 0..65535
        a = np.asarray(im)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise UserError(f"32-bit integer image with values in [{lo}, {hi}]: not in 0..65535 (8- or 16-bit)")
        return to_rgb_uint8(a.astype(np.uint16), alpha, notes)
    if mode == "F":
        return to_rgb_uint8(np.asarray(im, dtype=np.float32), alpha, notes)
    if mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    return to_rgb_uint8(np.asarray(im), alpha, notes)


def list_images(root: str | os.PathLike) -> tuple[list[Path], int]:
    """All image files under ``root`` (recursive, sorted) and the count of other files skipped.

    A file named directly is listed whatever its suffix: the reader decides whether it is an image.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such file or folder")
    if root.is_file():
        return [root], 0
    images, skipped = [], 0
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                images.append(p)
            else:
                skipped += 1
    return images, skipped


def write_png(path: str | os.PathLike, image: np.ndarray, bits: int = 8) -> None:
    """Write a float ``[0, 1]`` image ``(H, W)`` or ``(H, W, 3)`` as an 8- or 16-bit PNG, atomically."""
    q = quantize(image, bits)
    if q.ndim == 3:
        q = cv2.cvtColor(q, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", q)
    if not ok:
        raise UserError(f"{path}: could not encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def quantize(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Float ``[0, 1]`` -> the 8- or 16-bit integers a PNG stores (rounded half to even, clipped)."""
    scale, dtype = (255.0, np.uint8) if bits == 8 else (65535.0, np.uint16)
    q = np.clip(image, 0.0, 1.0)  # the one float copy: a band of a huge image, or a whole one
    q *= np.asarray(scale, q.dtype)
    return np.round(q, out=q).astype(dtype)


def write_png_bands(path: str | os.PathLike, height: int, bands: Iterable[np.ndarray], bits: int = 8,
                    level: int = 1) -> None:
    """Write a PNG band by band, so a huge image never exists whole in memory: ``bands`` yields float ``[0, 1]``
    rows ``(h, W)`` or ``(h, W, 3)`` from the top, ``height`` rows in all. Pixels equal :func:`write_png`'s.

    Rows are PNG-filtered with "Up" (the byte above subtracted) and deflated as they come (zlib ``level``);
    the file appears atomically at the end; an error from ``bands`` (or a wrong row count) leaves nothing.
    """
    crc = zlib.crc32
    with atomic_open(path) as f:
        def chunk(kind: bytes, data: bytes) -> None:
            f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc(kind + data)))

        z, prev, rows = zlib.compressobj(level), None, 0
        for band in bands:
            q = quantize(band, bits)
            if bits == 16:
                q = q.astype(">u2")
            if prev is None:  # the header, from the first band's width and channels
                channels = 1 if q.ndim == 2 else q.shape[2]
                if channels not in (1, 3):
                    raise UserError(f"{path}: expected gray or RGB rows, got shape {band.shape}")
                f.write(b"\x89PNG\r\n\x1a\n")
                chunk(b"IHDR", struct.pack(">IIBBBBB", q.shape[1], height, bits, 0 if channels == 1 else 2, 0, 0, 0))
                prev = np.zeros(q.shape[1] * channels * (bits // 8), np.uint8)
            raw = q.reshape(q.shape[0], -1).view(np.uint8)
            filtered = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
            filtered[:, 0] = 2  # filter type Up
            np.subtract(raw[:1], prev, out=filtered[:1, 1:])
            np.subtract(raw[1:], raw[:-1], out=filtered[1:, 1:])
            prev, rows = raw[-1].copy(), rows + raw.shape[0]
            if data := z.compress(filtered):
                chunk(b"IDAT", data)
        if rows != height or prev is None:
            raise UserError(f"{path}: got {rows} rows of an image {height} rows high (nothing written)")
        chunk(b"IDAT", z.flush())
        chunk(b"IEND", b"")


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` -> uint8, rounded (as ``write_png`` and the 8-bit API output), without float copies."""
    a = np.asarray(img, np.float32)
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        a = np.clip(a, 0.0, 1.0)
    # one uint8 pass (rounds half to even, as np.round) instead of three float copies of a 50 MP image
    return cv2.convertScaleAbs(a, alpha=255.0).reshape(a.shape)
