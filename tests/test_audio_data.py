"""Audio datasets: FSDD (real), folders with bad files, IDMT's layout, the procedural guitar-effects set."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

soundfile = pytest.importorskip("soundfile")

from helmjax import features, paths  # noqa: E402
from helmjax.data import audio_folder, guitar_fx  # noqa: E402
from helmjax.data.fsdd import load_fsdd  # noqa: E402
from helmjax.errors import UserError  # noqa: E402


def test_fsdd_official_split_and_fixed_length():
    if not (paths.data_dir() / "fsdd" / "recordings").is_dir():
        pytest.skip(f"FSDD not found under {paths.data_dir()}; set $HELMJAX_DATA_DIR")
    ds = load_fsdd()
    assert (len(ds.x_train), len(ds.x_test)) == (2700, 300)  # index 0-4 of 10 digits x 6 speakers (of 50 each) is test
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == 8000 and ds.x_train.dtype == np.float32
    assert ds.sample_rate == 8000 and ds.skipped == 0 and ds.classes == tuple("0123456789")
    np.testing.assert_array_equal(np.bincount(ds.y_test), [30] * 10)
    assert np.abs(ds.x_train).max() <= 1.0 and ds.y_train.dtype == np.int32
    # 0_george_0.wav is the first test file in sorted order; its samples open the test set unchanged.
    first, _ = soundfile.read(paths.data_dir() / "fsdd" / "recordings" / "0_george_0.wav", dtype="float32")
    np.testing.assert_array_equal(ds.x_test[0, :len(first)], first[:8000])
    assert ds.y_test[0] == 0


def test_fsdd_missing_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="FSDD not found"):
        load_fsdd(tmp_path)


def _wav(path, audio, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, subtype="PCM_16")


def _bad_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.mp3").write_bytes(b"this is not an mp3 " * 40)
    good = folder / "tmp_good.wav"
    _wav(good, np.full(4000, 0.25, np.float32))
    (folder / "truncated.wav").write_bytes(good.read_bytes()[:3000])
    good.unlink()
    _wav(folder / "stereo.wav", np.zeros((800, 2), np.float32))


def test_folder_loader_skips_and_counts_bad_files(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for cls in ("dog", "cat"):
        for i in range(5):
            _wav(tmp_path / cls / f"{i}.wav", rng.uniform(-0.5, 0.5, 4000 + 400 * i).astype(np.float32))
    _wav(tmp_path / "cat" / "fast.wav", rng.uniform(-0.5, 0.5, 8000).astype(np.float32), rate=16000)
    _bad_files(tmp_path / "dog")
    with caplog.at_level(logging.WARNING):
        ds = audio_folder.load_audio_folder(tmp_path, test_fraction=0.4, seed=1)
    assert ds.skipped == 4 and ds.classes == ("cat", "dog")
    assert "truncated.wav" in caplog.text and "stereo.wav" in caplog.text and "corrupt.mp3" in caplog.text
    assert len(ds.x_train) + len(ds.x_test) == 11 and np.bincount(ds.y_test).tolist() == [2, 2]
    assert ds.sample_rate == 8000 and ds.x_train.shape[1] == 5600  # the longest clip; 16 kHz file resampled
    fixed = audio_folder.load_audio_folder(tmp_path, sample_rate=8000, duration_s=0.25, downmix=True)
    assert fixed.x_train.shape[1] == 2000 and fixed.skipped == 3  # stereo now mixed down


def test_reader_names_the_bad_file(tmp_path):
    _bad_files(tmp_path)
    for name, why in [("empty.wav", "empty"), ("corrupt.mp3", "corrupt"), ("truncated.wav", "truncated"),
                      ("stereo.wav", "channels")]:
        with pytest.raises(UserError, match=why) as err:
            audio_folder.read_audio(tmp_path / name)
        assert name in str(err.value)


def test_idmt_layout(tmp_path):
    rng = np.random.default_rng(0)
    for instrument in ("Gitarre monophon", "Bass monophon"):
        for effect in ("NoFX", "Reverb", "Chorus"):
            for i in range(3):
                _wav(tmp_path / instrument / "Samples" / effect / f"G{i}.wav",
                     rng.uniform(-0.5, 0.5, 1000).astype(np.float32), rate=8000)
    ds = audio_folder.load_idmt(tmp_path, sample_rate=8000, duration_s=0.1, test_fraction=1 / 3)
    assert ds.classes == audio_folder.IDMT_CLASSES and ds.num_classes == 12
    labels = np.concatenate([ds.y_train, ds.y_test])
    assert sorted(set(labels.tolist())) == [0, 5, 8]  # Chorus, NoFX, Reverb: the guitar folder only
    assert len(labels) == 9 and ds.x_train.shape[1] == 800
    every = audio_folder.load_idmt(tmp_path, instruments=(), sample_rate=8000, duration_s=0.1)
    assert len(every.y_train) + len(every.y_test) == 18
    with pytest.raises(UserError, match="no IDMT effect folders"):
        audio_folder.load_idmt(tmp_path / "Gitarre monophon" / "Samples" / "NoFX")


def test_guitar_fx_is_deterministic_and_prefix_stable():
    a = guitar_fx.make_guitar_fx(seed=3, n_per_class=4, sample_rate=8000, duration_s=0.5)
    b = guitar_fx.make_guitar_fx(seed=3, n_per_class=4, sample_rate=8000, duration_s=0.5)
    c = guitar_fx.make_guitar_fx(seed=4, n_per_class=4, sample_rate=8000, duration_s=0.5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.classes == audio_folder.IDMT_CLASSES and a.sample_rate == 8000
    assert a.x_train.shape == (36, 4000) and a.x_train.dtype == np.float32
    assert 0.5 < np.abs(a.x_train).max() <= 0.9 + 1e-6
    # A clip depends only on (seed, class, index): the same clip sits in the 4-per-class set.
    clip = guitar_fx.make_clip(3, 7, 2, 8000, 0.5)
    assert any(np.array_equal(clip, row) for row in np.concatenate([a.x_train, a.x_test]))
    paper = guitar_fx.make_guitar_fx(seed=0, n_per_class=2)  # the paper's 44.1 kHz, 2 s
    assert paper.x_train.shape == (12, 88200) and paper.x_test.shape == (12, 88200)  # one each side


def _log_mel_statistics(x, sample_rate):
    """Per-mel mean, spread and frame-to-frame change, plus the loudness envelope's modulation spectrum."""
    m = features.log_mel_spectrogram(x, sample_rate, n_mels=40, n_fft=512, hop_length=128)
    m = m - m.max(axis=(1, 2), keepdims=True)
    envelope_change = np.diff(m.max(axis=1), axis=1)
    modulation = np.abs(np.fft.rfft(envelope_change, axis=1))[:, 1:40]
    modulation /= modulation.sum(axis=1, keepdims=True) + 1e-9
    return np.concatenate([m.mean(2), m.std(2), np.abs(np.diff(m, axis=2)).mean(2), modulation], axis=1)


