"""Download a real data set into data/raw/NAME, checked, resumable, and never half-written.

    python -m src.download.download cifar100 [--root data/raw] [--mirror URL]

Every file is streamed to ``NAME.part`` and renamed once complete and verified; a cut connection keeps the
``.part`` and the next run resumes it with an HTTP Range request (or restarts it where the server ignores
ranges). Archives unpack into a temporary folder renamed into place (the archive may then be deleted to
save space). Offline, one line within ~20 s.

What is verified: CIFAR-100 and Pets archives against their published MD5s. mini-COCO has no published
checksums: each image must decode to the width and height its list gives, and the SHA-256 of the list and
of every image is recorded in ``data/raw/mini-coco/manifest.json`` on first download (trust on first use).

A mirror (``--mirror`` or ``$LEARN_FILTERS_MIRROR``) serves each file at ``MIRROR/HOST/PATH``.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, getproxies, proxy_bypass, urlopen

from PIL import Image
from tqdm import tqdm

from src.cli import run_cli, strict_json
from src.download.catalog import DATASETS, DataSet, Resource, data_root, get_dataset, human_bytes
from src.errors import UserError
from src.io.files import atomic_write_bytes

CONNECT_TIMEOUT = 10.0  # seconds, per connect and per read
RETRIES = 3  # resumes after a cut connection, within one run
RETRY_PAUSE = 1.0  # seconds
CHUNK = 1 << 20
USER_AGENT = "learn-filters-dataset/1.0 (python urllib)"


class _Interrupted(Exception):
    """The connection broke mid-file; the .part file holds what arrived."""


def mirror_url(url: str, mirror: str | None) -> str:
    """``https://host/a/b?q`` -> ``MIRROR/host/a/b?q``; the URL itself when ``mirror`` is empty."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__


