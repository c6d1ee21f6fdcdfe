"""Free Spoken Digit Dataset (real speech, 8 kHz): 10 digits, official split (file index 0-4 = test).

Read from `$HELMJAX_DATA_DIR/fsdd/recordings/<digit>_<speaker>_<index>.wav`. Clips (0.14-2.3 s) are cropped
or zero-padded at the end to `duration_s` (default 1 s = 8000 samples: nearly all clips fit whole).
"""

import pathlib
import re
from typing import Optional

import numpy as np

from helmjax import paths
from helmjax.data.audio_folder import read_clips
from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError

SAMPLE_RATE = 8000
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def load_fsdd(data_dir=None, duration_s: float = 1.0, sample_rate: Optional[int] = None) -> ArrayDataset:
    """The official split: index 0-4 of each digit and speaker is test (300 clips), the rest train (2700).

    `sample_rate` resamples (e.g. 16000 for a model's feature settings); default the native 8 kHz.
    """
    base = pathlib.Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()
    folder = base / "fsdd" / "recordings"
    if not folder.is_dir():
        raise UserError(f"FSDD not found at {folder}; set $HELMJAX_DATA_DIR (or data_dir) to a folder holding "
                        "fsdd/recordings/*.wav")
    files, digits, test = [], [], []
    for path in sorted(folder.glob("*.wav")):
        match = _NAME.match(path.name)
        if match:
            files.append(path)
            digits.append(int(match.group(1)))
            test.append(int(match.group(3)) <= 4)
    if not files:
        raise UserError(f"no FSDD files named <digit>_<speaker>_<index>.wav in {folder}")
    x, kept, rate, skipped = read_clips(files, sample_rate=sample_rate or SAMPLE_RATE, duration_s=duration_s)
    y = np.asarray(digits, np.int32)[kept]
    is_test = np.asarray(test)[kept]
    return ArrayDataset("fsdd", x[~is_test], y[~is_test], x[is_test], y[is_test],
                        tuple(str(d) for d in range(10)), sample_rate=rate, skipped=skipped)
