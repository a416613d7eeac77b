"""The loader bench's parts on a tiny folder (its numbers come from `make bench-loader`, never from a test)."""
import numpy as np

from src.dataset.streaming import decode
from src.bench.loader import loader_row, markdown, synthetic_folder


def test_synthetic_folder_holds_n_native_640x480_jpegs_that_differ(tmp_path):
    paths = synthetic_folder(tmp_path, 4)
    images = [decode(p) for p in paths]
    assert [p.suffix for p in paths] == [".jpg"] * 4 and all(im.shape == (480, 640, 3) for im in images)
    assert not np.array_equal(images[0], images[1])


def test_a_loader_row_streams_crops_from_the_folder(tmp_path):
    synthetic_folder(tmp_path, 12)
    row = loader_row(str(tmp_path), workers=0, cache_mb=0, batches=2, crop=64, batch_size=4)
    assert not row["cached"] and row["train_images"] == 10 and row["crops_per_s"] > 0


def test_the_report_states_both_memory_measures_and_the_decode_limit():
    rows = [{"cached": False, "workers": 2, "train_images": 10, "first_batch_s": 1.0, "crops_per_s": 200.0,
             "peak_rss_mb": 1800.0, "peak_pss_mb": 600.0}]
    train = {"first_s": 20.0, "wall_s": 80.0, "steps": 40, "peak_rss_mb": 3000.0, "peak_pss_mb": 900.0,
             "command": "python -m src.training.train", "data_line": "data: ..."}
    info = {"images": 10, "size": "640x480", "crop": 128, "batch_size": 32, "cache_images": 5, "decode_ms": 2.0,
            "file_kb": 68.0, "decoded_mb": 0.88, "command": "python -m src.bench.loader", "cores": 1,
            "machine": "1 of 2 cores", "load": ""}
    text = markdown(rows, train, info)
    assert "| streamed | 2 | 10 | 1.0 | 200 | 200 | 13.3 | 176 | 1,800 | 600 |" in text
    assert "at most ~500 crops/s on a core of its own" in text and "| 20.0 | 80 | 40 | 3,000 | 900 |" in text
