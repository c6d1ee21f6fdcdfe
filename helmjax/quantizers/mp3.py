"""Real MP3 through LAME (lameenc) and libsndfile's decoder (soundfile): the audio quantizer, level = kbps.

LAME at a constant bitrate also picks its own output sample rate (8 kbps -> 8 kHz, 16 -> 16 kHz, 32 ->
22.05 kHz at a 44.1 kHz input) and delays the signal (encoder + decoder delay). A sweep compares models
trained on the round-tripped audio with the original, so `round_trip` undoes both: it resamples back to the
input rate and shifts the delay away, so the output lines up with the input sample for sample. What the
codec really did (its output rate, delay, bitrate, file bits) is kept in `Mp3Result` and `level_info`.
"""

import concurrent.futures
import dataclasses
import functools
import importlib.metadata
import math
import multiprocessing
import os
import sys
from typing import Optional

import lameenc
import numpy as np
import soundfile
from scipy import signal

from helmjax import audio_decode
from helmjax.errors import UserError
from helmjax.quantizers.registry import Quantized, register

# Input sample rates LAME encodes natively (MPEG-1, -2 and -2.5); others it would silently resample.
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Every constant bitrate some MPEG version allows; LAME silently snaps anything else to a neighbour.
BITRATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320)
# `lame -b` uses quality 3 unless told otherwise (0 best and slowest, 9 worst).
DEFAULT_QUALITY = 3

# Layer III bitrate tables (kbps) by frame-header bitrate index, for MPEG-1 and for MPEG-2/2.5.
_FRAME_KBPS_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_FRAME_KBPS_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
# Longest delay we search for, in decoded samples (LAME + mpg123 give 576 + 529 = 1105).
_MAX_DELAY = 4096


@dataclasses.dataclass(frozen=True)
class Mp3Result:
    """One clip's round trip: aligned audio plus what the codec actually did."""
    audio: np.ndarray  # float32 (T,), input rate and length, aligned with the input
    sample_rate_actual: int  # LAME's output (decoded) sample rate
    decoded_length: int  # decoded samples at sample_rate_actual, before alignment
    delay: int  # encoder + decoder delay removed, in decoded samples
    data: bytes  # the MP3 file
    bits_per_second: float  # 8 * file bytes / input duration
    kbps_actual: int  # bitrate in the frame headers (LAME caps it, e.g. 64 at 8 kHz)


def check_kbps(kbps) -> int:
    if isinstance(kbps, bool) or not isinstance(kbps, (int, np.integer)) or int(kbps) not in BITRATES:
        raise UserError(f"MP3 bitrate {kbps!r} kbps is not one LAME encodes at constant bitrate; "
                        f"use one of {', '.join(map(str, BITRATES))}")
    return int(kbps)


def check_sample_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or int(sample_rate) not in SAMPLE_RATES:
        raise UserError(f"sample rate {sample_rate!r} Hz is not one LAME encodes; resample to one of "
                        f"{', '.join(map(str, SAMPLE_RATES))} Hz first")
    return int(sample_rate)


def _check_clip(waveform) -> np.ndarray:
    waveform = np.asarray(waveform)
    if waveform.ndim == 2 and 1 in waveform.shape:
        waveform = waveform.reshape(-1)
    if waveform.ndim != 1:
        raise UserError(f"mp3 needs a mono clip (T,), got shape {waveform.shape}; mix stereo down to mono first "
                        "(e.g. x.mean(axis=-1))")
    if waveform.size == 0:
        raise UserError("mp3 got an empty clip (0 samples); drop it or pad it to the dataset's length")
    if not np.issubdtype(waveform.dtype, np.floating) or not np.all(np.isfinite(waveform)):
        raise UserError(f"mp3 needs finite float waveforms in [-1, 1], got dtype {waveform.dtype} "
                        "with non-finite values or non-float type; convert with x.astype(np.float32) / 32768")
    return waveform


def encode(waveform: np.ndarray, kbps: int, *, sample_rate: int, quality: int = DEFAULT_QUALITY) -> bytes:
    """One mono float clip in [-1, 1] -> MP3 bytes at constant `kbps` (values outside [-1, 1] are clipped)."""
    waveform = _check_clip(waveform)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(check_kbps(kbps))
    encoder.set_in_sample_rate(check_sample_rate(sample_rate))
    encoder.set_channels(1)
    encoder.set_quality(int(quality))
    pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())


def decode(data: bytes, *, name: str = "<mp3 bytes>") -> tuple:
    """MP3 (or any libsndfile format) bytes -> (float32 mono (T,), sample rate); a bad file is a UserError."""
    audio, rate = audio_decode.decode(
        data, undecodable=lambda reason: f"cannot decode {name}: {reason}; the file is empty, truncated or not audio",
        no_frames=f"cannot decode {name}: it holds no audio frames; the file is empty or truncated")
    return audio.mean(axis=1).astype(np.float32), rate


