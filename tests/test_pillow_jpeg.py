"""Pillow JPEG quantizer: round trip, true file sizes, the payload without headers, explicit subsampling."""

import io

import numpy as np
import pytest
from PIL import Image

from helmjax import quantizers
from helmjax.errors import UserError
from helmjax.quantizers import pillow_jpeg


def _photo_like(n=6, size=32, seed=0):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:size, :size]
    base = np.stack([np.sin(xx / (3 + c) + c) * 60 + 128 for c in range(3)], -1)
    return np.clip(base[None] + rng.normal(0, 12, (n, size, size, 3)), 0, 255).astype(np.uint8)


def test_round_trip_equals_pillow_and_counts_file_bits():
    x = _photo_like()
    r = quantizers.apply("pillow_jpeg", x, 30, subsampling="4:2:0")
    assert r.data.shape == x.shape and r.data.dtype == np.uint8
    for i in (0, 5):
        buf = io.BytesIO()
        Image.fromarray(x[i]).save(buf, "JPEG", quality=30)  # Pillow's default subsampling for RGB is 4:2:0
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue()))), r.data[i])
        assert r.bits_per_item[i] == 8 * len(buf.getvalue())


def test_quality_orders_size_and_error():
    x = _photo_like()
    results = {q: quantizers.apply("pillow_jpeg", x, q) for q in (1, 20, 95)}
    sizes = [results[q].bits_per_item.mean() for q in (1, 20, 95)]
    errors = [np.abs(results[q].data.astype(int) - x).mean() for q in (1, 20, 95)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert errors[0] > errors[1] > errors[2]


def test_payload_excludes_a_constant_header():
    x = _photo_like(n=8, seed=3)
    for q in (5, 75):
        r = pillow_jpeg.compress(x, q)
        header = r.bits_per_item - r.payload_bits
        assert (r.payload_bits > 0).all() and len(set(header.tolist())) == 1  # same tables, same header


def test_subsampling_is_applied_as_asked():
    x = _photo_like(n=2)
    a = pillow_jpeg.compress(x, 90, "4:4:4")
    b = pillow_jpeg.compress(x, 90, "4:2:0")
    assert a.bits_per_item.mean() > b.bits_per_item.mean()
    with Image.open(io.BytesIO(pillow_jpeg.encode(x[0], 90, "4:2:2"))) as im:
        assert im.layer[1][1:3] == (1, 1) and im.layer[0][1:3] == (2, 1)  # luma 2x1 sampling = 4:2:2


def test_grayscale_batches_work():
    x = _photo_like()[..., 0]
    r = pillow_jpeg.compress(x, 50)
    assert r.data.shape == x.shape
    assert pillow_jpeg.compress(x[..., None], 50).data.shape == x[..., None].shape


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((2, 8, 8, 3), np.float32), quality=50), "needs uint8"),
    (dict(images=np.zeros((2, 8, 8, 2), np.uint8), quality=50), "shape"),
    (dict(images=np.zeros((2, 8, 8, 3), np.uint8), quality=50, subsampling="4:1:1"), "subsampling"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        pillow_jpeg.compress(**kwargs)


def test_quality_out_of_range_is_rejected_by_the_registry():
    with pytest.raises(UserError, match=r"\[1, 100\]"):
        quantizers.apply("pillow_jpeg", np.zeros((1, 8, 8, 3), np.uint8), 0)
