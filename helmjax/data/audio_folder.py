"""Audio from files: one reader with clear errors, a folder-of-class-subfolders loader, and IDMT's layout.

`load_audio_folder(root)` reads `root/<class>/*.{wav,flac,mp3,ogg,aiff}` (class names sorted give the labels);
`load_idmt(root)` reads IDMT-SMT-Audio-Effects as distributed (`<instrument>/Samples/<Effect>/*.wav`, e.g.
`Gitarre monophon/Samples/Chorus/G61-...wav`). Every clip becomes mono float32 at one sample rate and one
length (crop the end / zero-pad the end). A file that cannot be read (empty, truncated, corrupt, stereo
without `downmix=True`) is logged, skipped and counted in `ArrayDataset.skipped`; the load goes on.
"""

import logging
import math
import pathlib
import struct
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import signal

from helmjax import audio_decode
from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
# IDMT-SMT-Audio-Effects' 12 effect folders, in the sorted order that gives their labels.
IDMT_CLASSES = ("Chorus", "Distortion", "EQ", "FeedbackDelay", "Flanger", "NoFX", "Overdrive", "Phaser", "Reverb",
                "SlapbackDelay", "Tremolo", "Vibrato")
IDMT_GUITAR = ("Gitarre monophon", "Gitarre polyphon")


def _wav_truncated(raw: bytes) -> bool:
    """True when a RIFF/WAVE file's data chunk claims more bytes than the file holds."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(raw):
        chunk, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if chunk == b"data":
            return pos + 8 + size > len(raw) and size != 0xFFFFFFFF  # 0xFFFFFFFF: streamed, size unknown
        pos += 8 + size + (size & 1)
    return False


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy), float32 out; the identity when the rates agree."""
    if from_rate == to_rate:
        return audio.astype(np.float32, copy=False)
    g = math.gcd(int(from_rate), int(to_rate))
    return signal.resample_poly(audio.astype(np.float64), to_rate // g, from_rate // g).astype(np.float32)


def read_audio(path, *, sample_rate: Optional[int] = None, downmix: bool = False) -> Tuple[np.ndarray, int]:
    """One file -> (float32 mono waveform in [-1, 1], sample rate); resampled to `sample_rate` if given.

    Raises a one-line UserError naming the file when it is empty, truncated, corrupt, or stereo (unless
    `downmix`, which averages the channels).
    """
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read audio file {path}: {e.strerror}") from None
    if not raw:
        raise UserError(f"audio file {path} is empty (0 bytes); remove or replace it")
    if _wav_truncated(raw):
        raise UserError(f"audio file {path} is truncated (its header promises more audio than the file holds); "
                        "re-export or remove it")
    audio, rate = audio_decode.decode(
        raw, undecodable=lambda reason: f"cannot decode audio file {path}: {reason}; the file is corrupt or not audio",
        no_frames=f"audio file {path} holds no audio frames; remove or replace it")
    if audio.shape[1] > 1 and not downmix:
        raise UserError(f"audio file {path} has {audio.shape[1]} channels; the models take mono: pass "
                        "downmix=True to average the channels, or convert the file")
    audio = audio.mean(axis=1)
    if sample_rate is not None and rate != sample_rate:
        audio, rate = resample(audio, rate, sample_rate), int(sample_rate)
    return audio.astype(np.float32), int(rate)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop the end or zero-pad the end to `length` samples."""
    out = np.zeros(length, np.float32)
    out[:min(length, len(audio))] = audio[:length]
    return out


def read_clips(files: Sequence[pathlib.Path], *, sample_rate: Optional[int], duration_s: Optional[float],
               downmix: bool = False) -> Tuple[np.ndarray, np.ndarray, int, int]:
    """Reads `files` -> (x float32 (M, T), kept indices into files, sample rate, skipped count).

    `sample_rate=None` takes the first readable file's rate; `duration_s=None` uses the longest clip.
    """
    clips, kept, skipped = [], [], 0
    for i, path in enumerate(files):
        try:
            audio, rate = read_audio(path, sample_rate=sample_rate, downmix=downmix)
        except UserError as e:
            log.warning("skipping unreadable audio: %s", e)
            skipped += 1
            continue
        sample_rate = rate if sample_rate is None else sample_rate
        clips.append(audio)
        kept.append(i)
    if skipped:
        log.warning("skipped %d of %d audio files that could not be read", skipped, len(files))
    if not clips:
        raise UserError(f"none of the {len(files)} audio files could be read (see the log); check the folder")
    length = max(len(c) for c in clips) if duration_s is None else int(round(duration_s * sample_rate))
    if length <= 0:
        raise UserError(f"duration_s={duration_s} gives no samples; use a positive duration")
    x = np.stack([fit_length(c, length) for c in clips])
    return x, np.asarray(kept, np.int64), int(sample_rate), skipped


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): each class shuffled by `seed`, round(test_fraction * n) of it (1 to n-1) to test."""
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction {test_fraction} must be between 0 and 1 (exclusive)")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        # At least one clip on each side whenever the class has two.
        n_test = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx))))) if len(idx) > 1 else 0
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(test, np.int64))


