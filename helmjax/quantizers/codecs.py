"""Real image codecs through imagecodecs: WebP, AVIF, JPEG XL and JPEG 2000, each at its own natural level.

Each is a registered quantizer (`registry.get("webp")`): a real encode and decode of every image, its true file
size and, where the container separates it, the coded payload without headers. Effort, speed and thread settings
are fixed, so a file is the same bytes every time; the library versions and those settings are the quantizer's
version, so quantized data cached under other settings is never reused. None has a JPEG quantization step
(`step=None`). `lossless_bits` gives each codec's lossless rate, the reference a report reads a level against.

Greyscale: JPEG XL and JPEG 2000 code one plane. WebP has no grey mode: the grey image is coded as RGB (R=G=B)
and the decoded RGB is turned back into grey with the ITU-R 601 luma weights (Pillow's "L"). AVIF codes the
grey image as 4:0:0 (luma only); at quality 100 (lossless) as a monochrome image.

Levels: WebP and AVIF quality 0-100 (their libraries' full ranges; AVIF 100 is lossless). JPEG XL distance
0.1-25 (libjxl's range), higher compresses more: libjxl's own parameter, in units of just-noticeable difference
(1 is visually lossless); its quality setting is only a fixed map onto distance (JxlEncoderDistanceFromQuality).
JPEG 2000 target PSNR in dB, 10-60: imagecodecs exposes OpenJPEG's fixed-quality (PSNR) allocation, not a rate;
past the 9/7 wavelet's ceiling (about 52 dB on a noisy 32x32 test image) every coding pass is kept, so higher
targets make the same file.
Payload: WebP the VP8/VP8L chunk, AVIF the mdat box, JPEG 2000 the tile-part data after SOD; JPEG XL's bare
codestream packs its headers in bits with no byte boundary before the frame data, so it has no payload (None).
"""

import dataclasses
import importlib
from typing import Callable, Optional, Sequence

import numpy as np

from helmjax.errors import UserError
from helmjax.quantizers import lossless
from helmjax.quantizers.registry import Quantized, register, unavailable

# libwebp's default method 4 (as lossless.WEBP_METHOD): 25x faster than 6 on 32x32 images, and smaller.
WEBP_METHOD = 4
# libavif/aom speed 6 (aom's default for still images): at 32x32 as small as speed 4 at 2.6x its speed; 8 is
# 2x faster again but 15% larger.
AVIF_SPEED = 6
AVIF_ENCODER = "aom"  # named, so a build that also has rav1e or SVT-AV1 makes the same files
# libjxl effort 5 (as lossless.JPEGXL_EFFORT) against 7 (libjxl's default): at 32x32 (distances 0.5-25) the same
# size within 1% (8% smaller at 0.5) and speed; at 256x256 (Kodak crops, distances 1 and 4) within 3% of the size
# at 1.8x the speed.
JPEGXL_EFFORT = lossless.JPEGXL_EFFORT
# Chroma subsampling, named as pillow_jpeg names it -> libavif's pixel formats.
AVIF_SUBSAMPLING = {"4:4:4": "yuv444", "4:2:2": "yuv422", "4:2:0": "yuv420"}
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's RGB -> "L"


def _imagecodecs():
    """The imagecodecs module, or None when it is not installed."""
    try:
        return importlib.import_module("imagecodecs")
    except ImportError:
        return None


@dataclasses.dataclass(frozen=True)
class Codec:
    name: str  # the quantizer's name
    title: str  # "WebP"
    feature: str  # imagecodecs' attribute that says whether the codec is built in: imagecodecs.WEBP.available
    library: Callable[[object], str]  # imagecodecs -> the codec library and its version: "libwebp 1.6.0"
    settings: str  # the fixed encoder settings, recorded in the version
    encode: Callable[..., bytes]  # (HW or HWC uint8 image, level, **options) -> file bytes
    encode_lossless: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    payload_bytes: Optional[Callable[[bytes], int]]  # file -> bytes of coded payload; None when not separable
    spec: dict  # what its levels mean: register()'s keyword arguments


def _grey(image: np.ndarray) -> bool:
    return image.ndim == 2


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image[..., None], 3, -1)) if _grey(image) else image


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb.astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)


# ---- WebP -------------------------------------------------------------------------------------------------------

