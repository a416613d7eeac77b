"""Reading images: every common kind converts to RGB uint8; anything else is one clear error."""
import io

import numpy as np
import pytest
from PIL import Image

from src.dataset import list_images, read_rgb, to_rgb_uint8
from src.errors import UserError


def save(path, array, mode=None, **kw):
    Image.fromarray(array, mode=mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def test_rgb_png_round_trips(tmp_path, rng):
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    assert np.array_equal(read_rgb(save(tmp_path / "a.png", rgb)), rgb)


def test_grayscale_is_stacked_to_rgb(tmp_path, rng):
    gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    out = read_rgb(save(tmp_path / "g.png", gray))
    assert out.shape == (5, 6, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


def test_rgba_is_composited_over_white_as_a_viewer_shows_it(tmp_path, rng):
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    a = rgba[..., 3:].astype(np.float64) / 255
    want = np.round(rgba[..., :3] * a + 255 * (1 - a))
    assert np.abs(read_rgb(save(tmp_path / "a.png", rgba)).astype(int) - want).max() <= 1


def test_palette_image_is_expanded(tmp_path, rng):
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    im = Image.fromarray(rgb).quantize(16)
    im.save(tmp_path / "p.png")
    assert np.array_equal(read_rgb(tmp_path / "p.png"), np.asarray(im.convert("RGB")))


def test_16_bit_gray_is_scaled(tmp_path):
    import cv2

    a = np.array([[0, 257 * 128, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), a)
    assert read_rgb(tmp_path / "d.png")[0, :, 0].tolist() == [0, 128, 255]


def test_16_bit_rgb_is_scaled(tmp_path):
    import cv2

    a = np.zeros((2, 3, 3), np.uint16)
    a[..., 2] = 65535  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "c.png"), a)
    assert read_rgb(tmp_path / "c.png")[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"hello, not a picture", "not an image")])
def test_non_images_are_refused_by_name(tmp_path, content, message):
    p = tmp_path / "fake.png"
    p.write_bytes(content)
    with pytest.raises(UserError, match=f"fake.png: {message}"):
        read_rgb(p)


def test_truncated_jpeg_is_refused(tmp_path, photo):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UserError, match="cut.jpg: corrupt or truncated"):
        read_rgb(p)


def test_over_limit_image_is_refused_before_decoding(tmp_path):
    p = save(tmp_path / "big.png", np.zeros((3000, 4000), np.uint8))
    with pytest.raises(UserError, match="12.0 MP is over the 10 MP limit"):
        read_rgb(p, max_pixels=10_000_000)


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_rgb(tmp_path / "nope.png")
    with pytest.raises(UserError, match="is a folder"):
        read_rgb(tmp_path)


@pytest.mark.parametrize("array", [np.zeros((0, 3, 3), np.uint8), np.zeros((3,), np.uint8), np.zeros((2, 2, 5), np.uint8)])
def test_arrays_of_the_wrong_shape_are_refused(array):
    with pytest.raises(UserError):
        to_rgb_uint8(array)


def test_float_and_bool_arrays_convert():
    assert to_rgb_uint8(np.array([[0.0, 1.0]]))[0, :, 0].tolist() == [0, 255]
    assert to_rgb_uint8(np.array([[False, True]]))[0, :, 1].tolist() == [0, 255]
    with pytest.raises(UserError, match="NaN"):
        to_rgb_uint8(np.array([[np.nan]]))


def test_list_images_is_recursive_and_counts_the_rest(tmp_path, rng):
    (tmp_path / "sub").mkdir()
    save(tmp_path / "a.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    save(tmp_path / "sub" / "b.jpg", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    paths, skipped = list_images(tmp_path)
    assert [p.name for p in paths] == ["a.png", "b.jpg"] and skipped == 1
