"""Spoken digits (FSDD, real speech, 8 kHz, 1 s clips, official split) vs MP3 bitrate. LAME caps 8 kHz input at
64 kbps, so the levels stop there. 64 mels x 63 frames; the audio architectures A-F; Adam."""

import ml_collections

from experiments._common import audio_paper_train, log_mel, mp3_quantizer


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "fsdd_mp3_sweep"
    c.data = ml_collections.ConfigDict(dict(name="fsdd", duration_s=1.0, split_seed=0))
    c.quantizer = mp3_quantizer()
    c.features = log_mel(n_mels=64, n_fft=512, hop_length=128)
    c.model = ml_collections.ConfigDict(dict(family="audio", width=1.0, conv_dropout=0.5, fc_dropout=0.6))
    c.train = audio_paper_train()
    c.train.update(optimizer="adam", lr=1e-3, epochs=30)
    c.grid = ml_collections.ConfigDict(dict(level=["raw", 8, 16, 24, 32, 48, 64], arch=list("ABCDEF"),
                                            seed=[0, 1, 2]))
    c.tolerance = 0.02
    return c
