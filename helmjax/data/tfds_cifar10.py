"""Prepares a tensorflow-datasets `cifar10` from the local files, with no TensorFlow and no network.

tfds' own cifar10 builder downloads the archive and needs TensorFlow to unpack and encode it. `LocalCifar10` is
that builder (same name, version 3.0.2 and features) with split generators that yield PNG bytes made from the
local files instead, written as array_record, which `tfds.data_source` (and so `cifar10.load_tfds`) reads
without TensorFlow. Sources:
- `subset` (default): the lossless subset; examples keep their genuine tfds ids (`train_<index in the 50k>`), so
  they match the same examples of a genuinely downloaded tfds cifar10.
- `jpeg`: all 60k of the JPEG-75 tree (decoded pixels stored as PNG); ids number examples class by class in
  file order, since the tree does not record positions in the original batches.

    python -m helmjax.data.tfds_cifar10 --tfds_data_dir=DIR [--source=subset|jpeg] [--data_dir=SHARED]
"""

import io
import json
import logging
import pathlib
import time
from typing import Iterator, Optional, Tuple

import numpy as np

from helmjax.data import cifar10
from helmjax.errors import UserError

log = logging.getLogger(__name__)

SOURCES = ("subset", "jpeg")
# The subset holds the first n images of each of data_batch_1..5 (10000 each) and of test_batch.
_SUBSET_TRAIN_PER_BATCH = (1102, 1017, 1017, 1017, 1017)
_BATCH_SIZE = 10000
_DESCRIPTION_MARK = "Prepared by helmjax from local files, source: "


def subset_ids(n_train: int, n_test: int) -> Tuple[list, list]:
    """Genuine tfds ids of the subset's examples, in the subset's order."""
    assert n_train == sum(_SUBSET_TRAIN_PER_BATCH), n_train
    train = [f"train_{b * _BATCH_SIZE + i:05d}" for b, n in enumerate(_SUBSET_TRAIN_PER_BATCH) for i in range(n)]
    return train, [f"test_{i:05d}" for i in range(n_test)]


def _png(image: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def _examples(x: np.ndarray, y: np.ndarray, ids) -> Iterator[Tuple[int, dict]]:
    for image, label, example_id in zip(x, y, ids):
        # The key sets tfds' shuffled storage order; the number in the id is unique within a split.
        yield int(example_id.split("_")[1]), {"id": example_id, "image": _png(image), "label": int(label)}


def _builder_class():
    """Defined on first use so that importing this module does not import tensorflow_datasets (slow)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import cifar

    class LocalCifar10(cifar.Cifar10, skip_registration=True):
        """tfds cifar10 whose examples come from helmjax's local CIFAR-10 files."""
        name = "cifar10"

        def __init__(self, *, source: str = "subset", local_data_dir=None, **kwargs):
            self._source, self._local_data_dir = source, local_data_dir
            super().__init__(**kwargs)

        def _info(self):
            stock = super()._info()  # same features; the description records the local source
            return tfds.core.DatasetInfo(builder=self, description=f"{stock.description} {_DESCRIPTION_MARK}"
                                         f"{self._source}.", features=stock.features,
                                         supervised_keys=stock.supervised_keys, homepage=stock.homepage,
                                         citation=stock.citation)

        def _split_generators(self, dl_manager):
            del dl_manager  # nothing to download
            self.info.features["label"].names = list(cifar10.CLASSES)
            if self._source == "subset":
                ds = cifar10.load_subset(self._local_data_dir)
                train_ids, test_ids = subset_ids(len(ds.x_train), len(ds.x_test))
            else:
                ds = cifar10.load_jpeg_tree(self._local_data_dir)
                train_ids = [f"train_{i:05d}" for i in range(len(ds.x_train))]
                test_ids = [f"test_{i:05d}" for i in range(len(ds.x_test))]
            return {tfds.Split.TRAIN: _examples(ds.x_train, ds.y_train, train_ids),
                    tfds.Split.TEST: _examples(ds.x_test, ds.y_test, test_ids)}

    return LocalCifar10


def prepared_source(dataset_folder) -> Optional[str]:
    """Which local source the cifar10 prepared in `dataset_folder` came from; None for one tfds downloaded.

    Read from the written dataset_info.json: a builder's `info.description` comes from code, not from disk.
    """
    try:
        description = json.loads((pathlib.Path(dataset_folder) / "dataset_info.json").read_text()).get("description", "")
    except (OSError, ValueError):
        return None
    if _DESCRIPTION_MARK in description:
        return description.split(_DESCRIPTION_MARK)[1].rstrip(".").strip()
    return None


def prepare(tfds_data_dir, source: str = "subset", data_dir=None) -> pathlib.Path:
    """Writes tfds cifar10 (array_record) into `tfds_data_dir` from local files; returns the dataset's folder.

    `data_dir` is where the local CIFAR-10 files are (default `$HELMJAX_DATA_DIR`). Nothing is downloaded.
    """
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("preparing a tfds cifar10 needs tensorflow-datasets and array_record: "
                        "pip install tensorflow-datasets array_record") from None
    tfds_data_dir = pathlib.Path(tfds_data_dir).expanduser()
    # Check the local files first: a missing file then gets helmjax's message, not one from inside tfds.
    (cifar10.load_subset if source == "subset" else cifar10.jpeg_tree_path)(data_dir)
    builder = _builder_class()(source=source, local_data_dir=data_dir, data_dir=str(tfds_data_dir),
                               file_format="array_record")
    folder = pathlib.Path(builder.data_dir)
    if builder.is_prepared():
        existing = prepared_source(folder)
        if existing == source and builder.info.file_format.value == "array_record":
            log.info("tfds cifar10 from %s is already prepared at %s", source, folder)
            return folder
        raise UserError(f"{folder} already holds a tfds cifar10 (from {existing or 'a tfds download'}, "
                        f"{builder.info.file_format.value}); delete that folder or pick another --tfds_data_dir")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return folder


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tfds_data_dir", required=True, help="tfds data dir to write cifar10/3.0.2/ into")
    parser.add_argument("--source", default="subset", choices=SOURCES)
    parser.add_argument("--data_dir", default=None, help="folder holding cifar10/ (default $HELMJAX_DATA_DIR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    try:
        folder = prepare(args.tfds_data_dir, args.source, args.data_dir)
    except UserError as e:
        print(f"error: {e}")
        raise SystemExit(2)
    print(f"tfds cifar10 ({args.source}) ready at {folder} ({time.perf_counter() - t0:.1f} s); read it with "
          f"helmjax.data.cifar10.load_tfds({str(args.tfds_data_dir)!r}) or data.source=tfds")


if __name__ == "__main__":
    main()
