"""Downloads, against a server on 127.0.0.1 serving small archives built here in each source's real layout."""
import dataclasses
import hashlib
import io
import json
import pickle
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.download import download
from src.download.catalog import DATASETS, DataSet
from src.download.download import fetch, mirror_url
from src.errors import UserError
from tests.conftest import run_module

# Fakes at the network edge.


class FakeHost:
    """Serves ``files`` (real URL -> bytes) at ``MIRROR/HOST/PATH``; can cut connections or ignore ranges."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cuts: dict[str, int] = {}  # path -> how many more responses to cut halfway
        self.ignore_range = False
        self.content_type = "application/octet-stream"
        self.requests: list[tuple[str, str | None]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.mirror = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def add(self, url: str, data: bytes) -> None:
        self.files[mirror_url(url, self.mirror).removeprefix(self.mirror)] = data

    def cut(self, url: str, times: int = 10**6) -> None:
        self.cuts[mirror_url(url, self.mirror).removeprefix(self.mirror)] = times

    def __enter__(self) -> "FakeHost":
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        fake: FakeHost = self.server.fake
        fake.requests.append((self.path, self.headers.get("Range")))
        data = fake.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range") and not fake.ignore_range:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", fake.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fake.cuts.get(self.path, 0) > 0:
            fake.cuts[self.path] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def host():
    with FakeHost() as fake:
        yield fake


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def jpeg(rng: np.random.Generator, width: int, height: int, mode: str = "RGB") -> bytes:
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    rgb = np.clip(ramp + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buf, format="JPEG")
    return buf.getvalue()


def _cifar_files(rng) -> dict[str, bytes]:
    def batch(n):
        return pickle.dumps({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": [0] * n,
                             "coarse_labels": [0] * n, "filenames": [f"{i}.png" for i in range(n)]})

    meta = pickle.dumps({"fine_label_names": ["apple"], "coarse_label_names": ["fruit"]})
    archive = {"cifar-100-python/train": batch(40), "cifar-100-python/test": batch(6), "cifar-100-python/meta": meta}
    return {"cifar-100-python.tar.gz": tar_gz(archive)}


def _pets_files(rng, n: int = 24, corrupt: int = 1) -> dict[str, bytes]:
    names = [f"Abyssinian_{i}" for i in range(n)]
    images = {f"images/{name}.jpg": jpeg(rng, 100, 90, "L" if i == 1 else "RGB") for i, name in enumerate(names)}
    for name in names[2 : 2 + corrupt]:
        images[f"images/{name}.jpg"] = images[f"images/{name}.jpg"][:200]  # truncated
    lines = [f"{name} 1 1 1" for name in names]
    test, trainval = lines[: n // 4], lines[n // 4 :]
    annotations = {"annotations/trainval.txt": "\n".join(["#Image CLASS-ID SPECIES BREED ID"] + trainval).encode(),
                   "annotations/test.txt": "\n".join(test).encode()}
    return {"oxford-iiit-pet/images.tar.gz": tar_gz(images), "oxford-iiit-pet/annotations.tar.gz": tar_gz(annotations)}


def _coco_files(rng, n: int = 24) -> tuple[bytes, dict[str, bytes]]:
    sizes = [(100 + 7 * i, 80 + 3 * i) for i in range(n)]
    entries = [{"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h} for i, (w, h) in enumerate(sizes)]
    annotations = [{"id": i, "image_id": i, "bbox": [1, 2, 3, 4], "segmentation": [[1.0, 2.0, 3.0]], "category_id": 1}
                   for i in range(n)]
    listing = json.dumps({"info": {}, "images": entries, "annotations": annotations,
                          "categories": [{"id": 1, "name": "person"}]}).encode()
    return listing, {e["file_name"]: jpeg(rng, e["width"], e["height"]) for e in entries}


def fake_dataset(name: str, host: FakeHost, seed: int = 0, **options) -> DataSet:
    """``DATASETS[name]`` with small files in its real layout served by ``host``, checksums to match."""
    rng = np.random.default_rng(seed)
    real = DATASETS[name]
    if name == "mini-coco":
        listing, images = _coco_files(rng, **options)
        files = {real.resources[0].filename: listing}
        for file_name, data in images.items():
            host.add(real.image_url + file_name, data)
    else:
        files = _cifar_files(rng) if name == "cifar100" else _pets_files(rng, **options)
    resources = []
    for r in real.resources:
        data = files[r.filename]
        host.add(r.url, data)
        md5 = hashlib.md5(data).hexdigest() if r.md5 else None
        resources.append(dataclasses.replace(r, md5=md5, size=len(data)))
    return dataclasses.replace(real, resources=tuple(resources))


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setattr(download, "RETRY_PAUSE", 0.0)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# The catalog and the command line.


def test_catalog_agrees_with_torchvision():
    from torchvision.datasets import CIFAR100, OxfordIIITPet

    cifar = DATASETS["cifar100"].resources[0]
    assert (cifar.url, cifar.md5) == (CIFAR100.url, CIFAR100.tgz_md5)
    assert cifar.unpacks_to == CIFAR100.base_folder
    # Hosts of the Pets files moved between torchvision releases; names and MD5s did not.
    pets = {(Path(r.url).name, r.md5) for r in DATASETS["oxford-pets"].resources}
    assert pets == {(Path(url).name, md5) for url, md5 in OxfordIIITPet._RESOURCES}


def test_help_lists_every_data_set_with_size_and_source(capsys):
    with pytest.raises(SystemExit):
        download.main(["--help"])
    out = capsys.readouterr().out
    for ds in DATASETS.values():
        assert ds.name in out and ds.sources()[0] in out
    assert "169.0 MB" in out and "GB" in out


def test_mirror_url_keeps_host_path_and_query():
    url = "https://drive.usercontent.google.com/download?id=X&confirm=t"
    assert mirror_url(url, "http://m:1/") == "http://m:1/drive.usercontent.google.com/download?id=X&confirm=t"
    assert mirror_url(url, None) == url


def test_offline_fails_with_one_line_within_30_seconds(tmp_path):
    start = time.monotonic()
    result = run_module("src.download.download", "cifar100", "--root", str(tmp_path),
                        "--mirror", f"http://127.0.0.1:{_closed_port()}", timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: cannot reach 127.0.0.1 (Connection refused)"]
    assert list(tmp_path.rglob("*")) == [] or all(p.is_dir() for p in tmp_path.rglob("*"))


def test_silent_server_times_out_with_one_line(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(UserError, match=r"^cannot reach 127.0.0.1 \(timed out\)$"):
            fetch(f"http://127.0.0.1:{silent.getsockname()[1]}/f.bin", tmp_path / "f.bin", timeout=0.5)
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_an_http_error_in_one_line(host, tmp_path):
    with pytest.raises(UserError, match=r"HTTP 404"):
        fetch(host.mirror + "/nowhere.tar.gz", tmp_path / "nowhere.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_web_page_instead_of_the_file_is_reported(host, tmp_path):
    host.add("https://drive.example/list.json", b"<html>quota exceeded</html>")
    host.content_type = "text/html"
    with pytest.raises(UserError, match="got a web page instead of list.json"):
        fetch(mirror_url("https://drive.example/list.json", host.mirror), tmp_path / "list.json")
    assert not (tmp_path / "list.json").exists()


# Archives: verify, unpack, resume.


def test_archive_is_verified_and_unpacked_into_the_torchvision_layout(host, tmp_path):
    ds = fake_dataset("cifar100", host)
    download.download(ds, tmp_path, host.mirror)
    assert (tmp_path / "cifar-100-python.tar.gz").is_file()
    assert sorted(p.name for p in (tmp_path / "cifar-100-python").iterdir()) == ["meta", "test", "train"]
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*unpacking"))
    assert download.is_downloaded(ds, tmp_path)


def test_second_download_is_a_no_op(host, tmp_path):
    ds = fake_dataset("oxford-pets", host)
    download.download(ds, tmp_path, host.mirror)
    before = len(host.requests)
    download.download(ds, tmp_path, host.mirror)
    assert len(host.requests) == before


def test_archives_may_be_deleted_once_unpacked(host, tmp_path):
    ds = fake_dataset("oxford-pets", host)
    download.download(ds, tmp_path, host.mirror)
    for archive in (tmp_path / "oxford-iiit-pet").glob("*.tar.gz"):
        archive.unlink()
    before = len(host.requests)
    download.download(ds, tmp_path, host.mirror)
    assert len(host.requests) == before and download.is_downloaded(ds, tmp_path)


def test_corrupted_archive_fails_its_checksum_with_a_clear_message(host, tmp_path):
    ds = fake_dataset("cifar100", host)
    url = ds.resources[0].url
    host.add(url, b"not the archive" * 100)
    with pytest.raises(UserError, match=r"^cifar-100-python.tar.gz: MD5 mismatch \(expected [0-9a-f]{32}, got"):
        download.download(ds, tmp_path, host.mirror)
    assert list(tmp_path.iterdir()) == []


def test_connection_cut_mid_file_leaves_no_file_under_its_final_name(host, tmp_path):
    ds = fake_dataset("cifar100", host)
    host.cut(ds.resources[0].url)
    with pytest.raises(UserError, match="connection cut after .* run again to resume"):
        download.download(ds, tmp_path, host.mirror)
    assert not (tmp_path / "cifar-100-python.tar.gz").exists()
    assert not (tmp_path / "cifar-100-python").exists()
    assert 0 < (tmp_path / "cifar-100-python.tar.gz.part").stat().st_size < ds.resources[0].size


def test_next_run_resumes_a_cut_download_with_a_range_request(host, tmp_path):
    ds = fake_dataset("cifar100", host)
    r = ds.resources[0]
    host.cut(r.url, times=1)
    with pytest.raises(UserError, match="connection cut"):
        fetch(mirror_url(r.url, host.mirror), tmp_path / r.filename, r.md5, retries=0)
    have = (tmp_path / (r.filename + ".part")).stat().st_size
    fetch(mirror_url(r.url, host.mirror), tmp_path / r.filename, r.md5)
    assert host.requests[-1][1] == f"bytes={have}-"
    assert hashlib.md5((tmp_path / r.filename).read_bytes()).hexdigest() == r.md5


def test_a_cut_is_resumed_within_the_same_run(host, tmp_path):
    ds = fake_dataset("cifar100", host)
    host.cut(ds.resources[0].url, times=2)
    download.download(ds, tmp_path, host.mirror)
    assert download.is_downloaded(ds, tmp_path)
    assert [rng is not None for _, rng in host.requests] == [False, True, True]


def test_server_ignoring_ranges_restarts_the_file_cleanly(host, tmp_path):
    ds = fake_dataset("cifar100", host)
    r = ds.resources[0]
    (tmp_path / (r.filename + ".part")).write_bytes(b"stale bytes from another day")
    host.ignore_range = True
    fetch(mirror_url(r.url, host.mirror), tmp_path / r.filename, r.md5)
    assert hashlib.md5((tmp_path / r.filename).read_bytes()).hexdigest() == r.md5


def test_archive_escaping_its_folder_is_refused(host, tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz({"cifar-100-python/ok": b"1", "../outside": b"2"}))
    with pytest.raises(UserError, match="unsafe path"):
        download.unpack(archive, "cifar-100-python")
    assert not (tmp_path.parent / "outside").exists() and not (tmp_path / "cifar-100-python").exists()


# mini-COCO: a list, then every listed image.


def test_mini_coco_fetches_every_listed_image_and_records_checksums(host, tmp_path):
    ds = fake_dataset("mini-coco", host, n=6)
    download.download(ds, tmp_path, host.mirror, workers=3)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["images"]) == 6
    for name, entry in manifest["images"].items():
        assert hashlib.sha256((tmp_path / "train2017" / name).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["list_sha256"] == hashlib.sha256((tmp_path / ds.resources[0].filename).read_bytes()).hexdigest()
    before = len(host.requests)
    download.download(ds, tmp_path, host.mirror)
    assert len(host.requests) == before


def test_mini_coco_list_with_a_path_for_a_file_name_is_refused(tmp_path):
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"images": [{"file_name": "../../etc/x.jpg", "width": 1, "height": 1}]}))
    with pytest.raises(UserError, match="unexpected image file name"):
        download.listed_images(listing)


def test_mini_coco_image_of_another_size_than_listed_is_rejected(host, tmp_path):
    ds = fake_dataset("mini-coco", host, n=3)
    host.add(ds.image_url + f"{1:012d}.jpg", jpeg(np.random.default_rng(1), 20, 20))
    with pytest.raises(UserError, match=r"1 of 3 images failed \(first: 000000000001.jpg: 20x20, but the list says"):
        download.download(ds, tmp_path, host.mirror)
    assert sorted(p.name for p in (tmp_path / "train2017").iterdir()) == ["000000000000.jpg", "000000000002.jpg"]
    assert not download.is_downloaded(ds, tmp_path)
