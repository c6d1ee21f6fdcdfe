"""WebP, AVIF, JPEG XL and JPEG 2000 quantizers: the same files as imagecodecs called directly, true file and
payload bits, levels in the direction their specs say, bit-exact lossless modes, deterministic output, and one-line
errors for a bad level, bad images or a missing codec."""

import sys

import imagecodecs
import numpy as np
import pytest

from helmjax.errors import UserError
from helmjax.quantizers import codecs, registry

NAMES = ("webp", "avif", "jpegxl", "jpeg2000")
# Three levels of each codec, in any order: the spec's direction says which compresses most.
LEVELS = {"webp": (90, 10, 50), "avif": (50, 90, 10), "jpegxl": (0.5, 8.0, 2.0), "jpeg2000": (45.0, 25.0, 35.0)}
# Each codec called directly, with the settings its version records.
DIRECT = {
    "webp": (lambda x, q: imagecodecs.webp_encode(x, q, lossless=False, method=4), imagecodecs.webp_decode),
    "avif": (lambda x, q: imagecodecs.avif_encode(x, q, speed=6, codec="aom", pixelformat="yuv420"),
             imagecodecs.avif_decode),
    "jpegxl": (lambda x, d: imagecodecs.jpegxl_encode(x, distance=d, lossless=False, effort=5, usecontainer=False),
               imagecodecs.jpegxl_decode),
    "jpeg2000": (lambda x, p: imagecodecs.jpeg2k_encode(x, p, codecformat="J2K", reversible=False),
                 imagecodecs.jpeg2k_decode),
}