def frame_kbps(data: bytes) -> int:
    """The bitrate in the first MPEG audio frame header (what LAME really used), in kbps."""
    for i in range(len(data) - 3):
        if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0:
            version_bits = (data[i + 1] >> 3) & 0b11  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
            index = data[i + 2] >> 4
            if version_bits != 1 and 0 < index < 15:
                table = _FRAME_KBPS_V1 if version_bits == 3 else _FRAME_KBPS_V2
                return table[index]
    raise UserError("no MPEG audio frame header found in the MP3 data; it is not an MP3 file")


_FRAME_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _id3v2_size(data: bytes) -> int:
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    size = 0
    for b in data[6:10]:  # syncsafe integer
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def payload_bytes(data: bytes) -> Optional[int]:
    """Bytes of Layer III main data (scale factors, Huffman-coded samples, ancillary bits) in an MP3 file.

    Everything else is left out: ID3v2/ID3v1 tags, a Xing/Info/VBRI (LAME tag) frame, and each frame's
    4-byte header, CRC and side information. None when the frames do not tile the file exactly (another
    container, a damaged stream), so a payload is never a guess.
    """
    pos, end = _id3v2_size(data), len(data)
    if end - pos >= 128 and data[end - 128:end - 125] == b"TAG":
        end -= 128
    total, first = 0, True
    while pos < end:
        if end - pos < 4 or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
            return None
        version, layer = (data[pos + 1] >> 3) & 0b11, (data[pos + 1] >> 1) & 0b11
        index, rate_index = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 0b11
        if version == 1 or layer != 1 or not 0 < index < 15 or rate_index == 3:
            return None
        kbps = (_FRAME_KBPS_V1 if version == 3 else _FRAME_KBPS_V2)[index]
        rate = _FRAME_RATES[version][rate_index]
        length = (144 if version == 3 else 72) * kbps * 1000 // rate + ((data[pos + 2] >> 1) & 1)
        mono = data[pos + 3] >> 6 == 3
        side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
        overhead = 4 + (0 if data[pos + 1] & 1 else 2) + side
        tag = data[pos + overhead:pos + overhead + 4]
        info_frame = first and (tag in (b"Xing", b"Info") or data[pos + 36:pos + 40] == b"VBRI")
        if pos + length > end:
            return None
        if not info_frame:
            total += length - overhead
        pos += length
        first = False
    return total


