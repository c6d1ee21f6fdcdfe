"""MP3 quantizer: real LAME + libsndfile round trips, alignment, resampling, bits, bad input."""

import numpy as np
import pytest

from helmjax.errors import UserError
from helmjax.paths import data_file
from helmjax.quantizers import registry

mp3 = pytest.importorskip("helmjax.quantizers.mp3", reason="lameenc/soundfile not installed")

FSDD = data_file("fsdd/recordings")


def fsdd_clip(name="3_theo_12.wav"):
    if not FSDD.exists():
        pytest.skip(f"FSDD not found at {FSDD}; set $HELMJAX_DATA_DIR")
    import soundfile
    audio, rate = soundfile.read(FSDD / name, dtype="float32")
    assert rate == 8000
    return audio


def tone_mix(sample_rate, seconds=1.0, freqs=(300.0, 1200.0, 6000.0, 15000.0), amplitude=0.2):
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (sum(amplitude * np.sin(2 * np.pi * f * t) for f in freqs if f < sample_rate / 2)).astype(np.float32)


def test_round_trip_of_real_speech_is_aligned_at_128_kbps():
    clip = fsdd_clip()
    result = mp3.round_trip(clip, 128, sample_rate=8000)
    assert result.audio.shape == clip.shape and result.audio.dtype == np.float32
    assert np.corrcoef(clip, result.audio)[0, 1] > 0.9
    # Aligned to the sample: shifting by one either way correlates worse.
    corr = [np.dot(clip[5:-5], np.roll(result.audio, s)[5:-5]) for s in (-1, 0, 1)]
    assert corr[1] > max(corr[0], corr[2])
    assert result.sample_rate_actual == 8000
    assert result.kbps_actual == 64  # MPEG-2.5 at 8 kHz tops out at 64 kbps: LAME caps the request
    assert result.delay == 576 + 529  # LAME's encoder delay + the mpg123 decoder delay
    assert result.bits_per_second == 8 * len(result.data) * 8000 / len(clip)
    assert result.data[:2] == b"\xff\xe3"  # MPEG-2.5 layer III frame sync


TONES = (300.0, 2000.0, 4000.0, 7000.0, 10000.0, 15000.0, 19000.0)


# LAME's resampling and low-pass at 44.1 kHz input (PAPER.md: 8 -> 8 kHz ~3 kHz, 16 -> 16 kHz ~5.5 kHz,
# 32 -> 22.05 kHz ~8.3 kHz, 64 -> 44.1 kHz ~16.5 kHz): tones below the low-pass survive, those above vanish.
@pytest.mark.parametrize("kbps,rate,lowpass_hz", [(8, 8000, 3000), (16, 16000, 5500), (32, 22050, 8300),
                                                  (64, 44100, 16500), (128, 44100, 20000)])
def test_bitrate_sets_sample_rate_and_low_pass_at_44100(kbps, rate, lowpass_hz):
    x = tone_mix(44100, freqs=TONES, amplitude=0.1)
    result = mp3.round_trip(x, kbps, sample_rate=44100)
    assert result.sample_rate_actual == rate
    assert result.audio.shape == x.shape
    spectrum = np.abs(np.fft.rfft(result.audio * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 44100)
    level_db = {f: 20 * np.log10(spectrum[np.abs(freqs - f) < 30].max()) for f in TONES}
    for f in TONES:
        if f < lowpass_hz:
            assert abs(level_db[f] - level_db[300.0]) < 3, (f, level_db)
        else:
            assert level_db[f] < level_db[300.0] - 60, (f, level_db)
    # Still aligned with the input after undoing LAME's resampling and delay.
    assert np.corrcoef(lowpassed(x, 1000), lowpassed(result.audio, 1000))[0, 1] > 0.99


def lowpassed(x, cutoff_hz, sample_rate=44100):
    freqs = np.fft.rfftfreq(len(x), 1 / sample_rate)
    return np.fft.irfft(np.fft.rfft(x) * (freqs < cutoff_hz), len(x))


def test_level_info_records_the_actual_rate_and_bitrate():
    info = mp3.level_info(64, 44100)
    assert info == {"sample_rate_actual": 44100, "kbps_actual": 64, "delay": 1105}
    assert mp3.level_info(96, 8000)["kbps_actual"] == 64
    assert registry.get("mp3").level_info(8, 44100)["sample_rate_actual"] == 8000


def test_registry_batch_with_one_and_two_workers_agree_and_bits_are_file_bits():
    spec = registry.get("mp3")
    assert (spec.modality, spec.level_name, spec.level_range) == ("audio", "kbps", (8, 320))
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((6, 4000))).clip(-1, 1).astype(np.float32)
    one = registry.apply("mp3", x, 32, sample_rate=8000, workers=1)
    two = registry.apply("mp3", x, 32, sample_rate=8000, workers=2)
    assert one.data.shape == x.shape and one.data.dtype == np.float32
    np.testing.assert_array_equal(one.data, two.data)
    np.testing.assert_array_equal(one.bits_per_item, two.bits_per_item)
    want = [8 * len(mp3.encode(clip, 32, sample_rate=8000)) for clip in x]
    np.testing.assert_array_equal(one.bits_per_item, want)
    assert one.bits_per_item.dtype == np.int64


def test_bad_input_is_one_clear_error():
    x = np.zeros(8000, np.float32)
    with pytest.raises(UserError, match="100"):
        mp3.round_trip(x, 100, sample_rate=8000)
    with pytest.raises(UserError, match="7000"):
        mp3.round_trip(x, 32, sample_rate=7000)
    with pytest.raises(UserError, match="mono"):
        mp3.round_trip(np.zeros((8000, 2), np.float32), 32, sample_rate=8000)
    with pytest.raises(UserError, match="mono"):
        mp3.compress(np.zeros((2, 8000, 2), np.float32), 32, sample_rate=8000)
    with pytest.raises(UserError, match="empty"):
        mp3.round_trip(np.zeros(0, np.float32), 32, sample_rate=8000)
    with pytest.raises(UserError, match="finite"):
        mp3.round_trip(np.full(100, np.nan, np.float32), 32, sample_rate=8000)
    with pytest.raises(UserError, match="corrupt.mp3"):
        mp3.decode(b"not an mp3 at all" * 50, name="corrupt.mp3")
    with pytest.raises(UserError, match="empty"):
        mp3.decode(b"", name="empty.mp3")
    with pytest.raises(UserError, match="out of range"):
        registry.apply("mp3", np.zeros((1, 100), np.float32), 4, sample_rate=8000)


def test_truncated_mp3_still_decodes_what_is_there():
    data = mp3.encode(tone_mix(8000), 32, sample_rate=8000)
    audio, rate = mp3.decode(data[:len(data) // 2])
    assert rate == 8000 and 0 < len(audio) < 8000 + 2000
