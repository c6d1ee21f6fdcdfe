"""A procedural guitar-effects data set with IDMT-SMT-Audio-Effects' 12 classes, so audio sweeps run offline.

Each clip is one plucked string (Karplus-Strong: random pitch E2-E5, velocity, brightness, decay, onset)
through one effect with random settings in a musical range. Everything is drawn from
`np.random.default_rng([seed, label, index])`, so a clip depends only on (seed, class, index): the same seed
gives the same data, and more clips per class only add clips. It stands in for IDMT's classes, not its sound:
accuracies on it say nothing about real guitars.
"""

from typing import Callable, Dict

import numpy as np
from scipy import signal

from helmjax.data.audio_folder import IDMT_CLASSES, stratified_split
from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError


def pluck(rng: np.random.Generator, sample_rate: int, length: int) -> np.ndarray:
    """A Karplus-Strong plucked string: a noise burst recirculated through a damped two-tap average."""
    f0 = 82.41 * 2.0 ** (rng.uniform(0, 36) / 12)  # E2 .. E5
    period = max(2, int(round(sample_rate / f0)))
    velocity = rng.uniform(0.3, 1.0)
    # Softer plucks are darker: low-pass the excitation more.
    burst = rng.uniform(-1, 1, period)
    brightness = 0.2 + 0.7 * velocity
    burst = signal.lfilter([brightness], [1, -(1 - brightness)], burst)
    damping = rng.uniform(0.990, 0.999)
    onset = int(rng.uniform(0, 0.1) * sample_rate)
    # y[n] = damping * (y[n-P] + y[n-P-1]) / 2, computed a period at a time.
    periods = -(-(length - onset) // period) + 1
    y = np.empty(periods * period)
    y[:period] = burst
    for k in range(1, periods):
        prev = y[(k - 1) * period:k * period]
        before = np.concatenate([[y[(k - 1) * period - 1] if k > 1 else 0.0], prev[:-1]])
        y[k * period:(k + 1) * period] = damping * 0.5 * (prev + before)
    out = np.zeros(length)
    out[onset:] = y[:length - onset]
    return velocity * out / (np.abs(out).max() + 1e-12)


def _lfo(rng, n, sample_rate, low_hz, high_hz):
    rate = rng.uniform(low_hz, high_hz)
    return np.sin(2 * np.pi * rate * np.arange(n) / sample_rate + rng.uniform(0, 2 * np.pi))


def _delayed(x, delay_samples):
    """x read `delay_samples` (float, per sample) in the past, by linear interpolation (zeros before 0)."""
    t = np.arange(len(x)) - delay_samples
    return np.interp(t, np.arange(len(x)), x, left=0.0)


def _shift(x, d):
    out = np.zeros_like(x)
    out[d:] = x[:len(x) - d]
    return out


def no_fx(x, rng, sr):
    return x


def distortion(x, rng, sr):
    return np.tanh(rng.uniform(20, 60) * x)


def overdrive(x, rng, sr):
    drive = rng.uniform(2, 5)
    y = x * drive
    return np.where(y >= 0, np.tanh(y), np.tanh(0.6 * y) / 0.6 * 0.8)  # asymmetric soft clip


def eq(x, rng, sr):
    """A strong peaking band (RBJ biquad) of +12..+18 dB somewhere in 400 Hz-3 kHz."""
    f, gain_db, q = rng.uniform(400, 3000), rng.uniform(12, 18), rng.uniform(0.7, 2.0)
    a, w = 10 ** (gain_db / 40), 2 * np.pi * f / sr
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return signal.lfilter(b, den, x)


def chorus(x, rng, sr):
    delay = (rng.uniform(0.015, 0.025) + rng.uniform(0.002, 0.004) * _lfo(rng, len(x), sr, 0.5, 2.0)) * sr
    return 0.6 * x + 0.6 * _delayed(x, delay)


def flanger(x, rng, sr):
    delay = (0.003 + rng.uniform(0.001, 0.0025) * _lfo(rng, len(x), sr, 0.2, 1.0)) * sr
    y = x + rng.uniform(0.8, 1.0) * _delayed(x, delay)
    return y + 0.5 * _delayed(y, delay)  # a second pass deepens the notches (poor man's feedback)


def phaser(x, rng, sr, block=256):
    """Four first-order all-passes swept by an LFO (coefficients held per block), mixed with the dry signal."""
    lfo = _lfo(rng, len(x), sr, 0.3, 1.5)
    fc = 300 * (8 ** ((lfo + 1) / 2))  # 300 Hz .. 2.4 kHz
    wet, states = np.empty_like(x), [np.zeros(1) for _ in range(4)]
    for start in range(0, len(x), block):
        t = np.tan(np.pi * fc[start] / sr)
        c = (t - 1) / (t + 1)
        y = x[start:start + block]
        for i in range(4):
            y, states[i] = signal.lfilter([c, 1], [1, c], y, zi=states[i])
        wet[start:start + block] = y
    return 0.7 * (x + wet)


def tremolo(x, rng, sr):
    return x * (1 - rng.uniform(0.5, 0.9) * 0.5 * (1 + _lfo(rng, len(x), sr, 4, 9)))


def vibrato(x, rng, sr):
    depth = rng.uniform(0.001, 0.003) * sr
    return _delayed(x, depth + depth * _lfo(rng, len(x), sr, 4, 8))


def feedback_delay(x, rng, sr):
    d, g = int(rng.uniform(0.2, 0.4) * sr), rng.uniform(0.4, 0.65)
    y, echo, gain = x.copy(), x, 1.0
    for _ in range(len(x) // d):
        echo, gain = _shift(echo, d), gain * g
        y += gain * echo
    return y


def slapback_delay(x, rng, sr):
    return x + rng.uniform(0.5, 0.8) * _shift(x, int(rng.uniform(0.06, 0.15) * sr))


def reverb(x, rng, sr):
    rt60 = rng.uniform(0.8, 2.0)
    n = int(rt60 * sr)
    impulse = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    impulse = signal.lfilter([0.4], [1, -0.6], impulse)  # darker tail, like a room
    wet = signal.fftconvolve(x, impulse)[:len(x)]
    wet /= np.abs(wet).max() + 1e-12
    return x + rng.uniform(0.4, 0.8) * wet * np.abs(x).max()


EFFECTS: Dict[str, Callable] = {
    "Chorus": chorus, "Distortion": distortion, "EQ": eq, "FeedbackDelay": feedback_delay, "Flanger": flanger,
    "NoFX": no_fx, "Overdrive": overdrive, "Phaser": phaser, "Reverb": reverb, "SlapbackDelay": slapback_delay,
    "Tremolo": tremolo, "Vibrato": vibrato,
}
assert tuple(EFFECTS) == IDMT_CLASSES


def make_clip(seed: int, label: int, index: int, sample_rate: int = 44100, duration_s: float = 2.0) -> np.ndarray:
    """Clip `index` of class `label` for `seed`: float32 (T,), peak 0.55-0.9 (follows the pluck's velocity)."""
    rng = np.random.default_rng([seed, label, index])
    length = int(round(duration_s * sample_rate))
    note = pluck(rng, sample_rate, length)
    velocity = np.abs(note).max()
    out = EFFECTS[IDMT_CLASSES[label]](note, rng, sample_rate)
    out = out / (np.abs(out).max() + 1e-12) * (0.4 + 0.5 * velocity)
    return out.astype(np.float32)


def make_guitar_fx(seed: int = 0, n_per_class: int = 100, sample_rate: int = 44100, duration_s: float = 2.0,
                   test_fraction: float = 0.2) -> ArrayDataset:
    """12 classes x `n_per_class` clips, split per class (stratified, by `seed`) into train and test."""
    if n_per_class < 2:
        raise UserError(f"n_per_class={n_per_class} leaves no clip for train or test; use at least 2")
    if sample_rate < 8000 or duration_s <= 0:
        raise UserError(f"guitar_fx needs sample_rate >= 8000 and duration_s > 0, got {sample_rate}, {duration_s}")
    x = np.stack([make_clip(seed, label, i, sample_rate, duration_s)
                  for label in range(len(IDMT_CLASSES)) for i in range(n_per_class)])
    y = np.repeat(np.arange(len(IDMT_CLASSES), dtype=np.int32), n_per_class)
    train, test = stratified_split(y, test_fraction, seed)
    return ArrayDataset("guitar_fx", x[train], y[train], x[test], y[test], IDMT_CLASSES, sample_rate=sample_rate)
