"""True rates per level with real codecs: lossless references, JPEG/MP3 payload vs file, and `rates/` files."""

import json

import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax.sweeps import rates
from helmjax.sweeps import sweep
from helmjax.analysis.levels import LevelScale
from helmjax.analysis.sweep_files import read_level_bits
from helmjax.errors import UserError
from helmjax.quantizers import lossless, mp3, pillow_jpeg, registry
from tests.conftest import make_stripes


JPEG_TAGS = LevelScale(registry.get("pillow_jpeg").describe()).level_of_tag  # "q20" -> 20


def _images(n=6, size=32, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, 3)).astype(np.uint8)


def _smooth(n=6, size=32):
    """Noise-free gradients: a few bits per pixel at most for any lossless codec."""
    yy, xx = np.mgrid[:size, :size]
    return np.stack([np.stack([(xx * (k + 1)) % 256, yy * 4, (xx + yy) * 2], -1) for k in range(n)]).astype(np.uint8)


@pytest.mark.parametrize("name", lossless.IMAGE_CODECS)
def test_lossless_image_codecs_round_trip_exactly(name):
    codec = lossless.image_codec(name)
    for image in np.concatenate([_images(3), _smooth(3)]):
        data = codec.encode(image)
        assert np.array_equal(codec.decode(data), image) and len(data) > 0
    if name != "webp":  # WebP stores grey as RGB
        grey = _images(1)[0][..., :1]
        assert np.array_equal(codec.decode(codec.encode(grey)), grey[..., 0])
    assert codec.description.startswith({"jpegxl": "JPEG XL", "webp": "WebP", "png": "PNG"}[name])


def test_default_image_codec_is_jpegxl_and_describes_its_settings():
    codec = lossless.dataset_codec(None)
    assert codec.name == "jpegxl"
    assert "libjxl" in codec.description and f"effort {lossless.JPEGXL_EFFORT}" in codec.description


def test_lossless_bits_of_smooth_images_are_far_below_storage_and_of_noise_at_least_storage():
    codec = lossless.image_codec()
    smooth = lossless.item_bits(_smooth(), codec) / (32 * 32)
    noise = lossless.item_bits(_images(), codec) / (32 * 32)
    assert smooth.shape == noise.shape == (6,)
    assert np.all(smooth > 0) and smooth.max() < 4.0
    assert noise.min() >= 23.5  # uniform noise cannot be compressed below its 24 bits of entropy


def test_flac_round_trips_16_bit_audio_exactly_and_drops_optional_metadata():
    rng = np.random.RandomState(0)
    clip = (rng.randint(-4000, 4000, 8000) / 32768.0).astype(np.float32)
    codec = lossless.dataset_codec(8000)
    data = codec.encode(clip)
    assert codec.name == "flac" and "libFLAC" in codec.description
    assert np.array_equal(codec.decode(data), clip)
    assert data[:4] == b"fLaC" and data[4] == 0x80 | 0  # STREAMINFO, now the last metadata block
    silence = lossless.item_bits(np.zeros((2, 8000), np.float32), codec)
    assert np.all(silence > 0) and np.all(silence < lossless.item_bits(clip[None], codec)[0] / 10)