def _resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return audio
    g = math.gcd(from_rate, to_rate)
    return signal.resample_poly(audio.astype(np.float64), to_rate // g, from_rate // g)


def _probe(sample_rate: int) -> np.ndarray:
    """0.25 s silence, 0.5 s of noise low-passed to 1 kHz (survives every bitrate's low-pass), 0.25 s silence."""
    rng = np.random.default_rng(0)
    noise = signal.sosfilt(signal.butter(6, 1000, fs=sample_rate, output="sos"), rng.standard_normal(sample_rate))
    probe = np.zeros(sample_rate, np.float64)
    probe[sample_rate // 4:3 * sample_rate // 4] = noise[:3 * sample_rate // 4 - sample_rate // 4]
    return (0.5 * probe / np.abs(probe).max()).astype(np.float32)


def find_delay(reference: np.ndarray, decoded: np.ndarray, max_delay: int = _MAX_DELAY) -> int:
    """Lag in [0, max_delay] at which `decoded` best matches `reference` (cross-correlation peak)."""
    n = len(reference)
    corr = signal.correlate(decoded[:n + max_delay].astype(np.float64), reference.astype(np.float64),
                            mode="valid", method="fft")
    return int(np.argmax(corr[:max_delay + 1]))


@functools.lru_cache(maxsize=None)
def codec_delay(kbps: int, sample_rate: int, quality: int = DEFAULT_QUALITY) -> int:
    """Encoder + decoder delay in decoded samples for this setting, found once by round-tripping a probe.

    The delay is a property of the codec chain, not of the content, so measuring it on a known probe aligns
    silent or noisy clips as well as any other (and follows a decoder that trims gaplessly, delay 0).
    """
    probe = _probe(sample_rate)
    decoded, rate = decode(encode(probe, kbps, sample_rate=sample_rate, quality=quality))
    return find_delay(_resample(probe, sample_rate, rate).astype(np.float32), decoded)


def round_trip(waveform: np.ndarray, kbps: int, *, sample_rate: int, quality: int = DEFAULT_QUALITY) -> Mp3Result:
    """Encode, decode, undo LAME's resampling and delay: audio at the input's rate and length, aligned."""
    waveform = _check_clip(waveform)
    kbps, sample_rate = check_kbps(kbps), check_sample_rate(sample_rate)
    data = encode(waveform, kbps, sample_rate=sample_rate, quality=quality)
    decoded, rate = decode(data)
    delay = codec_delay(kbps, sample_rate, quality)
    out = align(decoded, rate, kbps, sample_rate=sample_rate, length=len(waveform), quality=quality)
    return Mp3Result(audio=out, sample_rate_actual=rate, decoded_length=len(decoded), delay=delay, data=data,
                     bits_per_second=8 * len(data) * sample_rate / len(waveform), kbps_actual=frame_kbps(data))


def align(decoded: np.ndarray, rate: int, kbps: int, *, sample_rate: int, length: int,
          quality: int = DEFAULT_QUALITY) -> np.ndarray:
    """A decoded MP3 (at LAME's rate `rate`) -> float32 (length,) at the input's rate, the codec delay removed: what
    `round_trip` returns, so a stored MP3 file decodes to the quantizer's output."""
    delay = codec_delay(kbps, sample_rate, quality)
    # Shift at the decoded rate (the delay is whole decoded samples there), then resample back.
    audio = _resample(decoded[delay:], rate, sample_rate)[:length]
    out = np.zeros(length, np.float32)
    out[:len(audio)] = audio
    return out


@functools.lru_cache(maxsize=None)
def level_info(kbps: int, sample_rate: int, quality: int = DEFAULT_QUALITY) -> dict:
    """What a level really means at `sample_rate`, for the sweep's result rows.

    Returns {"sample_rate_actual": LAME's output (decoded) rate, "kbps_actual": the frame-header bitrate (LAME
    caps requests, e.g. at 64 kbps for 8 kHz input), "delay": encoder + decoder delay in decoded samples}.
    The real bits per second of a dataset come from its files' sizes (`Quantized.bits_per_item`), not from here.
    """
    kbps, sample_rate = check_kbps(kbps), check_sample_rate(sample_rate)
    data = encode(np.zeros(1152, np.float32), kbps, sample_rate=sample_rate, quality=quality)
    return {"sample_rate_actual": decode(data)[1], "kbps_actual": frame_kbps(data),
            "delay": codec_delay(kbps, sample_rate, quality)}


def _compress_chunk(waveforms: np.ndarray, kbps: int, sample_rate: int, quality: int) -> tuple:
    out = np.empty(waveforms.shape, np.float32)
    bits = np.empty(len(waveforms), np.int64)
    payload = np.empty(len(waveforms), np.float64)  # NaN where the frames cannot be parsed
    for i, waveform in enumerate(waveforms):
        result = round_trip(waveform, kbps, sample_rate=sample_rate, quality=quality)
        out[i] = result.audio
        bits[i] = 8 * len(result.data)
        main_data = payload_bytes(result.data)
        payload[i] = np.nan if main_data is None else 8 * main_data
    return out, bits, payload


def _pool_context():
    """Spawned workers (safe beside JAX's threads); forked ones where spawn cannot re-import an interactive main."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is None or os.path.exists(main_file):
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def compress(waveforms: np.ndarray, kbps: int, *, sample_rate: int, workers: Optional[int] = None,
             quality: int = DEFAULT_QUALITY) -> Quantized:
    """Round-trips a float32 batch (N, T) through MP3; returns aligned audio and each clip's file bits.

    Clips are spread over `workers` processes (default os.cpu_count()); `workers=1` runs in this process.
    Processes are spawned, not forked, so a parent that already runs JAX threads is safe.
    """
    waveforms = np.asarray(waveforms)
    if waveforms.ndim != 2:
        raise UserError(f"mp3 needs a batch of mono clips (N, T), got shape {waveforms.shape}; mix stereo down "
                        "to mono and stack clips of one length")
    if len(waveforms) == 0:
        return Quantized(np.zeros(waveforms.shape, np.float32), np.zeros(0, np.int64), np.zeros(0, np.float64))
    _check_clip(waveforms[0])
    kbps, sample_rate = check_kbps(kbps), check_sample_rate(sample_rate)
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(waveforms)))
    if workers == 1:
        return Quantized(*_compress_chunk(waveforms, kbps, sample_rate, quality))
    chunks = np.array_split(np.arange(len(waveforms)), min(len(waveforms), 4 * workers))
    out = np.empty(waveforms.shape, np.float32)
    bits = np.empty(len(waveforms), np.int64)
    payload = np.empty(len(waveforms), np.float64)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
        futures = {pool.submit(_compress_chunk, waveforms[idx], kbps, sample_rate, quality): idx for idx in chunks}
        for future in concurrent.futures.as_completed(futures):
            idx = futures[future]
            out[idx], bits[idx], payload[idx] = future.result()
    return Quantized(out, bits, payload)


# The codec libraries: their output is this quantizer's output, so their versions are part of its version.
LIBRARY = f"lameenc {importlib.metadata.version('lameenc')}, libsndfile {soundfile.__libsndfile_version__}"

# MP3 has no single quantization step (step=None); the analysis shows the bits per sample instead.
register("mp3", compress, modality="audio", level_name="kbps", level_range=(8, 320), label="MP3 bitrate",
         unit="kbps", prefix="kbps", step=None, version=f"1 ({LIBRARY})", level_info=level_info,
         description="MP3 through LAME (lameenc) at constant bitrate, decoded by libsndfile, aligned to the input")
