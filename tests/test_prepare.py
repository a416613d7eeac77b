"""raw -> interim -> processed, the data module on real data sets, and folders of odd images."""
import dataclasses
import json
import tracemalloc
import warnings

import numpy as np
import pytest
from PIL import Image

from src.download import download, prepare
from src.download.catalog import DATASETS
from src.dataset.datamodule import FilterDataModule
from src.download.prepare import cache_key, fit_size, iter_pairs, prepare_interim, prepare_processed
from src.dataset.sources import folder_images, load_split
from src.errors import UserError
from src.filters import get_filter
from tests.test_download import FakeHost, fake_dataset, jpeg


@pytest.fixture
def host():
    with FakeHost() as fake:
        yield fake


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARN_FILTERS_DATA", str(tmp_path))
    return tmp_path


def downloaded(name: str, host: FakeHost, monkeypatch, data_root, **options):
    """``name`` in its real layout under data_root/raw, through the real download code."""
    ds = fake_dataset(name, host, **options)
    monkeypatch.setitem(DATASETS, name, ds)
    download.download(ds, data_root / "raw" / name, host.mirror)
    return ds


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


# The whole path, once per source.


@pytest.mark.parametrize("name", ["cifar100", "oxford-pets", "mini-coco"])
def test_download_verify_prepare_and_train_one_step(name, host, monkeypatch, data_root):
    import pytorch_lightning as pl

    from src.models.lit import FilterRegressor

    monkeypatch.setitem(DATASETS, name, fake_dataset(name, host))
    assert download.main([name, "--mirror", host.mirror]) == 0
    assert prepare.main([name, "--size", "64", "--workers", "2"]) == 0
    assert (data_root / "processed" / name / "64" / "sobel" / "manifest.json").exists()

    data = FilterDataModule(get_filter("sobel"), data=f"{name}:64", crop=16, batch_size=4, steps_per_epoch=1)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(FilterRegressor(model_name="compact", filter_name="sobel"), datamodule=data)
    assert trainer.global_step == 1
    assert max(max(im.rgb.shape[:2]) for im in data.splits["train"]) <= 64


# Stages: no-ops, cache keys, skips.


def test_rerun_is_a_no_op(host, monkeypatch, data_root):
    ds = downloaded("cifar100", host, monkeypatch, data_root)
    sobel = get_filter("sobel")
    prepare_processed(ds, "native", sobel, workers=2)
    before = snapshot(data_root)
    prepare_processed(ds, "native", sobel, workers=2)
    assert snapshot(data_root) == before