def _riff_chunks(data: bytes):
    """(fourcc, payload size) of each chunk of a RIFF/WEBP file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        yield data[pos:pos + 4], size
        pos += 8 + size + (size & 1)  # chunks are padded to an even size


def webp_payload_bytes(data: bytes) -> int:
    """Bytes of the VP8 (lossy) or VP8L (lossless) bitstream chunk: the file less its RIFF and chunk headers."""
    return sum(size for fourcc, size in _riff_chunks(data) if fourcc in (b"VP8 ", b"VP8L"))


def _webp_encode(image: np.ndarray, quality: int) -> bytes:
    import imagecodecs
    return bytes(imagecodecs.webp_encode(_as_rgb(image), quality, lossless=False, method=WEBP_METHOD, numthreads=0))


def _webp_lossless(image: np.ndarray) -> bytes:
    import imagecodecs
    return bytes(imagecodecs.webp_encode(_as_rgb(image), 100, lossless=True, method=WEBP_METHOD, numthreads=0))


def _webp_decode(data: bytes) -> np.ndarray:
    import imagecodecs
    return imagecodecs.webp_decode(data)


# ---- AVIF -------------------------------------------------------------------------------------------------------

def _boxes(data: bytes):
    """(type, header size, box size) of each top-level ISO BMFF box."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind, header = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8], 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            raise ValueError("not an ISO BMFF file")
        yield kind, header, size
        pos += size


def avif_payload_bytes(data: bytes) -> int:
    """Bytes of the mdat box's payload (the AV1 bitstream: its sequence header and frame OBUs), without the
    ftyp and meta boxes (item properties, colour information) and the mdat header."""
    return sum(size - header for kind, header, size in _boxes(data) if kind == b"mdat")