def test_guitar_fx_classes_are_distinguishable():
    """Softmax regression (optax Adam) on log-mel statistics of 480 short clips clearly beats 1/12 chance.

    A linear model on statistics rather than a CNN: it trains in a second on 2 cores and is not at the mercy
    of a CNN's initialisation; a CNN would only do better.
    """
    ds = guitar_fx.make_guitar_fx(seed=0, n_per_class=40, sample_rate=16000, duration_s=1.5)
    train, test = _log_mel_statistics(ds.x_train, 16000), _log_mel_statistics(ds.x_test, 16000)
    mean, std = train.mean(0), train.std(0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    params = {"w": jnp.zeros((train.shape[1], 12)), "b": jnp.zeros(12)}
    optimizer = optax.adam(0.01)

    def loss(params):
        logits = train @ params["w"] + params["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, ds.y_train).mean() \
            + 1e-3 * jnp.sum(params["w"] ** 2)

    @jax.jit
    def step(params, state):
        updates, state = optimizer.update(jax.grad(loss)(params), state)
        return optax.apply_updates(params, updates), state

    state = optimizer.init(params)
    for _ in range(500):
        params, state = step(params, state)
    predicted = np.argmax(test @ params["w"] + params["b"], axis=1)
    accuracy = float(np.mean(predicted == ds.y_test))
    assert accuracy > 0.5, accuracy  # chance is 0.083; about 0.78 measured
    assert len(set(predicted.tolist())) >= 10  # not a few classes carrying it


@pytest.mark.slow
def test_smoke_audio_sweep_end_to_end(tmp_path):
    """guitar_fx -> MP3 at two bitrates -> log-mel -> audio model A, through the real sweep runner."""
    import ml_collections
    from helmjax import config as config_lib
    from helmjax.sweeps import sweep

    c = config_lib.load_experiment("demo_q_sweep").to_dict()
    c.update(name="audio_smoke", tolerance=0.05)
    c["data"] = dict(name="guitar_fx", seed=0, n_per_class=6, sample_rate=8000, duration_s=0.5, split_seed=0)
    c["quantizer"] = dict(name="mp3", workers=1, apply_to="both")
    c["features"] = dict(name="log_mel", n_mels=32, n_fft=256, hop_length=64)
    c["model"] = dict(family="audio", width=0.25)
    c["train"].update(optimizer="adam", lr=1e-3, batch_size=16, eval_batch_size=64, epochs=1, augment=False)
    c["grid"] = dict(level=["raw", 8, 32], arch=["A"], seed=[0])
    out = sweep.run_sweep(ml_collections.ConfigDict(c), tmp_path, progress=False, log=lambda *_: None)
    assert out.trained == ["raw-A-s0", "kbps8-A-s0", "kbps32-A-s0"] and not out.failed
    rows = {r["level"]: r for r in out.rows}
    assert rows["raw"]["bits_per_second"] == 16 * 8000  # 16-bit PCM
    assert 8000 <= rows[8]["bits_per_second"] < rows[32]["bits_per_second"] < 48000  # file bits, headers included
    assert all(r["status"] == "done" and 0.0 <= r["test_acc"] <= 1.0 for r in out.rows)
