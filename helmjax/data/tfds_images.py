"""Any tfds image classification set, read through `tfds.data_source` (array_record, no TensorFlow), its images on
demand: `imagenet2012` (prepared from its manual download), `imagenet_resized/64x64`, `places365_small`, ...

One pass reads every record's label (and its file name, where the set has one, for a canonical order: tfds stores
records hash-shuffled), the images left coded; `TfdsItems` then decodes the rows a reader asks for, at the stored
resolution (`image_size`: shorter side to it, then the centre square; None keeps the set's own size, which must then
be one size).
"""

import hashlib
import pathlib
from typing import Optional, Sequence

import numpy as np

from helmjax.data.dataset import ArrayDataset
from helmjax.data.items import LazyItems
from helmjax.data.resize import shorter_side_center_crop
from helmjax.digests import content_digest, key_digest
from helmjax.errors import UserError

NAME_FEATURES = ("file_name", "filename", "id")  # per-record names that give a canonical order
LABEL_CHUNK = 1024  # records per read in the label pass


def _source(dataset: str, split: str, data_dir: Optional[str], **kwargs):
    import tensorflow_datasets as tfds
    return tfds.data_source(dataset, split=split, data_dir=data_dir, download=False, **kwargs)


def _rgb(image) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


class TfdsItems(LazyItems):
    """Rows `positions` of a tfds split's data source, decoded at the stored resolution. Picklable: each process
    opens its own data source on first read."""

    def __init__(self, dataset: str, data_dir: Optional[str], split: str, positions, image_size: Optional[int],
                 item_shape, digest: str):
        self.dataset, self.data_dir, self.split, self.image_size = dataset, data_dir, split, image_size
        self.positions = np.asarray(positions, np.int64)
        self.shape, self.dtype, self.digest = (len(self.positions), *item_shape), np.dtype(np.uint8), digest
        self._open = None

    def __getstate__(self):
        return dict(self.__dict__, _open=None)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._open is None:
            self._open = _source(self.dataset, self.split, self.data_dir)
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for k, position in enumerate(self.positions[rows]):
            image = _rgb(self._open[int(position)]["image"])
            if self.image_size:
                image = shorter_side_center_crop(image, self.image_size)
            if image.shape != self.shape[1:]:
                raise UserError(f"{self.dataset} {self.split} record {position} is {image.shape}, not "
                                f"{self.shape[1:]}: its images differ in size; set data.image_size (the stored "
                                "resolution, e.g. 256)")
            out[k] = image
        return out

    def take(self, rows: Sequence[int]) -> "TfdsItems":
        rows = np.asarray(rows, np.int64)
        return TfdsItems(self.dataset, self.data_dir, self.split, self.positions[rows], self.image_size,
                         self.shape[1:], key_digest({"of": self.digest, "rows": content_digest(rows)}))


def _labels_and_order(source) -> tuple:
    """(labels, positions in canonical order) of every record: names sort the records where the set has them."""
    n, labels, names = len(source), [], []
    for start in range(0, n, LABEL_CHUNK):
        keys = list(range(start, min(n, start + LABEL_CHUNK)))
        try:
            records = source.__getitems__(keys)
        except (TypeError, AttributeError):  # tfds' mocked sources read one record at a time
            records = [source[k] for k in keys]
        for record in records:
            labels.append(int(np.asarray(record["label"])))
            name = next((record[f] for f in NAME_FEATURES if f in record), None)
            names.append(None if name is None else (name.decode() if isinstance(name, bytes) else str(name)))
    labels = np.asarray(labels, np.int32)
    if n and all(name is not None for name in names):
        order = np.argsort(np.asarray(names), kind="stable")
        return labels[order], order
    return labels, np.arange(n)


def load_tfds_images(dataset: str, *, tfds_data_dir: Optional[str] = None, image_size: Optional[int] = None,
                     train_split: str = "train", test_split: str = "validation") -> ArrayDataset:
    """The tfds set `dataset` (prepared as array_record in `tfds_data_dir`, default `$TFDS_DATA_DIR` or
    ~/tensorflow_datasets): labels read now, images read on demand at the stored resolution `image_size`."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("tfds data sets need tensorflow-datasets and array_record: pip install -r requirements.txt")
    data_dir = None if tfds_data_dir is None else str(pathlib.Path(tfds_data_dir).expanduser())
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
        sources = {split: _source(dataset, split, data_dir, decoders={"image": tfds.decode.SkipDecoding()})
                   for split in (train_split, test_split)}
    except Exception as e:  # not prepared, tfrecord, unknown name...: one line
        first = str(e).splitlines()[0] if str(e) else ""
        raise UserError(f"tfds cannot read {dataset} splits {train_split}/{test_split} in {data_dir or 'its default dir'} "
                        f"({type(e).__name__}: {first}); prepare it as array_record first (e.g. `tfds build "
                        f"{dataset} --file_format=array_record`, imagenet2012 with --manual_dir holding the ILSVRC "
                        "tars), and set data.tfds_data_dir") from None
    classes = tuple(builder.info.features["label"].names)
    version = str(builder.info.version)
    where = pathlib.Path(builder.data_dir)
    stamp = hashlib.sha256("".join(f"{p.name}{p.stat().st_size}{p.stat().st_mtime_ns}"
                                   for p in sorted(where.glob("*")) if p.is_file()).encode()).hexdigest() \
        if where.is_dir() else "absent"
    splits = {}
    for split, source in sources.items():
        labels, order = _labels_and_order(source)
        if image_size:
            shape = (int(image_size), int(image_size), 3)
        elif len(order):
            shape = _rgb(_source(dataset, split, data_dir)[int(order[0])]["image"]).shape
        else:
            shape = (1, 1, 3)
        digest = key_digest({"tfds": dataset, "version": version, "files": stamp, "split": split,
                             "image_size": image_size})
        splits[split] = (TfdsItems(dataset, data_dir, split, order, image_size, shape, digest), labels)
    (x_train, y_train), (x_test, y_test) = splits[train_split], splits[test_split]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{dataset}: {train_split} images are {x_train.shape[1:]}, {test_split} {x_test.shape[1:]}; "
                        "set data.image_size (the stored resolution) to store both at one size")
    return ArrayDataset(dataset.replace("/", "_"), x_train, y_train, x_test, y_test, classes)
