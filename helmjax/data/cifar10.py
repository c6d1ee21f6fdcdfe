"""CIFAR-10 from whichever source the user has: a prepared tfds copy, the 60k JPEG tree, or the lossless subset.

Sources (all give uint8 NHWC RGB images, int32 labels, classes airplane=0 ... truck=9):
- `load_subset`: `$HELMJAX_DATA_DIR/cifar10/cifar10_lossless_subset.npz`, exact original pixels of 5170 train /
  1017 test images. The reference when the compression itself is measured.
- `load_jpeg_tree`: `$HELMJAX_DATA_DIR/cifar10/cifar10_jpeg75.tar.gz`, all 60k images as JPEG-75 files in class
  folders, read by the general image-folder loader (already lossy: fine for training, not a lossless reference).
- `load_tfds`: a prepared tfds `cifar10` read without TensorFlow (array_record via `tfds.data_source`, images
  read on demand);
  `python -m helmjax.data.tfds_cifar10` prepares one from the local files.
`load(source="auto")` picks tfds if prepared, else the JPEG tree; when nothing is there the error says where it
looked and how to get each source.
"""

import dataclasses
import hashlib
import logging
import os
import pathlib
from typing import Tuple

import numpy as np

from helmjax import paths
from helmjax.data.dataset import ArrayDataset
from helmjax.data.items import npz_arrays
from helmjax.data.tfds_images import TfdsItems
from helmjax.digests import key_digest
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
    """The lossless subset (5170 train / 1017 test, exact original pixels), checked for shape and label range; its
    images are read on demand when the file stores them uncompressed (np.savez), else loaded."""
    path = _find(data_dir, SUBSET_FILE)
    if not path.is_file():
        raise _missing("CIFAR-10 lossless subset", path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
            if missing:
                raise UserError(f"{path} lacks the array(s) {', '.join(sorted(missing))}; it is not the CIFAR-10 "
                                "subset file, replace it")
            classes = tuple(str(c) for c in f["classes"]) if "classes" in f.files else CLASSES
        arrays = npz_arrays(path, ("x_train", "y_train", "x_test", "y_test"))  # images read on demand if stored
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


def jpeg_tree_path(data_dir=None) -> pathlib.Path:
    """The 60k JPEG tree archive; a UserError saying where it looked when it is absent."""
    path = _find(data_dir, JPEG_TREE_FILE)
    if not path.is_file():
        raise _missing("CIFAR-10 JPEG tree", path)
    return path


def load_jpeg_tree(data_dir=None, cache_dir=None) -> ArrayDataset:
    """All 60k images (JPEG quality 75) via the image-folder loader (read on demand; its check cached in `cache_dir`).

    Order: class by class (airplane first), and within a class by file number, which follows the canonical
    batches; the interleaving of classes in the original batches is not recorded in the tree.
    """
    from helmjax.data.image_folder import load_image_folder
    path = jpeg_tree_path(data_dir)
    ds = load_image_folder(path, cache_dir=cache_dir)
    if ds.classes != CLASSES:
        raise UserError(f"{path} has class folders {ds.classes}, expected CIFAR-10's {CLASSES}; replace the file")
    check_arrays("train", ds.x_train, ds.y_train, len(CLASSES), path)
    check_arrays("test", ds.x_test, ds.y_test, len(CLASSES), path)
    return dataclasses.replace(ds, name="cifar10_jpeg75")


def resolve_tfds_dir(tfds_data_dir=None) -> pathlib.Path:
    """Where tfds keeps prepared datasets: the argument, else `$TFDS_DATA_DIR`, else ~/tensorflow_datasets."""
    if tfds_data_dir is not None:
        return pathlib.Path(tfds_data_dir).expanduser()
    return pathlib.Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


def _tfds_prepared_on_disk(tfds_dir: pathlib.Path) -> bool:
    """A cheap look for a prepared cifar10 (any version) before paying for `import tensorflow_datasets`."""
    return any((tfds_dir / "cifar10").glob("*/dataset_info.json"))


_PREPARE_HINT = "python -m helmjax.data.tfds_cifar10 --tfds_data_dir=DIR prepares one from the local files"


def _records(source, n: int):
    """All records of a tfds data source, in batches (one call per batch is much faster than one per record)."""
    step = 1024
    for start in range(0, n, step):
        yield from source.__getitems__(list(range(start, min(n, start + step))))


# A split of a prepared tfds cifar10 read on demand: the one tfds reader (`tfds_images.TfdsItems`).
TfdsImages = TfdsItems


def _files_fingerprint(folder: pathlib.Path) -> str:
    """Every file's name, size and mtime under `folder`: changes whenever the prepared copy does."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _split_arrays(builder, split: str, where, tfds_dir) -> Tuple[TfdsItems, np.ndarray]:
    """(images read on demand, labels) of `split`: one pass reads ids and labels, the images left coded."""
    import tensorflow_datasets as tfds
    source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    ids, labels = [], []
    for record in _records(source, len(source)):
        example_id = record["id"]
        ids.append(example_id.decode() if isinstance(example_id, bytes) else str(example_id))
        labels.append(int(np.asarray(record["label"])))
    order = np.argsort(np.asarray(ids), kind="stable")  # tfds stores records hash-shuffled; ids give the canonical order
    digest = key_digest({"tfds": _files_fingerprint(pathlib.Path(builder.data_dir)), "split": split})
    x = TfdsItems("cifar10", str(tfds_dir), split, order, None, _IMAGE_SHAPE, digest)
    y = np.asarray(labels, np.int64)[order]
    check_arrays(split, x, y, len(CLASSES), where)
    return x, y.astype(np.int32)


def load_tfds(data_dir=None, download=False) -> ArrayDataset:
    """tfds cifar10 from the tfds data dir `data_dir` (default `$TFDS_DATA_DIR` or ~/tensorflow_datasets).

    array_record copies are read without TensorFlow; a tfrecord copy only when TensorFlow is importable.
    Downloads only with `download=True` (which needs network and TensorFlow: tfds' builder uses it).
    """
    tfds_dir = resolve_tfds_dir(data_dir)
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("source 'tfds' needs tensorflow-datasets and array_record (pip install tensorflow-datasets "
                        "array_record); or use source 'jpeg'/'subset' with $HELMJAX_DATA_DIR/cifar10/") from None
    builder = _tfds_builder(tfds, tfds_dir)
    if not builder.is_prepared():
        if not download:
            raise UserError(f"no prepared tfds cifar10 in {tfds_dir}; {_PREPARE_HINT} (no TensorFlow, no network), "
                            "or pass download=True (needs network and TensorFlow)")
        _require_tensorflow(f"downloading cifar10 through tfds (into {tfds_dir}) uses TensorFlow; pip install "
                            f"tensorflow, or {_PREPARE_HINT}")
        try:
            builder = _tfds_builder(tfds, tfds_dir, file_format="array_record")  # readable without TF afterwards
            builder.download_and_prepare()
        except Exception as e:  # network and TF failures: name them in one line
            raise UserError(f"tfds could not download and prepare cifar10 into {tfds_dir} "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the network, "
                            f"or {_PREPARE_HINT}") from None
    file_format = builder.info.file_format.value if builder.info.file_format else "tfrecord"
    if file_format == "array_record":
        x_train, y_train = _split_arrays(builder, "train", builder.data_dir, tfds_dir)
        x_test, y_test = _split_arrays(builder, "test", builder.data_dir, tfds_dir)
    elif file_format == "tfrecord":
        _require_tensorflow(f"the tfds cifar10 in {builder.data_dir} is stored as tfrecord, which only TensorFlow "
                            f"reads; pip install tensorflow, or {_PREPARE_HINT} into another DIR")
        x_train, y_train, x_test, y_test = _read_tfrecord(builder)
    else:
        raise UserError(f"the tfds cifar10 in {builder.data_dir} is stored as {file_format}, which helmjax does not "
                        f"read; {_PREPARE_HINT} into another DIR")
    names = tuple(builder.info.features["label"].names)
    if names != CLASSES:
        raise UserError(f"the tfds cifar10 in {builder.data_dir} names classes {names}, expected {CLASSES}; "
                        f"delete it and {_PREPARE_HINT}")
    return ArrayDataset("cifar10_tfds", x_train, y_train, x_test, y_test, CLASSES)


def _tfds_builder(tfds, tfds_dir: pathlib.Path, **kwargs):
    """tfds' cifar10 builder; its failures (unreadable metadata, a format clash) become one UserError line."""
    try:
        return tfds.builder("cifar10", data_dir=str(tfds_dir), **kwargs)
    except Exception as e:
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise UserError(f"tensorflow-datasets cannot open cifar10 in {tfds_dir} ({type(e).__name__}: {first_line}); "
                        f"delete {tfds_dir / 'cifar10'} and {_PREPARE_HINT}") from None


def _require_tensorflow(message: str):
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise UserError(message) from None


def _read_tfrecord(builder):
    """A tfrecord copy through TensorFlow, sorted by id like the array_record path."""
    import tensorflow_datasets as tfds
    out = []
    for split in ("train", "test"):
        batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        order = np.argsort(np.asarray([i.decode() if isinstance(i, bytes) else str(i) for i in batch["id"]]),
                           kind="stable")
        x, y = np.asarray(batch["image"], np.uint8)[order], np.asarray(batch["label"], np.int64)[order]
        check_arrays(split, x, y, len(CLASSES), builder.data_dir)
        out += [x, y.astype(np.int32)]
    return out


def load(source: str = "auto", data_dir=None, tfds_data_dir=None, cache_dir=None) -> ArrayDataset:
    """CIFAR-10 from `source` in {auto, subset, jpeg, tfds}; auto: a prepared tfds copy, else the JPEG tree."""
    if source not in SOURCES:
        raise UserError(f"unknown CIFAR-10 source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "subset":
        return load_subset(data_dir)
    if source == "jpeg":
        return load_jpeg_tree(data_dir, cache_dir)
    if source == "tfds":
        return load_tfds(tfds_data_dir)
    tfds_dir = resolve_tfds_dir(tfds_data_dir)
    if _tfds_prepared_on_disk(tfds_dir):
        try:
            ds = load_tfds(tfds_dir)
            log.info("cifar10: using the prepared tfds copy in %s (%d train / %d test)", tfds_dir,
                     len(ds.x_train), len(ds.x_test))
            return ds
        except UserError as e:  # e.g. a tfrecord copy without TensorFlow: the JPEG tree may still be there
            log.warning("not using the tfds cifar10: %s", e)
    jpeg = _find(data_dir, JPEG_TREE_FILE)
    if jpeg.is_file():
        log.info("cifar10: no prepared tfds copy in %s; using the JPEG tree %s", tfds_dir, jpeg)
        return load_jpeg_tree(data_dir, cache_dir)
    raise UserError(f"no CIFAR-10 found: no prepared tfds cifar10 in {tfds_dir} and no {jpeg}; {_PREPARE_HINT} "
                    f"(then pass tfds_data_dir=DIR), or put cifar10_jpeg75.tar.gz under $HELMJAX_DATA_DIR/cifar10/, "
                    f"or use source='subset' with cifar10_lossless_subset.npz there")