def _scan_bytes_by_sos(data: bytes) -> int:
    """Independent count for a baseline (one-scan) JPEG: bytes after the SOS segment, before the final EOI."""
    sos = data.index(b"\xff\xda")
    return len(data) - 2 - (sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"))


@pytest.mark.parametrize("quality", [1, 10, 50, 90, 100])
def test_jpeg_payload_is_the_scan_and_the_header_is_the_same_for_every_image(quality):
    a, b = _images(2)
    files = [pillow_jpeg.encode(x, quality) for x in (a, b, _smooth(1)[0])]
    payloads = [pillow_jpeg.payload_bytes(f) for f in files]
    assert payloads == [_scan_bytes_by_sos(f) for f in files]
    headers = {len(f) - p for f, p in zip(files, payloads)}
    assert len(headers) == 1 and all(p < len(f) for f, p in zip(files, payloads))  # tables depend on q only
    file_bits, payload_bits = pillow_jpeg.coded_bits(np.stack([a, b]), quality)
    assert list(file_bits - payload_bits) == [8 * headers.pop()] * 2


def test_mp3_payload_is_the_file_minus_frame_headers_and_side_information():
    clip = (0.3 * np.random.RandomState(0).standard_normal(8000)).astype(np.float32)
    data = mp3.encode(clip, 32, sample_rate=8000)  # MPEG-2.5, mono, no CRC: 288-byte frames, 4 + 9 overhead
    frames, rest = divmod(len(data), 72 * 32000 // 8000)
    assert rest == 0 and mp3.payload_bytes(data) == len(data) - 13 * frames
    tagged = b"ID3\x03\x00\x00\x00\x00\x00\x05" + b"\x00" * 5 + data + b"TAG" + b"\x00" * 125
    assert mp3.payload_bytes(tagged) == mp3.payload_bytes(data)
    assert mp3.payload_bytes(data[:-5]) is None and mp3.payload_bytes(b"not an mp3 file") is None
    out = mp3.compress(np.stack([clip, clip[::-1].copy()]), 32, sample_rate=8000, workers=1)
    assert np.all(out.payload_bits < out.bits_per_item) and np.all(out.payload_bits > 0.9 * out.bits_per_item)


def test_write_level_bits_checks_its_arrays_and_the_reader_skips_bad_files(tmp_path):
    rates.write_level_bits(tmp_path, "q20", file=[800.0, 900.0], payload=[100.0, 200.0])
    rates.write_level_bits(tmp_path, "raw", lossless=[5.0, 6.0], codec="X", index=[0, 1])
    with pytest.raises(UserError, match="differ in length"):
        rates.write_level_bits(tmp_path, "q30", file=[1.0, 2.0], payload=[1.0])
    with pytest.raises(UserError, match="takes lossless, codec"):
        rates.write_level_bits(tmp_path, "raw", file=[1.0])
    with pytest.raises(UserError, match="plain file name"):
        rates.write_level_bits(tmp_path, "../q5", file=[1.0], payload=[1.0])
    (tmp_path / "rates" / "q40.npz").write_bytes(b"truncated")
    bits = read_level_bits(tmp_path, JPEG_TAGS)
    assert set(bits) == {20, "raw"}
    assert bits[20]["file"].tolist() == [800.0, 900.0] and bits[20]["payload"].dtype == np.float64
    assert bits["raw"]["codec"] == "X" and bits["raw"]["index"].tolist() == [0, 1]


def test_lossless_rate_codes_a_fixed_subset_beyond_its_budget_and_caches(tmp_path):
    ds = make_stripes(n_train=40, n_test=20)
    per_item = 16 * 16 * 3
    whole = rates.lossless_rate(ds, "both", tmp_path, "k", budget=10 ** 9)
    assert whole.index is None and whole.bits.shape == (60,)
    part = rates.lossless_rate(ds, "both", tmp_path, "k", budget=25 * per_item)
    assert len(part.index) == 25 and np.all(np.diff(part.index) > 0) and part.index[-1] == 59
    assert np.array_equal(part.bits, whole.bits[part.index])  # pairs with the levels' items via `index`
    test_only = rates.lossless_rate(ds, "test", None, budget=10 ** 9)
    assert np.array_equal(test_only.bits, whole.bits[40:])
    assert len(list(tmp_path.glob("lossless-jpegxl-*.npz"))) == 2
    again = rates.lossless_rate(ds, "both", tmp_path, "k", budget=10 ** 9)
    assert np.array_equal(again.bits, whole.bits)


def _tiny_config(levels):
    c = config_lib.load_experiment("cifar_q_sweep_small")
    return config_lib.apply_overrides(c, ["data.name=stripes", "quantizer.name=pillow_jpeg", f"grid.level={levels}",
                                          "train.epochs=1", "train.batch_size=64", "train.eval_batch_size=128"])


@pytest.mark.slow
def test_sweep_records_every_rate_in_rows_and_rates_files(tmp_path):
    c = _tiny_config("raw,50")
    sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    sweep_dir = tmp_path / c.name
    rows = {r["quality"]: r for r in map(json.loads, (sweep_dir / "results.jsonl").read_text().splitlines())}
    bits = read_level_bits(sweep_dir, JPEG_TAGS)
    assert set(bits) == {"raw", 50}
    pixels, items = 16 * 16, 256 + 128  # stripes: train then test
    file, payload = bits[50]["file"], bits[50]["payload"]
    assert file.shape == payload.shape == bits["raw"]["lossless"].shape == (items,)
    assert "index" not in bits["raw"]
    level = rows[50]
    assert level["bpp"] == np.mean(file) / pixels and level["bpp_payload"] == np.mean(payload) / pixels
    assert level["bpp_header"] == np.mean(file - payload) / pixels and 0 < level["bpp_payload"] < level["bpp"]
    for row in rows.values():
        assert row["bpp_lossless"] == np.mean(bits["raw"]["lossless"]) / pixels
        assert row["lossless_codec"] == bits["raw"]["codec"] and row["lossless_codec"].startswith("JPEG XL")
    assert rows["raw"]["bpp"] == 24.0 and rows["raw"]["bpp_header"] == 0.0
    assert 0 < rows["raw"]["bpp_lossless"] < 24.0
    header = (sweep_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert {"bpp_header", "bpp_lossless", "lossless_codec", "bits_per_second_payload"} <= set(header)

    # The lossless rate belongs to the data: a grid without a raw level still records it.
    c2 = _tiny_config("90")
    c2.name = c.name + "_no_raw"
    sweep.run_sweep(c2, tmp_path, progress=False, log=lambda *_: None)
    bits2 = read_level_bits(tmp_path / c2.name, JPEG_TAGS)
    assert set(bits2) == {"raw", 90} and np.array_equal(bits2["raw"]["lossless"], bits["raw"]["lossless"])
    row = json.loads((tmp_path / c2.name / "results.jsonl").read_text().splitlines()[0])
    assert row["bpp_lossless"] == rows["raw"]["bpp_lossless"]


def test_audio_level_and_lossless_rates_are_per_second_of_the_same_clips():
    from helmjax.data import catalog
    from helmjax.sweeps.quantized_data import quantize
    ds = catalog.load("guitar_fx", seed=0, n_per_class=2, sample_rate=8000, duration_s=0.5)
    level = quantize(ds, 16, registry.get("mp3"), {"workers": 1})
    items, seconds = len(ds.x_train) + len(ds.x_test), 0.5
    assert level.bits.shape == (2, items)
    assert level.info["bits_per_second"] == np.mean(level.bits[0]) / seconds
    assert level.info["bits_per_second_payload"] == np.mean(level.bits[1]) / seconds < level.info["bits_per_second"]
    reference = rates.lossless_rate(ds)
    fields = reference.fields(ds)
    assert reference.bits.shape == (items,) and fields["lossless_codec"].startswith("FLAC")
    assert fields["bits_per_second_lossless"] == np.mean(reference.bits) / seconds
    assert 0 < fields["bits_per_second_lossless"] < 16 * 8000
