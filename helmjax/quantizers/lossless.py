"""Lossless reference rates measured with real codecs: how many bits the data itself needs.

A raw image level's 24 bits per pixel is storage, not information; a lossy level's rate reads right next to
what a good lossless codec needs for the same items. Images: JPEG XL lossless (imagecodecs), else WebP
lossless, else PNG (both through Pillow); audio: FLAC through soundfile. Every codec describes itself (name,
library and version, settings), and that description is recorded with the numbers it produced.
"""

import concurrent.futures
import dataclasses
import io
import os
from typing import Callable, Optional

import numpy as np
from PIL import Image

from helmjax.errors import UserError

IMAGE_CODECS = ("jpegxl", "webp", "png")
# libjxl effort 5 at 32x32 (CIFAR-10, 2 cores, benchmarks/bench_rates.py): within 0.2% of the size of effort 7
# (the default) and 9, at 1.5x the speed of 7 (about 1100 images/s on 2 threads), so 60k CIFAR-sized images
# take under a minute; efforts 1-3 are 8-26% larger, 4 is 1.5% larger.
JPEGXL_EFFORT = 5
# libwebp's default method 4 is both smaller and 25x faster than method 6 on 32x32 images.
WEBP_METHOD = 4
# soundfile's compression level 1.0 = libFLAC's strongest preset (flac -8).
FLAC_LEVEL = 1.0
# FLAC metadata blocks a decoder does not need (PADDING, VORBIS_COMMENT): left out of the counted file.
_FLAC_OPTIONAL_BLOCKS = (1, 4)


@dataclasses.dataclass(frozen=True)
class LosslessCodec:
    name: str
    description: str  # codec, library + version, settings: recorded with every number it produced
    encode: Callable[[np.ndarray], bytes]  # one item -> the bytes counted
    decode: Callable[[bytes], np.ndarray]  # those bytes -> the item (for round-trip checks)


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs if imagecodecs.JPEGXL.available else None


def _pil_encode(image: np.ndarray, fmt: str, **options) -> bytes:
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **options)
    return buf.getvalue()


def _pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def image_codec(name: Optional[str] = None) -> LosslessCodec:
    """The lossless image codec `name` (one of IMAGE_CODECS); None = the best available (JPEG XL first)."""
    from PIL import features
    if name is None:
        name = "jpegxl" if _imagecodecs() else "webp" if features.check("webp") else "png"
    if name == "jpegxl":
        ic = _imagecodecs()
        if ic is None:
            raise UserError("JPEG XL needs the imagecodecs package with libjxl: pip install imagecodecs")
        return LosslessCodec(
            "jpegxl", f"JPEG XL lossless (imagecodecs {ic.__version__}, {ic.jpegxl_version()}, effort "
            f"{JPEGXL_EFFORT}, bare codestream)",
            lambda x: ic.jpegxl_encode(x, lossless=True, effort=JPEGXL_EFFORT, numthreads=1), ic.jpegxl_decode)
    if name == "webp":
        if not features.check("webp"):
            raise UserError("this Pillow has no WebP support; install a Pillow wheel from PyPI")
        return LosslessCodec(
            "webp", f"WebP lossless (Pillow {Image.__version__}, libwebp {features.version('webp')}, method "
            f"{WEBP_METHOD}, quality 100, RIFF file)",
            lambda x: _pil_encode(x, "WEBP", lossless=True, quality=100, method=WEBP_METHOD), _pil_decode)
    if name == "png":
        return LosslessCodec(
            "png", f"PNG (Pillow {Image.__version__}, zlib {features.version('zlib')}, optimize, file)",
            lambda x: _pil_encode(x, "PNG", optimize=True), _pil_decode)
    raise UserError(f"unknown lossless image codec {name!r}; use one of {', '.join(IMAGE_CODECS)}")


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
    """float32 [-1, 1] -> int16 the way libsndfile reads it (x * 32768), so 16-bit sources come back exactly."""
    return np.clip(np.round(np.asarray(waveform, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def minimal_flac(data: bytes) -> bytes:
    """A FLAC file without its optional metadata (PADDING, VORBIS_COMMENT): still a valid, decodable file."""
    if data[:4] != b"fLaC":
        raise ValueError("not a FLAC stream")
    pos, kept = 4, []
    while True:
        header = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        if header & 0x7F not in _FLAC_OPTIONAL_BLOCKS:
            kept.append(bytearray(data[pos:pos + 4 + length]))
        pos += 4 + length
        if header & 0x80:  # last metadata block
            break
    for block in kept:
        block[0] &= 0x7F
    kept[-1][0] |= 0x80  # STREAMINFO always comes first and is kept
    return b"fLaC" + b"".join(bytes(b) for b in kept) + data[pos:]


def _flac_vendor(data: bytes) -> str:
    """The encoder's vendor string from a FLAC file's VORBIS_COMMENT (e.g. "reference libFLAC 1.4.3 ...")."""
    pos = 4
    while pos + 4 <= len(data):
        header, length = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        if header & 0x7F == 4:
            size = int.from_bytes(data[pos + 4:pos + 8], "little")
            return data[pos + 8:pos + 8 + size].decode("utf-8", "replace")
        if header & 0x80:
            break
        pos += 4 + length
    return "libFLAC"


def audio_codec(sample_rate: int) -> LosslessCodec:
    """FLAC (16-bit PCM of the float clips) at `sample_rate`; counts the minimal file (STREAMINFO + frames)."""
    import soundfile

    def full_file(waveform: np.ndarray) -> bytes:
        buf = io.BytesIO()
        soundfile.write(buf, to_pcm16(waveform), int(sample_rate), format="FLAC", subtype="PCM_16",
                        compression_level=FLAC_LEVEL)
        return buf.getvalue()

    def decode(data: bytes) -> np.ndarray:
        return soundfile.read(io.BytesIO(data), dtype="float32")[0]

    vendor = _flac_vendor(full_file(np.zeros(64, np.float32)))
    return LosslessCodec("flac", f"FLAC (soundfile {soundfile.__version__}, libsndfile "
                         f"{soundfile.__libsndfile_version__}, {vendor}, level 8, 16-bit PCM, minimal file: "
                         "STREAMINFO + frames)", lambda x: minimal_flac(full_file(x)), decode)


def item_bits(items: np.ndarray, codec: LosslessCodec, workers: Optional[int] = None) -> np.ndarray:
    """Bits of each item's lossless encoding, float64 (N,); items spread over threads (the codecs release the
    GIL)."""
    items = np.asarray(items)
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(items)))
    if workers == 1:
        return np.array([8.0 * len(codec.encode(x)) for x in items], np.float64)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(lambda x: len(codec.encode(x)), items, chunksize=64))
    return 8.0 * np.asarray(sizes, np.float64)


def dataset_codec(sample_rate: Optional[int]) -> LosslessCodec:
    """The lossless reference for a dataset: FLAC for audio (sample_rate set), the best image codec otherwise."""
    return audio_codec(sample_rate) if sample_rate else image_codec()