_reached: set[tuple[str, int]] = set()


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Open (and close) one TCP connection to the URL's host or proxy, within ``2 * timeout`` in all.

    Name lookups ignore socket timeouts, so this runs in a daemon thread with a deadline: offline, the
    user hears about it in seconds instead of waiting on the resolver.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(host):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname or "", p.port or 80
    if (host, port) in _reached:
        return
    error: list[BaseException] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            error.append(exc)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(2 * timeout)
    if thread.is_alive():
        raise UserError(f"cannot reach {host} (no answer within {2 * timeout:.0f} s)")
    if error:
        raise UserError(f"cannot reach {host} ({_reason(error[0])})")
    _reached.add((host, port))


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    size: int | None = None,
    check: Callable[[Path], None] | None = None,
    timeout: float = CONNECT_TIMEOUT,
    retries: int = RETRIES,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``; verify ``md5`` and ``check(part)``; rename.

    An existing ``dest`` is kept (after its MD5 check). ``size`` only sizes the progress bar.
    """
    dest = Path(dest)
    if dest.exists():
        if md5 and file_digest(dest, "md5") != md5:
            raise UserError(f"{dest} exists but fails its MD5 check (expected {md5}); delete it and run again")
        return dest
    check_reachable(url, timeout)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, size, timeout, progress)
            break
        except _Interrupted as exc:
            if attempt == retries:
                got = part.stat().st_size if part.exists() else 0
                raise UserError(f"{dest.name}: connection cut after {human_bytes(got)} ({exc}); "
                                f"run again to resume from {part.name}") from None
            time.sleep(RETRY_PAUSE)
    try:
        if md5 and (got := file_digest(part, "md5")) != md5:
            raise UserError(f"{dest.name}: MD5 mismatch (expected {md5}, got {got}): the download is corrupt "
                            "or the file changed at the source; it was deleted, run again to retry")
        if check is not None:
            check(part)
    except UserError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _fetch_once(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    host = urlsplit(url).hostname or url
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds the whole file
            return
        raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError) as exc:
        if have:  # it answered before: a hiccup, worth a retry
            raise _Interrupted(_reason(exc)) from None
        raise UserError(f"cannot reach {host} ({_reason(exc)})") from None
    with response:
        if response.headers.get_content_type() == "text/html":
            dest = part.with_name(part.name.removesuffix(".part"))
            raise UserError(f"{url}: got a web page instead of {dest.name} (the host may want a login or a "
                            f"confirmation); download it by hand to {dest}")
        resumed = have > 0 and response.status == 206 and \
            (response.headers.get("Content-Range") or "").startswith(f"bytes {have}-")
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
            disable=None if progress else True, leave=False,
        ) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise _Interrupted(_reason(exc)) from None
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if length is not None and got != total:
        raise _Interrupted(f"got {got} of {total} bytes")


def unpack(archive: Path, folder: str) -> Path:
    """Unpack the tar ``archive`` (whose top level is ``folder``) beside itself, atomically."""
    target = archive.parent / folder
    if target.is_dir():
        return target
    for stale in archive.parent.glob(f".{folder}.*.unpacking"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".unpacking", dir=archive.parent))
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(archive) as tar:
            for member in tqdm(tar, desc=f"unpack {archive.name}", unit=" files", disable=None, leave=False):
                if member.name.startswith(("/", "\\")) or ".." in Path(member.name).parts:
                    raise UserError(f"{archive.name}: unsafe path {member.name!r} in archive")
                tar.extract(member, tmp, **safe)
        if not (tmp / folder).is_dir():
            raise UserError(f"{archive.name}: expected a top-level folder {folder!r} in the archive")
        os.replace(tmp / folder, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive.name}: cannot unpack ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def raw_folder(ds: DataSet, raw_root: str | os.PathLike | None = None) -> Path:
    """``data/raw/NAME`` (or ``raw_root/NAME``)."""
    return (Path(raw_root) if raw_root is not None else data_root() / "raw") / ds.name


def _finished(folder: Path, r: Resource) -> Path:
    """What a finished resource leaves: its unpacked folder (the archive may be deleted), or the file."""
    return (folder / r.filename).parent / r.unpacks_to if r.unpacks_to else folder / r.filename


def is_downloaded(ds: DataSet, folder: Path) -> bool:
    if not all(_finished(folder, r).exists() for r in ds.resources):
        return False
    if ds.image_url:
        return _read_manifest(folder).get("complete", False)
    return True


def require_downloaded(ds: DataSet, folder: Path) -> Path:
    if not is_downloaded(ds, folder):
        raise UserError(f"{ds.name} is not downloaded to {folder}: run `python -m src.download.download "
                        f"{ds.name}` ({human_bytes(ds.download_bytes)})")
    return folder


def download(ds: DataSet, folder: Path, mirror: str | None = None, workers: int = 8,
             timeout: float = CONNECT_TIMEOUT) -> Path:
    """Fetch, verify and unpack every file of ``ds`` into ``folder``; a no-op once complete."""
    for r in ds.resources:
        if _finished(folder, r).exists():
            continue
        dest = fetch(mirror_url(r.url, mirror), folder / r.filename, r.md5, r.size, timeout=timeout)
        if r.unpacks_to:
            unpack(dest, r.unpacks_to)
    if ds.image_url:
        _download_listed_images(ds, folder, mirror, workers, timeout)
    return folder


# mini-COCO: a COCO-style list, then every listed image on its own.


def read_json(path: Path) -> dict:
    """A manifest, or ``{}`` when missing or unreadable (a missing manifest means "not done")."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, strict_json(data, indent=1, sort_keys=True).encode())


def _read_manifest(folder: Path) -> dict:
    return read_json(folder / "manifest.json")


def _write_manifest(folder: Path, manifest: dict) -> None:
    write_json(folder / "manifest.json", manifest)


def fingerprint(ds: DataSet, folder: Path) -> list[str | None]:
    """What identifies the downloaded content: the MD5s, or mini-COCO's recorded list SHA-256."""
    return [r.md5 or _read_manifest(folder).get("list_sha256") for r in ds.resources]


def downloaded_images(folder: Path) -> list[Path]:
    """The images of a complete mini-COCO download, sorted (from its manifest, not the 108 MB list)."""
    return [folder / "train2017" / name for name in sorted(_read_manifest(folder).get("images", {}))]


