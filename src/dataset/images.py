"""Reading images from disk into RGB uint8, with one clear error for anything that is not one."""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from src.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
# Refuse before decoding: a 50 MP limit guards against decompression bombs (a tiny file, a huge canvas).
MAX_PIXELS = 50_000_000
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """Convert gray, gray+alpha, RGBA, 16-bit, bool or float ``[0, 1]`` arrays to RGB uint8 ``(H, W, 3)``.

    Alpha is dropped (the colour channels are kept as they are); 16-bit values are scaled by 255/65535.

    >>> to_rgb_uint8(np.zeros((4, 5), np.uint16)).shape
    (4, 5, 3)
    """
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
        if not np.isfinite(a).all():
            raise UserError("image has NaN or infinite values")
        a = np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise UserError(f"unsupported image dtype {a.dtype} (use uint8, uint16, bool or float in [0, 1])")
    if a.ndim == 2:
        a = a[:, :, None]
    channels = a.shape[2]
    if channels in (1, 2):  # gray or gray + alpha
        a = np.repeat(a[:, :, :1], 3, axis=2)
    elif channels == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def read_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read any common image file into RGB uint8 ``(H, W, 3)``.

    Gray, palette, RGBA and 16-bit files are converted; EXIF orientation is applied. Empty, truncated,
    corrupt, non-image and over-``max_pixels`` files raise :class:`UserError` naming the file.
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
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UserError(f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP is over the {max_pixels / 1e6:.0f} MP limit")
                im.load()
                im = ImageOps.exif_transpose(im)
                return _pil_to_rgb(im)
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image (or a format this reader does not know)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"{path}: corrupt or truncated image ({exc})") from None


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode.startswith("I;16"):
        return to_rgb_uint8(np.asarray(im).astype(np.uint16))
    if mode == "I":  # 16-bit PNGs often open as 32-bit ints holding 0..65535
        return to_rgb_uint8(np.clip(np.asarray(im), 0, 65535).astype(np.uint16))
    if mode == "F":
        return to_rgb_uint8(np.asarray(im, dtype=np.float32))
    if mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    return to_rgb_uint8(np.asarray(im))


def list_images(root: str | os.PathLike) -> tuple[list[Path], int]:
    """All image files under ``root`` (recursive, sorted) and the count of other files skipped."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such folder")
    if root.is_file():
        return ([root], 0) if root.suffix.lower() in IMAGE_SUFFIXES else ([], 1)
    images, skipped = [], 0
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                images.append(p)
            else:
                skipped += 1
    return images, skipped


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_png(path: str | os.PathLike, image: np.ndarray, bits: int = 8) -> None:
    """Write a float ``[0, 1]`` image ``(H, W)`` or ``(H, W, 3)`` as an 8- or 16-bit PNG, atomically."""
    import cv2

    scale = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    q = np.round(np.clip(image, 0.0, 1.0) * scale).astype(dtype)
    if q.ndim == 3:
        q = cv2.cvtColor(q, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", q)
    if not ok:
        raise UserError(f"{path}: could not encode PNG")
    atomic_write_bytes(path, buf.tobytes())
