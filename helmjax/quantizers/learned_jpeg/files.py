"""Real JPEG files with learned base tables (Pillow `qtables=`), and the tables' JSON record on disk.

What the quantizer writes and what the rate is measured on: `encode` one image, `compress_with_tables` a batch
(decoded pixels, file bits, payload bits), `payload_bits` alone; `save_tables` / `load_tables` the state
`learn_tables` returns.
"""

import io
import json
import pathlib
from typing import Optional

import numpy as np
from PIL import Image

from helmjax.errors import UserError
from helmjax.quantizers import pillow_jpeg
from helmjax.quantizers.registry import Quantized


def _qtables(luma, chroma) -> list:
    return [[int(v) for v in np.ravel(luma)], [int(v) for v in np.ravel(chroma)]]


def encode(image: np.ndarray, luma, chroma, subsampling: str = "4:2:0") -> bytes:
    """One HWC uint8 image -> JPEG bytes with these base tables as given (natural order, Pillow `qtables=`
    without a quality: scale 100%)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", qtables=_qtables(luma, chroma),
                                subsampling=pillow_jpeg._subsampling_code(subsampling))
    return buf.getvalue()


def _check_tables(state: dict):
    tables = [np.asarray(state.get(key), np.int64) if state.get(key) is not None else None
              for key in ("luma", "chroma")]
    if any(t is None or t.shape != (8, 8) or t.min() < 1 or t.max() > 255 for t in tables):
        raise UserError("learned JPEG tables must be 8x8 integers in [1, 255] under 'luma' and 'chroma'; "
                        "use learn_tables(...) or load_tables(path)")
    return tables


def compress_with_tables(images: np.ndarray, state: dict, subsampling: Optional[str] = None) -> Quantized:
    """Real JPEG files of a uint8 (N,H,W,3) batch with the tables of `state` (from `learn_tables` or
    `load_tables`): the decoded pixels, file bits and payload bits of each image."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"learned_jpeg needs uint8 RGB images (N,H,W,3), got {images.shape} {images.dtype}")
    luma, chroma = _check_tables(state)
    subsampling = subsampling or state.get("subsampling", "4:2:0")
    out = np.empty_like(images)
    bits = np.empty(len(images), np.int64)
    payload = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        data = encode(image, luma, chroma, subsampling)
        out[i] = np.asarray(Image.open(io.BytesIO(data)))
        bits[i], payload[i] = 8 * len(data), 8 * pillow_jpeg.payload_bytes(data)
    return Quantized(out, bits, payload)


def payload_bits(images: np.ndarray, luma, chroma, subsampling: str = "4:2:0") -> np.ndarray:
    """Pillow's payload (entropy-coded scan) bits of each image with these base tables."""
    return np.array([8 * pillow_jpeg.payload_bytes(encode(image, luma, chroma, subsampling))
                     for image in np.asarray(images)], np.float64)


def save_tables(path, state: dict):
    from helmjax import atomic_io
    atomic_io.write_json(pathlib.Path(path), state)


def load_tables(path) -> dict:
    """The state JSON `learn_tables` returns and a sweep saves (`<sweep>/cache/fitted/*.json`), checked."""
    try:
        state = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read learned JPEG tables from {path}: {e}") from None
    _check_tables(state)
    return state
