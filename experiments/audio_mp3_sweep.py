"""The paper's audio experiment: MP3 bitrate sweep on guitar effects (12 classes), audio architectures A-F.

Uses IDMT-SMT-Audio-Effects when it is at $HELMJAX_DATA_DIR/IDMT-SMT-AUDIO-EFFECTS (or `--set data.name=idmt
--set data.root=...`), else the procedural guitar-effects set with IDMT's classes (offline stand-in: it stands
in for the classes, not the sound). Meant for a GPU/TPU machine: 8 levels x 6 archs x 3 seeds x 200 epochs.
"""

import ml_collections

from experiments._common import audio_paper_train, log_mel, mp3_quantizer
from helmjax.paths import data_file


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "audio_mp3_sweep"
    idmt = data_file("IDMT-SMT-AUDIO-EFFECTS")
    # Keys both loaders take, so `--set data.name=idmt --set data.root=DIR` switches (root is idmt's only).
    c.data = ml_collections.ConfigDict(dict(name="idmt" if idmt.is_dir() else "guitar_fx",
                                            root=str(idmt) if idmt.is_dir() else None, seed=0, sample_rate=44100,
                                            duration_s=2.0, split_seed=0))
    c.quantizer = mp3_quantizer()
    c.features = log_mel()
    c.model = ml_collections.ConfigDict(dict(family="audio", width=1.0, conv_dropout=0.5, fc_dropout=0.6))
    c.train = audio_paper_train()
    c.grid = ml_collections.ConfigDict(dict(level=["raw", 8, 16, 32, 64, 96, 128, 160], arch=list("ABCDEF"),
                                            seed=[0, 1, 2]))
    c.tolerance = 0.02
    return c
