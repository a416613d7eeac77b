"""Data of any size: images read by path and decoded on access, the cache budget, files that vanish, stored targets,
DDP shards."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from src.download import download, prepare
from src.download.catalog import DATASETS
from src.dataset.datamodule import FilterDataModule, RandomCrops
from src.dataset.sources import folder_images
from src.dataset.streaming import LazyImages, RankShard, StreamingCrops, open_splits, scan
from src.errors import UserError
from src.filters import get_filter
from tests.test_download import FakeHost, fake_dataset


def photos(folder, n=6, suffix=".png", seed=0):
    """``n`` small smooth photos of different sizes (PNG: the exact pixels; JPEG: what cameras write)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = 40 + i, 56 - i
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        rgb = np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"im{i}{suffix}")
    return folder


def lazy(folder, suffix=".png") -> LazyImages:
    files, bad = scan([(p.name, p) for p in sorted(folder.glob(f"*{suffix}"))])
    assert not bad
    return LazyImages(files)


def test_streamed_crops_are_the_crops_of_the_in_memory_list(tmp_path):
    folder = photos(tmp_path / "f")
    streamed = StreamingCrops(lazy(folder), crop=24, length=40, seed=3)
    in_memory = RandomCrops(sorted(folder_images(folder), key=lambda im: im.name), crop=24, length=40, seed=3)
    for i in (0, 1, 17, 39, -1):
        assert torch.equal(streamed[i]["input"], in_memory[i]["input"]), i


def test_jpeg_decoded_by_opencv_matches_the_reader_of_every_other_format(tmp_path):
    folder = photos(tmp_path / "f", n=2, suffix=".jpg")
    images = lazy(folder, ".jpg")
    reference = sorted(folder_images(folder), key=lambda im: im.name)
    assert all(np.array_equal(images[i].rgb, reference[i].rgb) for i in range(2))


def test_a_split_is_cached_only_when_its_decoded_size_fits_the_budget(tmp_path):
    folder = photos(tmp_path / "f", n=12)
    said = []
    streamed = open_splits(str(folder), None, cache_mb=0, say=said.append)
    cached = open_splits(str(folder), None, cache_mb=100, say=said.append)
    assert not streamed["train"].cache and len(cached["train"].cache) == len(cached["train"])
    assert ", streamed)" in said[0] and ", cached)" not in said[0] and ", streamed)" not in said[1]
    assert [im.name for im in streamed["val"]] == [im.name for im in cached["val"]]
    assert not cached["test"].cache  # read once at the end: never cached


def test_corrupt_files_found_at_start_up_are_left_out_in_one_line_per_split(tmp_path):
    folder = photos(tmp_path / "f", n=12)
    for name in ("im0.png", "im1.png", "im3.png"):  # all three in the training split
        (folder / name).write_bytes(b"not a png")
    said = []
    splits = open_splits(str(folder), None, cache_mb=0, say=said.append)
    assert said[0].startswith("warning: train: skipped 3 unreadable image file(s) (first: ") and len(said) == 3
    assert len(splits["train"]) == 7


def test_a_negative_cache_budget_is_one_line(tmp_path):
    with pytest.raises(UserError, match="--cache-mb must be 0 or more"):
        open_splits(str(photos(tmp_path / "f")), None, cache_mb=-1)


def test_a_file_deleted_while_cropping_is_skipped_with_one_warning_line_and_counted(tmp_path, capsys):
    folder = photos(tmp_path / "f")
    images = lazy(folder)
    crops = StreamingCrops(images, crop=24, length=40, seed=0)
    (folder / "im2.png").unlink()
    batch = [crops[i] for i in range(40)]
    assert all(item["input"].shape == (3, 24, 24) for item in batch)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert images.skips.total == 1 and len(warnings) == 1 and "im2.png: no such file" in warnings[0]