def _build(name, files, labels, classes, *, sample_rate, duration_s, test_fraction, seed, downmix) -> ArrayDataset:
    x, kept, rate, skipped = read_clips(files, sample_rate=sample_rate, duration_s=duration_s, downmix=downmix)
    y = np.asarray(labels, np.int32)[kept]
    train, test = stratified_split(y, test_fraction, seed)
    return ArrayDataset(name, x[train], y[train], x[test], y[test], tuple(classes), sample_rate=rate,
                        skipped=skipped)


def _audio_files(folder: pathlib.Path):
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def load_audio_folder(root, *, sample_rate: Optional[int] = None, duration_s: Optional[float] = None,
                      test_fraction: float = 0.2, seed: int = 0, downmix: bool = False) -> ArrayDataset:
    """`root/<class>/**/*.{wav,flac,mp3,...}` -> a stratified train/test ArrayDataset of mono clips."""
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"audio folder {root} does not exist; set data.root to a folder of class subfolders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _audio_files(root / name)
        files += found
        labels += [label] * len(found)
    if not files:
        raise UserError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in class subfolders of {root}; "
                        "lay it out as root/<class>/<file>")
    return _build(root.name, files, labels, classes, sample_rate=sample_rate, duration_s=duration_s,
                  test_fraction=test_fraction, seed=seed, downmix=downmix)


def load_idmt(root, *, instruments: Sequence[str] = IDMT_GUITAR, sample_rate: Optional[int] = 44100,
              duration_s: Optional[float] = 2.0, test_fraction: float = 0.2, seed: int = 0,
              downmix: bool = False) -> ArrayDataset:
    """IDMT-SMT-Audio-Effects as distributed: `<instrument>/Samples/<Effect>/*.wav` under `root`.

    `instruments` picks the instrument folders (default the two guitar ones the paper used; pass
    ("Bass monophon",) or () for all). Labels are the 12 effects in IDMT_CLASSES order, 2 s at 44.1 kHz.
    """
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"IDMT-SMT-Audio-Effects folder {root} does not exist; set data.root to the unpacked "
                        "IDMT-SMT-AUDIO-EFFECTS folder")
    files, labels = [], []
    for label, effect in enumerate(IDMT_CLASSES):
        for folder in sorted(root.rglob(effect)):
            instrument = folder.parent.parent.name if folder.parent.name == "Samples" else folder.parent.name
            if folder.is_dir() and (not instruments or instrument in instruments):
                found = _audio_files(folder)
                files += found
                labels += [label] * len(found)
    if not files:
        raise UserError(f"no IDMT effect folders ({', '.join(IDMT_CLASSES)}) with audio for instruments "
                        f"{', '.join(instruments) or 'any'} under {root}; expected <instrument>/Samples/<Effect>/*.wav")
    return _build("idmt_smt_audio_effects", files, labels, IDMT_CLASSES, sample_rate=sample_rate,
                  duration_s=duration_s, test_fraction=test_fraction, seed=seed, downmix=downmix)
