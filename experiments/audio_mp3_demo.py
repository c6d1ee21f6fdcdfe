"""A CPU-sized audio sweep: the procedural guitar-effects set (12 classes, 16 kHz, 1.5 s), MP3 raw + 4 bitrates,
a narrow audio architecture A (light dropout), 12 epochs of Adam on per-clip standardised log-mels."""

import ml_collections

from experiments._common import audio_paper_train, log_mel, mp3_quantizer


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "audio_mp3_demo"
    c.data = ml_collections.ConfigDict(dict(name="guitar_fx", seed=0, n_per_class=60, sample_rate=16000,
                                            duration_s=1.5, split_seed=0))
    c.quantizer = mp3_quantizer()
    c.features = log_mel(n_mels=40, n_fft=512, hop_length=256)
    c.model = ml_collections.ConfigDict(dict(family="audio", width=0.5, conv_dropout=0.2, fc_dropout=0.5))
    c.train = audio_paper_train()
    c.train.update(optimizer="adam", lr=3e-3, batch_size=32, epochs=12, standardize=True)
    c.grid = ml_collections.ConfigDict(dict(level=["raw", 8, 16, 32, 64], arch=["A"], seed=[0]))
    c.tolerance = 0.03
    return c
