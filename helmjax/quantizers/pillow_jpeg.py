"""Real JPEG through Pillow (libjpeg-turbo): the reference codec and the source of true file sizes."""

import io

import numpy as np
import PIL
from PIL import Image, features

from helmjax.errors import UserError
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, ijg_scale_factor, scaled_table
from helmjax.quantizers.registry import Quantized, register

# The codec library: its output is this quantizer's output, so its version is part of the quantizer's version.
LIBRARY = f"Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo') or features.version('jpg')}"

# Pillow's `subsampling=` codes.
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _subsampling_code(subsampling: str) -> int:
    if subsampling not in SUBSAMPLING:
        raise UserError(f"unknown chroma subsampling {subsampling!r}; use one of {', '.join(SUBSAMPLING)}")
    return SUBSAMPLING[subsampling]


def _as_pil(image: np.ndarray) -> Image.Image:
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return Image.fromarray(image)


def encode(image: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    """One HWC (or HW) uint8 image -> JPEG bytes, with the chroma subsampling set explicitly."""
    buf = io.BytesIO()
    _as_pil(image).save(buf, "JPEG", quality=int(quality), subsampling=_subsampling_code(subsampling))
    return buf.getvalue()


def payload_bytes(data: bytes) -> int:
    """Bytes of entropy-coded scan data in a JPEG file: everything after the SOS header, before EOI."""
    total, pos = 0, 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("not a JPEG marker stream")
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # start of scan: the scan runs to the next non-RST marker
            start = pos + 2 + length
            end = start
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0x00 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
            total += end - start
            pos = end
            if data[pos + 1] == 0xD9:
                break
            continue
        pos += 2 + length
    return total


def decode(data: bytes, like: np.ndarray) -> np.ndarray:
    out = np.asarray(Image.open(io.BytesIO(data)))
    return out.reshape(like.shape)


def compress(images: np.ndarray, quality: int, subsampling: str = "4:2:0") -> Quantized:
    """Round-trips a uint8 batch (N,H,W,C) or (N,H,W) through Pillow JPEG; returns pixels and file bits."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserError(f"pillow_jpeg needs uint8 images, got {images.dtype}; convert with np.uint8 first")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise UserError(f"pillow_jpeg needs (N,H,W), (N,H,W,1) or (N,H,W,3) images, got shape {images.shape}")
    out = np.empty_like(images)
    bits = np.empty(len(images), np.int64)
    payload = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        data = encode(image, quality, subsampling)
        out[i] = decode(data, image)
        bits[i] = 8 * len(data)
        payload[i] = 8 * payload_bytes(data)
    return Quantized(out, bits, payload)


def file_bits(images: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """True JPEG file size in bits of each image (encode only)."""
    return coded_bits(images, quality, subsampling)[0]


def coded_bits(images: np.ndarray, quality: int, subsampling: str = "4:2:0"):
    """(file bits, payload bits) of each image, from one encode."""
    files = [encode(image, quality, subsampling) for image in np.asarray(images)]
    return (np.array([8 * len(f) for f in files], np.int64), np.array([8 * payload_bytes(f) for f in files], np.int64))


def quantization_step(quality: int) -> dict:
    """N_approx of JPEG at `quality`: libjpeg's table scale in percent (`jpeg_quality_scaling`) and the mean entry
    of the scaled Annex K luminance and chrominance tables (`jpeg_add_quant_table`, force_baseline)."""
    return {
        "scale_percent": ijg_scale_factor(quality),
        "mean_luminance_step": float(scaled_table(LUMA_TABLE, quality).mean()),
        "mean_chrominance_step": float(scaled_table(CHROMA_TABLE, quality).mean()),
    }


register("pillow_jpeg", compress, modality="image", level_name="quality", level_range=(1, 100), label="JPEG quality",
         prefix="q", step=quantization_step, version=f"1 ({LIBRARY})",
         description="JPEG through Pillow/libjpeg-turbo (real codec, CPU)")
