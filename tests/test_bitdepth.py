"""Tests of bit-depth reduction, the worked example of a quantizer registered through the public API."""

import numpy as np
import pytest

from helmjax.errors import UserError
from helmjax.quantizers import apply, bitdepth, get


def test_keeps_the_top_bits_of_every_channel():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    for bits in range(1, 9):
        out = apply("bitdepth", images, bits).data
        step = 2 ** (8 - bits)
        assert np.array_equal(out, (images // step * step).astype(np.uint8)), bits
        assert len(np.unique(out)) == 2 ** bits
    assert np.array_equal(apply("bitdepth", images, 8).data, images)


def test_bits_per_item_is_bits_times_samples():
    images = np.zeros((3, 5, 7, 3), np.uint8)
    result = apply("bitdepth", images, 3)
    assert result.bits_per_item.dtype == np.int64
    assert result.bits_per_item.tolist() == [3 * 5 * 7 * 3] * 3


def test_registered_through_public_api_with_its_level_range():
    spec = get("bitdepth")
    assert spec.fn is bitdepth.reduce_bits
    assert (spec.level_name, spec.level_range, spec.modality) == ("bits", (1, 8), "image")
    with pytest.raises(UserError, match="bits"):
        apply("bitdepth", np.zeros((1, 2, 2, 3), np.uint8), 9)


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="images"):
        bitdepth.reduce_bits(np.zeros((1, 2, 2, 3), np.float32), 4)
    with pytest.raises(ValueError, match="bits"):
        bitdepth.reduce_bits(np.zeros((1, 2, 2, 3), np.uint8), 0)
