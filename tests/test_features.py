"""Log-mel in JAX against a float64 numpy reference; the reference itself against independent facts."""

import numpy as np
import pytest

from helmjax import features
from helmjax.errors import UserError
from helmjax.paths import data_file


def reference_log_mel(waveform, sample_rate, n_mels=96, n_fft=2048, hop_length=512, fmin=0.0, fmax=None,
                      top_db=80.0, amin=1e-10, htk=False):
    """librosa.feature.melspectrogram + power_to_db(ref=1.0) written out in float64, one frame at a time."""
    x = np.pad(np.asarray(waveform, np.float64), n_fft // 2)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = 1 + (len(x) - n_fft) // hop_length
    power = np.stack([np.abs(np.fft.rfft(x[i * hop_length:i * hop_length + n_fft] * window)) ** 2
                      for i in range(frames)], axis=1)  # (bins, frames)
    mel = features.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk) @ power
    db = 10 * np.log10(np.maximum(mel, amin))
    return db if top_db is None else np.maximum(db, db.max() - top_db)


def test_slaney_and_htk_mel_formulas_match_published_values():
    # Slaney: 1 kHz = 15 mel, linear below (200/3 Hz per mel), 27 mel per factor 6.4 above.
    assert features.hz_to_mel(1000.0) == pytest.approx(15.0, abs=1e-12)
    assert features.hz_to_mel(200.0) == pytest.approx(3.0, abs=1e-12)
    assert features.hz_to_mel(6400.0) == pytest.approx(42.0, abs=1e-12)
    # HTK: 2595 log10(1 + f/700); 1000 Hz -> 999.985..., 700 Hz -> 2595 log10 2.
    assert features.hz_to_mel(1000.0, htk=True) == pytest.approx(999.9855, abs=1e-4)
    assert features.hz_to_mel(700.0, htk=True) == pytest.approx(2595 * np.log10(2), abs=1e-9)
    hz = np.array([0.0, 50.0, 999.0, 1000.0, 4321.0, 22050.0])
    for htk in (False, True):
        np.testing.assert_allclose(features.mel_to_hz(features.hz_to_mel(hz, htk), htk), hz, atol=1e-9)


def test_filterbank_is_triangles_with_unit_area_in_hz():
    fb = features.mel_filterbank(44100, 2048, 96)
    assert fb.shape == (96, 1025) and (fb >= 0).all()
    assert (fb.sum(axis=1) > 0).all()  # no empty filter at the paper's settings
    # Slaney normalisation: each triangle (peak 2/width) integrates to 1 over Hz; bins are sr/n_fft apart.
    np.testing.assert_allclose(fb.sum(axis=1) * 44100 / 2048, 1.0, rtol=0.05)


@pytest.mark.parametrize("freq", [440.0, 3000.0])
def test_pure_tone_lands_in_the_mel_band_around_its_frequency(freq):
    sr = 22050
    tone = np.sin(2 * np.pi * freq * np.arange(sr) / sr)
    db = reference_log_mel(tone, sr, n_mels=40, n_fft=1024, hop_length=256)
    loudest = int(np.argmax(db[:, 10:-10].mean(axis=1)))
    edges = features.mel_to_hz(np.linspace(0, features.hz_to_mel(sr / 2), 42))
    assert edges[loudest] < freq < edges[loudest + 2]  # inside the loudest band's triangle
    # A full-scale sine of amplitude 1: power per bin pair ~ (sum of window / 2)^2; at least 40 dB over the floor.
    assert db[loudest, 10:-10].mean() > db.max() - 1 and db.max() - np.median(db) > 40


def test_paper_shape_is_96_by_173():
    assert features.feature_shape(88200, 44100) == (96, 173)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 88200)).astype(np.float32)
    out = features.log_mel_spectrogram(x, 44100)
    assert out.shape == (3, 96, 173) and out.dtype == np.float32


def _fsdd_or_noise(n):
    path = data_file("fsdd/recordings")
    if path.exists():
        import soundfile
        clips = [soundfile.read(path / f"{d}_jackson_7.wav", dtype="float32")[0] for d in range(n)]
        out = np.zeros((n, 8000), np.float32)
        for i, c in enumerate(clips):
            out[i, :min(8000, len(c))] = c[:8000]
        return out
    return np.random.default_rng(1).uniform(-0.5, 0.5, (n, 8000)).astype(np.float32)


@pytest.mark.parametrize("params", [
    dict(sample_rate=44100, n_mels=96, n_fft=2048, hop_length=512),
    dict(sample_rate=8000, n_mels=64, n_fft=512, hop_length=128, fmin=20.0, fmax=3800.0),
    dict(sample_rate=8000, n_mels=32, n_fft=256, hop_length=100, htk=True, top_db=None),
])
def test_jax_matches_float64_reference_within_1e3_db(params):
    params = dict(params)
    sr = params.pop("sample_rate")
    rng = np.random.default_rng(2)
    if sr == 44100:
        t = np.arange(88200) / sr
        x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-t) + 0.01 * rng.standard_normal(88200),
                      rng.uniform(-1, 1, 88200)]).astype(np.float32)
    else:
        x = _fsdd_or_noise(3)
    got = features.log_mel_spectrogram(x, sr, batch_size=2, **params)
    for i in range(len(x)):
        want = reference_log_mel(x[i], sr, **params)
        assert got[i].shape == want.shape
        # Only bins above the float32 floor: power below ~1e-7 of the clip's peak has no 1e-3 dB meaning in float32.
        meaningful = want > want.max() - 70
        np.testing.assert_allclose(got[i][meaningful], want[meaningful], atol=1e-3)
        np.testing.assert_allclose(got[i], want, atol=0.05 if params.get("top_db", 80.0) else 1.0)


def test_batches_are_independent_of_batch_size():
    x = np.random.default_rng(3).uniform(-0.5, 0.5, (5, 4000)).astype(np.float32)
    a = features.log_mel_spectrogram(x, 8000, n_mels=32, n_fft=256, hop_length=64, batch_size=2)
    b = features.log_mel_spectrogram(x, 8000, n_mels=32, n_fft=256, hop_length=64, batch_size=5)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match="mono"):
        features.log_mel_spectrogram(np.zeros((2, 100, 2), np.float32), 8000)
    with pytest.raises(UserError, match="positive"):
        features.log_mel_spectrogram(np.zeros((1, 1000), np.float32), 8000, hop_length=0)
