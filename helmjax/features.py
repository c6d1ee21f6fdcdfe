"""Log-mel spectrograms in JAX (jitted, batched): the audio models' input, computed like librosa's defaults.

Paper settings: 44.1 kHz, 2 s clips, 96 mels, n_fft 2048, hop 512, power spectrogram then dB (top 80 dB)
-> 96 x 173 (frames centred as librosa's center=True, zero padded as librosa >= 0.10). The mel filterbank is
Slaney's (librosa's default; `htk=True` for the HTK formula) and is built once in numpy float64.
`mel_filterbank` and the mel formulas are shared with the float64 numpy reference in the tests.
"""

import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.errors import UserError

PAPER_PARAMS = dict(n_mels=96, n_fft=2048, hop_length=512, fmin=0.0, fmax=None, top_db=80.0)


def hz_to_mel(hz, htk: bool = False):
    """Hz -> mel. Slaney: linear 0-1 kHz (200/3 Hz per mel, 1 kHz = 15 mel), log above; HTK: 2595 log10(1+f/700)."""
    hz = np.asarray(hz, np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                    hz / f_sp)


def mel_to_hz(mel, htk: bool = False):
    mel = np.asarray(mel, np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: Optional[float] = None,
                   htk: bool = False, slaney_norm: bool = True) -> np.ndarray:
    """float64 (n_mels, n_fft // 2 + 1) triangular filters, area-normalised (Slaney) like librosa.filters.mel."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if slaney_norm:
        weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (scipy's get_window('hann', n, fftbins=True), librosa's default)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def num_frames(num_samples: int, hop_length: int = 512, center: bool = True, n_fft: int = 2048) -> int:
    if center:
        return 1 + num_samples // hop_length
    return 1 + (num_samples - n_fft) // hop_length


def feature_shape(num_samples: int, sample_rate: int, *, n_mels: int = 96, n_fft: int = 2048, hop_length: int = 512,
                  center: bool = True, **_ignored) -> Tuple[int, int]:
    """(n_mels, frames) of `log_mel_spectrogram` for clips of `num_samples`; 2 s at 44.1 kHz -> (96, 173)."""
    del sample_rate  # the shape does not depend on it; kept so callers pass the same settings everywhere
    return n_mels, num_frames(num_samples, hop_length, center, n_fft)


def _check(waveforms, sample_rate, n_fft, hop_length, n_mels, center):
    waveforms = np.asarray(waveforms)
    if waveforms.ndim == 1:
        waveforms = waveforms[None]
    if waveforms.ndim != 2:
        raise UserError(f"log-mel needs mono waveforms (N, T), got shape {waveforms.shape}; mix stereo to mono")
    if min(n_fft, hop_length, n_mels, sample_rate) <= 0:
        raise UserError(f"log-mel settings must be positive: n_fft={n_fft}, hop_length={hop_length}, "
                        f"n_mels={n_mels}, sample_rate={sample_rate}")
    if not center and waveforms.shape[1] < n_fft:
        raise UserError(f"clips of {waveforms.shape[1]} samples are shorter than n_fft={n_fft}; use center=True "
                        "or a smaller n_fft")
    return waveforms


@functools.partial(jax.jit, static_argnames=("n_fft", "hop_length", "center", "top_db", "amin"))
def _log_mel(waveforms, window, filterbank, *, n_fft, hop_length, center, top_db, amin):
    if center:
        waveforms = jnp.pad(waveforms, ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = 1 + (waveforms.shape[1] - n_fft) // hop_length
    index = hop_length * jnp.arange(frames)[:, None] + jnp.arange(n_fft)[None, :]
    spectrum = jnp.fft.rfft(waveforms[:, index] * window, axis=-1)  # (N, frames, bins)
    power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
    mel = jnp.einsum("nfk,mk->nmf", power, filterbank, precision=jax.lax.Precision.HIGHEST)
    db = 10.0 * jnp.log10(jnp.maximum(mel, amin))
    if top_db is not None:
        db = jnp.maximum(db, jnp.max(db, axis=(1, 2), keepdims=True) - top_db)
    return db


def log_mel_spectrogram(waveforms, sample_rate: int, *, n_mels: int = 96, n_fft: int = 2048, hop_length: int = 512,
                        fmin: float = 0.0, fmax: Optional[float] = None, top_db: Optional[float] = 80.0,
                        amin: float = 1e-10, htk: bool = False, center: bool = True,
                        batch_size: int = 64) -> np.ndarray:
    """float32 (N, T) waveforms -> float32 (N, n_mels, frames) log-mel power in dB (ref 1.0, like librosa's
    power_to_db(ref=1.0)); top_db clips each clip to its own maximum minus top_db.

    Computed `batch_size` clips at a time (one compiled shape; the last batch is zero padded) so memory stays
    bounded for whole datasets.
    """
    waveforms = _check(waveforms, sample_rate, n_fft, hop_length, n_mels, center).astype(np.float32)
    window = jnp.asarray(hann_window(n_fft), jnp.float32)
    filterbank = jnp.asarray(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk), jnp.float32)
    compute = functools.partial(_log_mel, window=window, filterbank=filterbank, n_fft=n_fft, hop_length=hop_length,
                                center=center, top_db=None if top_db is None else float(top_db), amin=float(amin))
    n = len(waveforms)
    shape = (n,) + feature_shape(waveforms.shape[1], sample_rate, n_mels=n_mels, n_fft=n_fft,
                                 hop_length=hop_length, center=center)
    out = np.empty(shape, np.float32)
    step = max(1, min(batch_size, n))
    for start in range(0, n, step):
        batch = waveforms[start:start + step]
        if len(batch) < step:
            batch = np.concatenate([batch, np.zeros((step - len(batch),) + batch.shape[1:], np.float32)])
        out[start:start + step] = np.asarray(compute(batch))[:min(step, n - start)]
    return out