def _photo_like(n=4, size=32, seed=0):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:size, :size]
    base = np.stack([np.sin(xx / (3 + c) + c) * 60 + np.cos(yy / (5 + c)) * 30 + 128 for c in range(3)], -1)
    return np.clip(base[None] + rng.normal(0, 12, (n, size, size, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_is_the_codec_called_directly(name):
    x = _photo_like()
    level = LEVELS[name][2]
    r = registry.apply(name, x, level)
    assert r.data.shape == x.shape and r.data.dtype == np.uint8
    encode, decode = DIRECT[name]
    for i in range(len(x)):
        data = bytes(encode(x[i], level))
        assert r.bits_per_item[i] == 8 * len(data)
        assert np.array_equal(decode(data), r.data[i])
    assert np.abs(r.data.astype(int) - x).mean() > 0.5  # lossy at this level


@pytest.mark.parametrize("name", ("webp", "avif", "jpeg2000"))
def test_payload_is_the_file_less_a_constant_header(name):
    x = _photo_like()
    for level in LEVELS[name]:
        r = registry.apply(name, x, level)
        header = r.bits_per_item - r.payload_bits
        assert (r.payload_bits > 0).all() and (header > 0).all()
        assert len(set(header.tolist())) == 1, header  # same size, same settings: the same header length
    if name == "webp":
        assert header[0] == 8 * 20  # "RIFF" size "WEBP" + the VP8 chunk's fourcc and size


def test_jpegxl_has_no_payload():
    assert registry.apply("jpegxl", _photo_like(n=2), 1.0).payload_bits is None


def test_payload_parsers_read_the_containers():
    x = _photo_like(n=1)[0]
    webp = bytes(imagecodecs.webp_encode(x, 50, lossless=False))
    assert codecs.webp_payload_bytes(webp) == int.from_bytes(webp[16:20], "little") == len(webp) - 20
    avif = bytes(imagecodecs.avif_encode(x, 50))
    at = avif.index(b"mdat") - 4
    assert codecs.avif_payload_bytes(avif) == int.from_bytes(avif[at:at + 4], "big") - 8
    j2k = bytes(imagecodecs.jpeg2k_encode(x, 30.0, codecformat="J2K", reversible=False))
    sod = j2k.index(b"\xff\x93")  # one tile, one tile-part: its data runs from SOD to EOC
    assert codecs.jpeg2000_payload_bytes(j2k) == len(j2k) - 2 - (sod + 2) and j2k[-2:] == b"\xff\xd9"
    with pytest.raises(ValueError):
        codecs.webp_payload_bytes(j2k)


@pytest.mark.parametrize("name", NAMES)
def test_more_compression_means_fewer_bits_and_more_error(name):
    x = _photo_like()
    spec = registry.get(name)
    levels = sorted(LEVELS[name], key=spec.order)  # ascending order = less compression
    results = [registry.apply(name, x, level) for level in levels]
    sizes = [r.bits_per_item.mean() for r in results]
    errors = [np.abs(r.data.astype(int) - x).mean() for r in results]
    assert sizes[0] < sizes[1] < sizes[2], (levels, sizes)
    assert errors[0] > errors[1] > errors[2], (levels, errors)
    assert (spec.more_compression == "higher") == (name == "jpegxl")


@pytest.mark.parametrize("name", NAMES)
def test_greyscale_batches_round_trip(name):
    x = _photo_like()[..., 1]
    level = LEVELS[name][2]
    r = registry.apply(name, x, level)
    assert r.data.shape == x.shape and r.data.dtype == np.uint8
    assert np.abs(r.data.astype(int) - x).mean() < 12  # still the same picture
    r1 = registry.apply(name, x[..., None], level)
    assert r1.data.shape == x[..., None].shape
    assert np.array_equal(r1.data[..., 0], r.data) and np.array_equal(r1.bits_per_item, r.bits_per_item)
    if name in ("jpegxl", "jpeg2000"):  # one plane, coded as it is
        encode, decode = DIRECT[name]
        data = bytes(encode(x[0], level))
        assert r.bits_per_item[0] == 8 * len(data) and np.array_equal(decode(data), r.data[0])


@pytest.mark.parametrize("name", NAMES)
def test_lossless_modes_decode_bit_exact(name):
    x = _photo_like()
    for images in (x, x[..., 0], x[..., :1]):
        bits = codecs.lossless_bits(name, images)
        assert bits.shape == (len(images),) and bits.dtype == np.int64
        for i, image in enumerate(images):
            data = codecs.lossless_encode(name, image)
            assert bits[i] == 8 * len(data)
            assert np.array_equal(codecs.decode(name, data, image), image)
    lossy = registry.apply(name, x, LEVELS[name][1])  # the most compressed level of the three
    assert (lossy.bits_per_item < codecs.lossless_bits(name, x)).all()
    assert codecs.library(name) in codecs.lossless_description(name)


def test_avif_quality_100_is_its_lossless_mode():
    x = _photo_like(n=2)
    r = registry.apply("avif", x, 100)
    assert np.array_equal(r.data, x) and np.array_equal(r.bits_per_item, codecs.lossless_bits("avif", x))


@pytest.mark.parametrize("name", NAMES)
def test_output_is_deterministic(name):
    x = _photo_like(n=2)
    level = LEVELS[name][0]
    a, b = registry.apply(name, x, level), registry.apply(name, x, level)
    assert np.array_equal(a.data, b.data) and np.array_equal(a.bits_per_item, b.bits_per_item)
    image = x[0]
    assert codecs.CODECS[name].encode(image, level) == codecs.CODECS[name].encode(image, level)
    assert codecs.lossless_encode(name, image) == codecs.lossless_encode(name, image)


@pytest.mark.parametrize("name", NAMES)
def test_spec_records_libraries_and_no_jpeg_step(name):
    spec = registry.get(name)
    library = {"webp": imagecodecs.webp_version, "avif": imagecodecs.avif_version,
               "jpegxl": imagecodecs.jpegxl_version, "jpeg2000": imagecodecs.jpeg2k_version}[name]()
    assert f"imagecodecs {imagecodecs.__version__}" in spec.version and library in spec.version
    assert library in spec.description
    record = spec.describe(LEVELS[name])
    assert [entry["step"] for entry in record["levels"]] == [None] * 3
    assert record["level_type"] == ("int" if name in ("webp", "avif") else "float")
    assert name in registry.available()


@pytest.mark.parametrize("name, bad, accepted", [
    ("webp", 101, r"an integer in \[0, 100\]"), ("webp", 50.5, r"an integer in \[0, 100\]"),
    ("avif", -1, r"an integer in \[0, 100\]"), ("jpegxl", 0.05, r"a number in \[0.1, 25\]"),
    ("jpegxl", 30.0, r"a number in \[0.1, 25\]"), ("jpeg2000", 5.0, r"a number in \[10, 60\]"),
])
def test_level_out_of_range_is_one_line(name, bad, accepted):
    with pytest.raises(UserError, match=accepted) as error:
        registry.apply(name, _photo_like(n=1), bad)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("images, options, message", [
    (np.zeros((2, 8, 8, 3), np.float32), {}, "needs uint8"),
    (np.zeros((2, 8, 8, 2), np.uint8), {}, "shape"),
    (np.zeros((8, 8), np.uint8), {}, "shape"),
    (np.zeros((2, 8, 8, 3), np.uint8), {"subsampling": "4:1:1"}, "subsampling"),
])
def test_bad_images_are_one_clear_error(images, options, message):
    with pytest.raises(UserError, match=message):
        registry.apply("avif", images, 50, **options)


def test_avif_subsampling_is_applied():
    x = _photo_like(n=2)
    full = registry.apply("avif", x, 70, subsampling="4:4:4")
    half = registry.apply("avif", x, 70, subsampling="4:2:0")
    assert full.bits_per_item.mean() > half.bits_per_item.mean()


def _forget(monkeypatch, name):
    monkeypatch.delitem(registry._REGISTRY, name)  # restored after the test
    monkeypatch.setattr(registry, "_UNAVAILABLE", {})


def test_a_codec_missing_from_imagecodecs_is_named_with_its_install(monkeypatch):
    registry.get("avif")
    _forget(monkeypatch, "avif")
    monkeypatch.setattr(imagecodecs.AVIF, "available", False)
    codecs.register_codecs(["avif"])
    with pytest.raises(UserError, match=r"quantizer 'avif' needs imagecodecs with AVIF support.*"
                                        r"pip install imagecodecs") as error:
        registry.get("avif")
    assert "\n" not in str(error.value) and "unknown quantizer" not in str(error.value)
    with pytest.raises(UserError, match="AVIF support"):  # nothing is encoded either
        codecs.compress("avif", _photo_like(n=1), 50)
    with pytest.raises(UserError, match="AVIF support"):
        codecs.lossless_bits("avif", _photo_like(n=1))
    assert registry.get("webp").name == "webp"  # the others are still there


def test_missing_imagecodecs_is_named_with_its_install(monkeypatch):
    registry.get("jpeg2000")
    _forget(monkeypatch, "jpeg2000")
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # `import imagecodecs` now fails
    codecs.register_codecs(["jpeg2000"])
    with pytest.raises(UserError, match=r"^quantizer 'jpeg2000' needs the imagecodecs package: "
                                        r"pip install imagecodecs$"):
        registry.get("jpeg2000")
    with pytest.raises(UserError, match="unknown quantizer 'jpeg3000'"):  # other names: as before
        registry.get("jpeg3000")
