"""Audio bytes -> samples through libsndfile (soundfile): the one decoder behind audio files and the MP3 codec.

Bytes libsndfile refuses, or that decode to no frames, are a UserError; the caller words it (which file, what
to do), the decoder decides when it is one.
"""

import io
from typing import Callable, Tuple

import numpy as np

from helmjax.errors import UserError


def decode(data: bytes, *, undecodable: Callable[[str], str], no_frames: str) -> Tuple[np.ndarray, int]:
    """Any libsndfile format (WAV, FLAC, MP3, OGG, AIFF) as bytes -> (float32 (frames, channels), sample rate).

    Raises UserError(`undecodable(libsndfile's reason)`) when the bytes cannot be decoded, and
    UserError(`no_frames`) when they hold no audio frames.
    """
    import soundfile  # here, so image-only installs never need libsndfile
    try:
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as e:
        raise UserError(undecodable(str(e))) from None
    if audio.shape[0] == 0:
        raise UserError(no_frames)
    return audio, int(rate)