def _avif_encode(image: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    import imagecodecs
    if subsampling not in AVIF_SUBSAMPLING:
        raise UserError(f"unknown chroma subsampling {subsampling!r}; use one of {', '.join(AVIF_SUBSAMPLING)}")
    if _grey(image) and quality == 100:
        return _avif_lossless(image)
    # libavif codes a one-plane image only losslessly: a grey image goes in as R=G=B and is coded as 4:0:0.
    pixelformat = "yuv400" if _grey(image) else AVIF_SUBSAMPLING[subsampling]
    return bytes(imagecodecs.avif_encode(_as_rgb(image), quality, speed=AVIF_SPEED, codec=AVIF_ENCODER,
                                         pixelformat=pixelformat, numthreads=1))


def _avif_lossless(image: np.ndarray) -> bytes:
    import imagecodecs
    # Quality 100 is libavif's lossless mode: RGB as 4:4:4 with the identity matrix, grey as 4:0:0.
    return bytes(imagecodecs.avif_encode(image, 100, speed=AVIF_SPEED, codec=AVIF_ENCODER, numthreads=1))


def _avif_decode(data: bytes) -> np.ndarray:
    import imagecodecs
    return imagecodecs.avif_decode(data, numthreads=1)


# ---- JPEG XL ----------------------------------------------------------------------------------------------------

def _jpegxl_encode(image: np.ndarray, distance: float) -> bytes:
    import imagecodecs
    return bytes(imagecodecs.jpegxl_encode(image, distance=float(distance), lossless=False, effort=JPEGXL_EFFORT,
                                           decodingspeed=0, usecontainer=False, numthreads=1))


def _jpegxl_lossless(image: np.ndarray) -> bytes:
    import imagecodecs
    return bytes(imagecodecs.jpegxl_encode(image, lossless=True, effort=JPEGXL_EFFORT, decodingspeed=0,
                                           usecontainer=False, numthreads=1))


def _jpegxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs
    return imagecodecs.jpegxl_decode(data, numthreads=1)


# ---- JPEG 2000 --------------------------------------------------------------------------------------------------

def jpeg2000_payload_bytes(data: bytes) -> int:
    """Bytes of tile-part data in a JPEG 2000 codestream: after each SOD marker to the end of its tile-part, so
    without the main header (SIZ, COD, QCD, ...), the tile-part headers and EOC."""
    if data[:2] != b"\xff\x4f":
        raise ValueError("not a JPEG 2000 codestream")
    pos, total = 2, 0
    while pos + 4 <= len(data) and data[pos:pos + 2] != b"\xff\xd9":  # to EOC
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker != 0x90:  # a main-header marker segment
            pos += 2 + length
            continue
        tile_part = int.from_bytes(data[pos + 6:pos + 10], "big") or len(data) - 2 - pos  # Psot: 0 = up to EOC
        end, pos = pos + tile_part, pos + 2 + length
        while data[pos:pos + 2] != b"\xff\x93":  # tile-part header segments up to SOD
            if pos + 4 > end:
                raise ValueError("JPEG 2000 tile-part without SOD")
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        total += end - (pos + 2)
        pos = end
    return total


def _jpeg2000_encode(image: np.ndarray, psnr: float) -> bytes:
    import imagecodecs
    # One quality layer, the irreversible 9/7 wavelet with the RGB -> YCbCr transform, bare codestream (.j2k).
    return bytes(imagecodecs.jpeg2k_encode(image, float(psnr), codecformat="J2K", reversible=False, mct=True,
                                           numthreads=1))


def _jpeg2000_lossless(image: np.ndarray) -> bytes:
    import imagecodecs
    # Level None = imagecodecs' lossless mode: the reversible 5/3 wavelet and colour transform, all passes kept.
    return bytes(imagecodecs.jpeg2k_encode(image, None, codecformat="J2K", reversible=True, mct=True, numthreads=1))


def _jpeg2000_decode(data: bytes) -> np.ndarray:
    import imagecodecs
    return imagecodecs.jpeg2k_decode(data, numthreads=1)


CODECS = {codec.name: codec for codec in (
    Codec("webp", "WebP", "WEBP", lambda ic: ic.webp_version(),
          f"lossy VP8 (4:2:0), method {WEBP_METHOD}, one thread, RIFF file",
          _webp_encode, _webp_lossless, _webp_decode, webp_payload_bytes,
          dict(level_name="quality", level_type="int", level_range=(0, 100), more_compression="lower",
               label="WebP quality", prefix="webp_q")),
    Codec("avif", "AVIF", "AVIF", lambda ic: ic.avif_version(),
          f"AV1 encoder {AVIF_ENCODER}, speed {AVIF_SPEED}, one thread, 8 bits, full range, BT.601 matrix; "
          "quality 100 = lossless (4:4:4, identity matrix)",
          _avif_encode, _avif_lossless, _avif_decode, avif_payload_bytes,
          dict(level_name="quality", level_type="int", level_range=(0, 100), more_compression="lower",
               label="AVIF quality", prefix="avif_q")),
    Codec("jpegxl", "JPEG XL", "JPEGXL", lambda ic: ic.jpegxl_version(),
          f"lossy VarDCT, effort {JPEGXL_EFFORT}, decoding speed 0, one thread, bare codestream",
          _jpegxl_encode, _jpegxl_lossless, _jpegxl_decode, None,
          dict(level_name="distance", level_type="float", level_range=(0.1, 25.0), more_compression="higher",
               label="JPEG XL distance", prefix="jxl_d")),
    Codec("jpeg2000", "JPEG 2000", "JPEG2K", lambda ic: ic.jpeg2k_version(),
          "irreversible 9/7 wavelet, RGB->YCbCr, one quality layer at a fixed PSNR, up to 6 resolutions "
          "(log2(side)-2), RPCL, one thread, bare codestream (.j2k)",
          _jpeg2000_encode, _jpeg2000_lossless, _jpeg2000_decode, jpeg2000_payload_bytes,
          dict(level_name="psnr", level_type="float", level_range=(10.0, 60.0), more_compression="lower",
               label="JPEG 2000 target PSNR", unit="dB", prefix="j2k_psnr")),
)}
LOSSLESS = tuple(CODECS)  # every codec here has a lossless mode


def missing(name: str) -> Optional[str]:
    """Why codec `name` cannot run here, one line naming what to install; None when it can."""
    codec = CODECS[name]
    ic = _imagecodecs()
    if ic is None:
        return f"quantizer {name!r} needs the imagecodecs package: pip install imagecodecs"
    if not getattr(getattr(ic, codec.feature, None), "available", False):
        return (f"quantizer {name!r} needs imagecodecs with {codec.title} support ({codec.feature}.available is "
                f"False in imagecodecs {ic.__version__}): pip install imagecodecs")
    return None


def library(name: str) -> str:
    """The libraries behind codec `name`: "imagecodecs 2026.3.6, libwebp 1.6.0"."""
    import imagecodecs
    return f"imagecodecs {imagecodecs.__version__}, {CODECS[name].library(imagecodecs)}"


def _check(name: str, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserError(f"{name} needs uint8 images, got {images.dtype}; convert with np.uint8 first")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise UserError(f"{name} needs (N,H,W), (N,H,W,1) or (N,H,W,3) images, got shape {images.shape}")
    reason = missing(name)
    if reason:
        raise UserError(reason)
    return images


def _planes(image: np.ndarray) -> np.ndarray:
    """One image as the codec takes it: HW for grey, HWC for RGB."""
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def decode(name: str, data: bytes, like: np.ndarray) -> np.ndarray:
    """Decodes a file of codec `name` to the shape of `like` (a grey image decoded as RGB becomes its luma)."""
    out = CODECS[name].decode(data)
    if _grey(_planes(like)) and out.ndim == 3:
        out = _luma(out)
    return out.reshape(like.shape)


def encode(name: str, image: np.ndarray, level, **options) -> bytes:
    """One uint8 image (HW, HW1 or HWC) -> the file of codec `name` at `level` (what `compress` sizes and decodes;
    the level store keeps it)."""
    return CODECS[name].encode(_planes(np.asarray(image)), level, **options)


def compress(name: str, images: np.ndarray, level, **options) -> Quantized:
    """Round-trips a uint8 batch (N,H,W,C) or (N,H,W) through codec `name` at `level`; returns pixels, file bits
    and payload bits (None where the container does not separate its headers)."""
    images = _check(name, images)
    codec = CODECS[name]
    out = np.empty_like(images)
    bits = np.empty(len(images), np.int64)
    payload = None if codec.payload_bytes is None else np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        data = encode(name, image, level, **options)
        out[i] = decode(name, data, image)
        bits[i] = 8 * len(data)
        if payload is not None:
            payload[i] = 8 * codec.payload_bytes(data)
    return Quantized(out, bits, payload)


def lossless_encode(name: str, image: np.ndarray) -> bytes:
    """One uint8 image (HW, HW1 or HWC) -> the file of codec `name`'s lossless mode."""
    return CODECS[name].encode_lossless(_planes(np.asarray(image)))


def lossless_bits(name: str, images: np.ndarray) -> np.ndarray:
    """(N,) file bits of each image in codec `name`'s lossless mode (WebP lossless, AVIF quality 100, JPEG XL
    lossless, JPEG 2000 reversible): the codec's own lossless reference rate."""
    if name not in CODECS:
        raise UserError(f"no lossless mode for {name!r}; use one of {', '.join(LOSSLESS)}")
    images = _check(name, images)
    return np.array([8 * len(lossless_encode(name, image)) for image in images], np.int64)


def lossless_description(name: str) -> str:
    """Codec `name`'s lossless mode, its libraries and settings: recorded with the numbers it produced."""
    reason = missing(name)
    if reason:
        raise UserError(reason)
    settings = {"webp": f"WebP lossless (VP8L), quality 100, method {WEBP_METHOD}, RIFF file",
                "avif": f"AVIF quality 100 (4:4:4 identity matrix; grey 4:0:0), {AVIF_ENCODER} speed {AVIF_SPEED}",
                "jpegxl": f"JPEG XL lossless, effort {JPEGXL_EFFORT}, bare codestream",
                "jpeg2000": "JPEG 2000 reversible 5/3 wavelet and colour transform, bare codestream"}[name]
    return f"{settings} ({library(name)})"


def register_codecs(names: Sequence[str] = tuple(CODECS)):
    """Registers each codec that can run here; the others are recorded as unavailable with what to install, so
    `registry.get` says that instead of "unknown quantizer"."""
    for name in names:
        codec = CODECS[name]
        reason = missing(name)
        if reason:
            unavailable(name, reason)
            continue
        fn = _QUANTIZERS[name]
        register(name, fn, modality="image", step=None, version=f"1 ({library(name)}, {codec.settings})",
                 description=f"{codec.title} through imagecodecs ({library(name)}; {codec.settings}; real codec, "
                             "CPU)", **codec.spec)


def _webp(images: np.ndarray, quality: int) -> Quantized:
    return compress("webp", images, quality)


def _avif(images: np.ndarray, quality: int, subsampling: str = "4:2:0") -> Quantized:
    return compress("avif", images, quality, subsampling=subsampling)


def _jpegxl(images: np.ndarray, distance: float) -> Quantized:
    return compress("jpegxl", images, distance)


def _jpeg2000(images: np.ndarray, psnr: float) -> Quantized:
    return compress("jpeg2000", images, psnr)


# One function per quantizer, so `registry.accepted_options` sees each codec's own options (AVIF: subsampling).
_QUANTIZERS = {"webp": _webp, "avif": _avif, "jpegxl": _jpegxl, "jpeg2000": _jpeg2000}

register_codecs()