def listed_images(list_path: Path) -> list[tuple[str, int, int]]:
    """(file_name, width, height) of every image in a COCO-style annotation file.

    The annotations (most of the file's ~108 MB) are dropped as they are parsed, so memory stays small.
    """
    try:
        with open(list_path, "rb") as f:
            entries = json.load(f, object_hook=lambda d: None if "bbox" in d or "segmentation" in d else d)["images"]
        images = sorted((e["file_name"], int(e["width"]), int(e["height"])) for e in entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{list_path}: not a COCO annotation file with an 'images' list ({exc})") from None
    for name, _, _ in images:
        if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
            raise UserError(f"{list_path}: unexpected image file name {name!r}")
    return images


def _check_image_size(path: Path, width: int, height: int) -> None:
    name = path.name.removesuffix(".part")
    try:
        with Image.open(path) as im:
            size = im.size
    except OSError as exc:
        raise UserError(f"{name}: not an image ({exc})") from None
    if size != (width, height):
        raise UserError(f"{name}: {size[0]}x{size[1]}, but the list says {width}x{height}")


def _download_listed_images(ds: DataSet, folder: Path, mirror: str | None, workers: int, timeout: float) -> None:
    list_path = folder / ds.resources[0].filename
    manifest = _read_manifest(folder)
    list_sha = file_digest(list_path, "sha256")
    if manifest.get("list_sha256", list_sha) != list_sha:
        raise UserError(f"{list_path} differs from the list first downloaded (SHA-256 in manifest.json); "
                        "delete the folder to start over")
    manifest["list_sha256"] = list_sha
    done: dict = manifest.setdefault("images", {})
    images = listed_images(list_path)
    image_dir = folder / "train2017"

    def one(file_name: str, width: int, height: int) -> tuple[str, dict]:
        dest = image_dir / file_name
        if dest.exists():  # not in the manifest: a run killed before it wrote
            _check_image_size(dest, width, height)
        else:
            fetch(mirror_url(ds.image_url + file_name, mirror), dest, timeout=timeout, progress=False,
                  check=lambda part: _check_image_size(part, width, height))
        return file_name, {"bytes": dest.stat().st_size, "sha256": file_digest(dest, "sha256")}

    def recorded(name: str) -> bool:
        return name in done and (image_dir / name).exists() and (image_dir / name).stat().st_size == done[name]["bytes"]

    todo = [im for im in images if not recorded(im[0])]
    failures: list[str] = []
    if todo:
        check_reachable(mirror_url(ds.image_url, mirror), timeout)
    pool = ThreadPoolExecutor(max(1, workers))
    try:
        with tqdm(total=len(images), initial=len(images) - len(todo), unit=" images", desc=ds.name,
                  disable=None) as bar:
            futures = [pool.submit(one, *im) for im in todo]
            for i, future in enumerate(as_completed(futures)):
                try:
                    name, entry = future.result()
                    done[name] = entry
                except UserError as exc:
                    if str(exc).startswith("cannot reach"):  # the network went away: stop, keep what arrived
                        raise
                    failures.append(str(exc))
                bar.update(1)
                if i % 500 == 499:
                    _write_manifest(folder, manifest)
    finally:  # also on Ctrl-C: drop the queued images, record the finished ones
        pool.shutdown(wait=True, cancel_futures=True)
        manifest["complete"] = all(name in done for name, _, _ in images)
        _write_manifest(folder, manifest)
    if failures:
        raise UserError(f"{len(failures)} of {len(images)} images failed (first: {failures[0]}); run again to "
                        "fetch the rest")


def _epilog() -> str:
    lines = ["data sets (size to download, sources):"]
    for ds in DATASETS.values():
        approx = "~" if ds.image_url else ""  # mini-COCO: the images' total is an estimate
        lines.append(f"  {ds.name:<12} {approx + human_bytes(ds.download_bytes):>9}  {ds.title}")
        lines += [f"  {'':<12} {'':>9}  {url}" for url in ds.sources()]
    lines.append("\nArchives are kept beside what they unpack to (about twice the size on disk).")
    lines.append("A mirror (--mirror or $LEARN_FILTERS_MIRROR) serves each file at MIRROR/HOST/PATH.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src.download.download", description="Download a data set into data/raw/NAME.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("name", choices=list(DATASETS), metavar="NAME", help=", ".join(DATASETS))
    ap.add_argument("--root", type=Path, default=None, help="raw data folder (default: data/raw)")
    ap.add_argument("--mirror", default=os.environ.get("LEARN_FILTERS_MIRROR"), help="fetch from MIRROR/HOST/PATH")
    ap.add_argument("--workers", type=int, default=8, help="parallel image downloads (mini-coco)")
    args = ap.parse_args(argv)
    ds = get_dataset(args.name)
    folder = raw_folder(ds, args.root)
    download(ds, folder, args.mirror, args.workers)
    verified = "MD5 verified" if all(r.md5 for r in ds.resources) else "SHA-256 recorded in manifest.json"
    print(f"{ds.name}: downloaded to {folder} ({verified})")
    return 0


if __name__ == "__main__":
    run_cli(main)
