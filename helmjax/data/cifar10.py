"""CIFAR-10 from whichever source the user has: a prepared tfds copy, the 60k JPEG tree, or the lossless subset.

Sources (all give uint8 NHWC RGB images, int32 labels, classes airplane=0 ... truck=9):
- `load_subset`: `$HELMJAX_DATA_DIR/cifar10/cifar10_lossless_subset.npz`, exact original pixels of 5170 train /
  1017 test images. The reference when the compression itself is measured.
- `load_jpeg_tree`: `$HELMJAX_DATA_DIR/cifar10/cifar10_jpeg75.tar.gz`, all 60k images as JPEG-75 files in class
  folders, read by the general image-folder loader (already lossy: fine for training, not a lossless reference).
- `load_tfds`: a prepared tfds `cifar10` read without TensorFlow (array_record via `tfds.data_source`);
  `python -m helmjax.data.tfds_cifar10` prepares one from the local files.
`load(source="auto")` picks tfds if prepared, else the JPEG tree; when nothing is there the error says where it
looked and how to get each source.
"""

import logging
import pathlib
from typing import Optional

import numpy as np

from helmjax import paths
from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError

log = logging.getLogger(__name__)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SUBSET_FILE = "cifar10/cifar10_lossless_subset.npz"
JPEG_TREE_FILE = "cifar10/cifar10_jpeg75.tar.gz"
SOURCES = ("auto", "subset", "jpeg", "tfds")
_IMAGE_SHAPE = (32, 32, 3)


def _find(data_dir, relative: str) -> pathlib.Path:
    """`data_dir/relative`; `data_dir` may also be the `cifar10/` folder itself. May not exist."""
    base = pathlib.Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()
    direct = base / pathlib.Path(relative).name
    return direct if direct.is_file() and not (base / relative).is_file() else base / relative


def _missing(what: str, path: pathlib.Path) -> UserError:
    return UserError(f"{what} not found: looked for {path}; set $HELMJAX_DATA_DIR (or data_dir) to the folder "
                     f"holding {pathlib.Path(SUBSET_FILE).parent}/ (the project's shared data, see its README), "
                     f"or use another source: python -m helmjax.data.tfds_cifar10 prepares a tfds copy")


def check_arrays(name: str, x: np.ndarray, y: np.ndarray, num_classes: int, where) -> None:
    """One-line UserError when images are not uint8 (N, 32, 32, 3) or labels fall outside 0..num_classes-1."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != _IMAGE_SHAPE:
        raise UserError(f"{where}: {name} images are {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3); "
                        "the file is not a CIFAR-10 array file, replace it")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{where}: {name} labels are {y.dtype} {y.shape}, expected {len(x)} integers; replace the file")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise UserError(f"{where}: {int(bad.sum())} {name} labels outside 0..{num_classes - 1} "
                        f"(first: {int(y[bad][0])} at index {int(np.flatnonzero(bad)[0])}); the file is corrupt, replace it")


def load_subset(data_dir=None) -> ArrayDataset:
    """The lossless subset (5170 train / 1017 test, exact original pixels), checked for shape and label range."""
    path = _find(data_dir, SUBSET_FILE)
    if not path.is_file():
        raise _missing("CIFAR-10 lossless subset", path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
            if missing:
                raise UserError(f"{path} lacks the array(s) {', '.join(sorted(missing))}; it is not the CIFAR-10 "
                                "subset file, replace it")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            classes = tuple(str(c) for c in f["classes"]) if "classes" in f.files else CLASSES
    except UserError:
        raise
    except Exception as e:  # zipfile/numpy raise many types for a damaged file
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e}); the file is damaged, copy it again") from None
    if classes != CLASSES:
        raise UserError(f"{path} names classes {classes}, expected CIFAR-10's {CLASSES}; replace the file")
    check_arrays("train", arrays["x_train"], arrays["y_train"], len(CLASSES), path)
    check_arrays("test", arrays["x_test"], arrays["y_test"], len(CLASSES), path)
    return ArrayDataset("cifar10_subset", arrays["x_train"], arrays["y_train"].astype(np.int32),
                        arrays["x_test"], arrays["y_test"].astype(np.int32), CLASSES)