def test_interrupted_preparation_resumes_without_redoing_finished_images(host, monkeypatch, data_root):
    ds = downloaded("cifar100", host, monkeypatch, data_root)
    real = prepare._cifar_images

    def interrupted(ds, raw):
        for i, item in enumerate(real(ds, raw)):
            if i == 20:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(prepare, "BATCH", 8)
    monkeypatch.setattr(prepare, "_cifar_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_interim(ds, "native", workers=2)
    first = snapshot(data_root / "interim")
    assert sum(p.suffix == ".png" for p in first) == 16  # two batches of 8 made it
    monkeypatch.setattr(prepare, "_cifar_images", real)
    manifest = prepare_interim(ds, "native", workers=2)
    assert manifest["counts"] == {"train": 32, "val": 8, "test": 6}
    after = snapshot(data_root / "interim")
    assert [p for p in first if p.suffix == ".png" and after[p] != first[p]] == []


def test_prepared_data_is_read_without_the_raw_download(host, monkeypatch, data_root):
    import shutil

    downloaded("mini-coco", host, monkeypatch, data_root, n=12)
    prepare.main(["mini-coco", "--size", "64", "--filter", "none", "--workers", "2"])
    shutil.rmtree(data_root / "raw")
    assert len(load_split("mini-coco:64", "train")) == 8


def test_cache_key_changes_when_filter_parameters_change(host, monkeypatch, data_root):
    ds = downloaded("cifar100", host, monkeypatch, data_root)
    default, ksize5 = get_filter("sobel"), get_filter("sobel", ksize=5)
    assert cache_key(default) != cache_key(ksize5)
    prepare_processed(ds, "native", default, workers=2)
    prepare_processed(ds, "native", ksize5, workers=2)
    a = {n: t for n, _, t in iter_pairs(prepare.processed_folder(ds, "native", default), "test")}
    b = {n: t for n, _, t in iter_pairs(prepare.processed_folder(ds, "native", ksize5), "test")}
    assert a.keys() == b.keys() and len(a) == 6
    assert any(not np.array_equal(a[n], b[n]) for n in a)


def test_changed_filter_implementation_under_the_same_key_rebuilds(host, monkeypatch, data_root):
    ds = downloaded("cifar100", host, monkeypatch, data_root)
    sobel = get_filter("sobel")
    prepare_processed(ds, "native", sobel, workers=2)
    halved = dataclasses.replace(sobel, reference=lambda rgb: sobel(rgb) / 2)
    assert halved.key == sobel.key
    prepare_processed(ds, "native", halved, workers=2)
    for _, rgb, target in iter_pairs(prepare.processed_folder(ds, "native", sobel), "train"):
        np.testing.assert_allclose(target, sobel(rgb) / 2, atol=1 / 65535)


def test_stored_targets_are_the_filter_of_the_stored_inputs(host, monkeypatch, data_root):
    ds = downloaded("oxford-pets", host, monkeypatch, data_root)
    sobel = get_filter("sobel", blur=False)
    prepare_processed(ds, "64", sobel, workers=2)
    pairs = list(iter_pairs(prepare.processed_folder(ds, "64", sobel), "val"))
    assert pairs
    for _, rgb, target in pairs:
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        np.testing.assert_allclose(target, sobel(rgb), atol=0.5 / 65535 + 1e-7)


def test_unreadable_source_image_is_skipped_and_counted_in_one_warning(host, monkeypatch, data_root):
    ds = downloaded("oxford-pets", host, monkeypatch, data_root, corrupt=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = prepare_interim(ds, "128", workers=2)
    assert manifest["skipped"] == 2 and sum(manifest["counts"].values()) == 22
    assert len([w for w in caught if "unreadable" in str(w.message)]) == 1


def test_images_smaller_than_the_size_are_never_upscaled(host, monkeypatch, data_root):
    ds = downloaded("cifar100", host, monkeypatch, data_root)
    with pytest.warns(UserWarning, match="46 image"):
        manifest = prepare_interim(ds, "64", workers=2)
    assert manifest["smaller_than_size"] == 46
    assert {im.rgb.shape for im in load_split("cifar100:64", "test")} == {(32, 32, 3)}


def test_fit_size_resizes_the_shorter_side_then_crops_the_centre():
    rgb = np.zeros((300, 200, 3), np.uint8)
    rgb[:, 100:] = 255
    out = fit_size(rgb, "64")
    assert out.shape == (64, 64, 3)
    assert out[:, :31].max() == 0 and out[:, 33:].min() == 255  # the centre, not a corner
    assert fit_size(rgb, "native") is rgb
    assert fit_size(np.zeros((50, 300, 3), np.uint8), "64").shape == (50, 64, 3)


def test_preparing_holds_one_batch_not_the_data_set(host, monkeypatch, data_root):
    ds = downloaded("oxford-pets", host, monkeypatch, data_root, n=40, corrupt=0)
    monkeypatch.setattr(prepare, "BATCH", 8)
    big = 400 * 400 * 3  # bytes of one decoded image
    monkeypatch.setattr(prepare, "_pets_images", _many_big_images(count=120, side=400))
    tracemalloc.start()
    try:
        prepare_interim(ds, "64", workers=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * big  # 120 images decoded would be 120 * big


def _many_big_images(count: int, side: int):
    def images(ds, raw):
        for i in range(count):
            def read(i=i):
                return np.full((side, side, 3), i % 256, np.uint8)
            yield prepare.SourceImage(f"img-{i:04d}", "train", read)
    return images


# The data module: reads prepared data, prepares it when missing.


def test_data_module_prepares_on_the_fly_when_nothing_is_prepared(host, monkeypatch, data_root):
    downloaded("cifar100", host, monkeypatch, data_root)
    images = load_split("cifar100", "train")
    assert len(images) == 32 and images[0].rgb.shape == (32, 32, 3)
    manifest = json.loads((data_root / "interim" / "cifar100" / "native" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 32, "val": 8, "test": 6}


def test_data_set_not_downloaded_says_how_to_get_it(data_root):
    with pytest.raises(UserError, match=r"cifar100 is not downloaded .* `python -m src.download.download cifar100`"):
        load_split("cifar100", "train")


def test_unknown_size_in_data_spec_is_one_line(data_root):
    with pytest.raises(UserError, match="size must be one of 64, 128, native"):
        load_split("cifar100:32", "train")


# Folders of images (--data PATH).


def _save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def test_folder_skips_non_images_and_a_corrupt_jpeg_counted_in_one_warning(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "a" / "b").mkdir(parents=True, exist_ok=True)
        (tmp_path / "a" / "b" / f"ok{i}.jpg").write_bytes(jpeg(rng, 40, 30))
    (tmp_path / "a" / "broken.jpg").write_bytes(jpeg(rng, 40, 30)[:150])
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as caught:
        images = folder_images(tmp_path)
    assert len(caught) == 1
    assert "skipped 1 non-image file(s) and 1 unreadable image(s) (broken.jpg)" in str(caught[0].message)
    assert sorted(im.name for im in images) == [f"a/b/ok{i}.jpg" for i in range(3)]


def test_folder_images_smaller_than_the_crop_are_reflect_padded_for_training(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        _save(tmp_path / f"tiny{i}.png", rng.integers(0, 256, (5 + i, 7, 3), dtype=np.uint8))
    data = FilterDataModule(get_filter("sobel"), data=str(tmp_path), crop=16, batch_size=4, steps_per_epoch=1)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["input"].shape == (4, 3, 16, 16)
