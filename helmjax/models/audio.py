"""The paper's audio classifiers A-F (IDMT-SMT-Audio-Effects) on log-mel spectrograms, BatchNorm bug fixed.

Input float32 (N, n_mels, frames, 1) or (N, n_mels, frames); the paper's is 96 x 173. First layer: Conv32 3x3
'valid' -> BatchNorm -> ReLU; each conv loop: Conv32 3x3 'valid' -> ELU -> MaxPool 2x2 -> Dropout .5; each FC
loop: Dense -> ELU -> Dropout .6; then Dense to the classes (logits). BatchNorm normalises the 32 channels
(the original normalised the mel axis): counts are the paper's minus 248. Dense layers infer their input size,
so other feature shapes (FSDD's 8 kHz clips) work as long as the conv loops leave at least one pixel.
The layers are fields (`conv`, `dense`, `dropout_layer`), flax's own by default; the trainer fills in its
performance profile's (`helmjax.training.performance`).
"""

import functools
from typing import Sequence

import flax.linen as nn

from helmjax.errors import UserError
from helmjax.models.knobs import Knobs, scaled_width


class AudioNet(Knobs):
    num_classes: int
    conv_loops: int = 3
    fc_units: Sequence[int] = ()
    conv_dropout: float = 0.5
    fc_dropout: float = 0.6

    @nn.compact
    def __call__(self, x, *, train: bool):
        if x.ndim == 3:
            x = x[..., None]
        w = functools.partial(scaled_width, multiplier=self.width)
        # Keras's BatchNormalization defaults (momentum .99, epsilon 1e-3), as in the authors' code.
        x = self.conv(w(32), (3, 3), padding="VALID")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3)(x))
        for _ in range(self.conv_loops):
            x = nn.elu(self.conv(w(32), (3, 3), padding="VALID")(x))
            if min(x.shape[1:3]) < 2:
                raise UserError(f"the input is too small for {self.conv_loops} conv loops (feature map "
                                f"{x.shape[1]}x{x.shape[2]} before pooling); use more mels/frames or a smaller hop")
            x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
            x = self.dropout_layer(self.conv_dropout, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        for units in self.fc_units:
            x = self.dropout_layer(self.fc_dropout, deterministic=not train)(nn.elu(self.dense(w(units))(x)))
        return self.dense(self.num_classes)(x)


ARCHS = {
    "A": functools.partial(AudioNet, conv_loops=3, fc_units=()),
    "B": functools.partial(AudioNet, conv_loops=4, fc_units=(128,)),
    "C": functools.partial(AudioNet, conv_loops=3, fc_units=(64, 128)),
    "D": functools.partial(AudioNet, conv_loops=3, fc_units=(128,)),
    "E": functools.partial(AudioNet, conv_loops=3, fc_units=(128, 128)),
    "F": functools.partial(AudioNet, conv_loops=2, fc_units=(128,)),
}

# The paper's (original code's) counts for 12 classes on 96 x 173 x 1, BatchNorm on the wrong axis included.
PAPER_PARAMS = {"A": 101_412, "B": 170_436, "C": 427_492, "D": 808_356, "E": 824_868, "F": 3_715_460}
# Normalising the 32 channels (4 x 32 = 128 numbers) instead of the 94 mel rows (4 x 94 = 376): -248.
CORRECTED_PARAMS = {arch: count - 248 for arch, count in PAPER_PARAMS.items()}