def test_a_file_truncated_during_training_is_skipped_and_training_finishes(tmp_path, capsys):
    import pytorch_lightning as pl

    from src.models.lit import FilterRegressor

    folder = photos(tmp_path / "f", n=30)  # two validation images: one is truncated, one still scores
    data = FilterDataModule(get_filter("sobel"), data=str(folder), crop=16, batch_size=8, steps_per_epoch=3, cache_mb=0)
    data.setup("fit")
    for f in data.splits["train"].files[:1] + data.splits["val"].files[:1]:
        (folder / f.name).write_bytes((folder / f.name).read_bytes()[:100])
    trainer = pl.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(FilterRegressor("compact", {}, "sobel"), datamodule=data)
    assert trainer.global_step == 6 and data.splits["train"].skips.total == 2
    assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]) == 2


def test_a_shard_sampler_splits_indices_disjointly_without_padding():
    shards = [list(RankShard(range(7), rank, 2)) for rank in (0, 1)]
    assert shards == [[0, 2, 4, 6], [1, 3, 5]] and [len(RankShard(range(7), r, 2)) for r in (0, 1)] == [4, 3]


def test_under_ddp_each_rank_crops_from_its_own_files(tmp_path):
    class Rank:  # the two attributes of a trainer the data module reads
        def __init__(self, rank):
            self.global_rank, self.world_size = rank, 2

    folder = photos(tmp_path / "f", n=10)
    names = []
    for rank in (0, 1):
        data = FilterDataModule(get_filter("sobel"), data=str(folder), crop=16, batch_size=4, steps_per_epoch=2, cache_mb=0)
        data.setup("fit")
        data.trainer = Rank(rank)
        names.append({f.name for f in data._crops().images.files})
    assert names[0] and names[1] and not names[0] & names[1]
    assert names[0] | names[1] == {f.name for f in data.splits["train"].files}


# Stored targets (data/processed) --------------------------------------------------------------------------


@pytest.fixture
def coco(tmp_path, monkeypatch):
    """A small mini-coco downloaded through the real code into a data root in tmp_path."""
    monkeypatch.setenv("LEARN_FILTERS_DATA", str(tmp_path))
    with FakeHost() as host:
        ds = fake_dataset("mini-coco", host)
        monkeypatch.setitem(DATASETS, "mini-coco", ds)
        download.download(ds, tmp_path / "raw" / "mini-coco", host.mirror)
    return tmp_path


def test_training_reads_stored_targets_when_the_manifest_matches(coco):
    flt = get_filter("sobel")
    prepare.prepare_processed(DATASETS["mini-coco"], "64", flt, workers=1)
    said = []
    splits = open_splits("mini-coco:64", flt, cache_mb=0, say=said.append)
    assert said[1].startswith("targets: read from") and said[1].endswith("(prepared, not recomputed)")
    assert splits["train"].read(0)[1] is not None
    item = StreamingCrops(splits["train"], crop=16, length=4)[0]  # the stored target, cut at the crop
    recomputed = torch.from_numpy(flt(item["input"].permute(1, 2, 0).mul(255).round().byte().numpy())[None])
    assert torch.allclose(item["target"][:, 2:-2, 2:-2], recomputed[:, 2:-2, 2:-2], atol=1e-3)  # borders: crop edge


def test_targets_are_computed_when_nothing_is_prepared(coco):
    said = []
    splits = open_splits("mini-coco:64", get_filter("sobel"), cache_mb=0, say=said.append)
    assert said[1].startswith("targets: computed on the fly (no ") and splits["train"].read(0)[1] is None


def test_a_processed_folder_whose_manifest_does_not_match_is_ignored_with_the_reason(coco):
    flt = get_filter("sobel")
    prepare.prepare_processed(DATASETS["mini-coco"], "64", flt, workers=1)
    manifest = prepare.processed_folder(DATASETS["mini-coco"], "64", flt) / "manifest.json"
    blob = json.loads(manifest.read_text())
    blob["config"]["probe"] = "0" * 16
    manifest.write_text(json.dumps(blob))
    said = []
    splits = open_splits("mini-coco:64", flt, cache_mb=0, say=said.append)
    assert said[1].endswith("ignored: the filter's output has changed since it was written")
    assert splits["train"].read(0)[1] is None


def test_prepare_reports_images_per_second_for_each_stage(coco, capsys):
    import re

    assert prepare.main(["mini-coco", "--size", "64", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for stage in ("interim", "sobel"):
        assert re.search(rf"mini-coco 64: {stage}: \d+ images in [\d.]+ s \([\d,]+ images/s, 2 threads\)", out), out
