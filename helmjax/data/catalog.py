"""Datasets by name: which loader builds each one and what it needs, so configs and `--list` can name them."""

import dataclasses
import importlib
import inspect
from typing import Callable, Optional

from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    module: str
    function: str
    modality: str  # "image" or "audio"
    needs: str  # what the user must have, in words (for --list and error messages)
    loader: Optional[Callable[..., ArrayDataset]] = None  # set for datasets registered from users' code


DATASETS = {
    "camera": DatasetEntry("helmjax.data.camera", "make_camera", "image",
                           "nothing (procedural, generated in-process)"),
    "cifar10_subset": DatasetEntry("helmjax.data.cifar10", "load_subset", "image",
                                   "$HELMJAX_DATA_DIR/cifar10/cifar10_lossless_subset.npz"),
    "cifar10": DatasetEntry("helmjax.data.cifar10", "load", "image",
                            "a prepared tfds cifar10, or $HELMJAX_DATA_DIR/cifar10/cifar10_jpeg75.tar.gz"),
    "image_folder": DatasetEntry("helmjax.data.image_folder", "load_image_folder", "image",
                                 "a folder or tar of class subfolders (data.root)"),
    "ilsvrc": DatasetEntry("helmjax.data.ilsvrc", "load_ilsvrc", "image",
                           "ILSVRC-2012 as distributed (data.root): train/<wnid>/*.JPEG, val/*.JPEG with "
                           "LOC_val_solution.csv or val_labels.txt (or val/<wnid>/*.JPEG)"),
    "tfds_images": DatasetEntry("helmjax.data.tfds_images", "load_tfds_images", "image",
                                "a tfds image set prepared as array_record (data.dataset, data.tfds_data_dir)"),
    "fsdd": DatasetEntry("helmjax.data.fsdd", "load_fsdd", "audio", "$HELMJAX_DATA_DIR/fsdd/recordings/*.wav"),
    "guitar_fx": DatasetEntry("helmjax.data.guitar_fx", "make_guitar_fx", "audio",
                              "nothing (procedural guitar effects, generated in-process)"),
    "idmt": DatasetEntry("helmjax.data.audio_folder", "load_idmt", "audio",
                         "IDMT-SMT-Audio-Effects as distributed (data.root)"),
    "audio_folder": DatasetEntry("helmjax.data.audio_folder", "load_audio_folder", "audio",
                                 "a folder of class subfolders of WAV/FLAC/MP3 files (data.root)"),
}


def register(name: str, loader: Callable[..., ArrayDataset], *, modality: str = "image",
             needs: str = "user-defined") -> DatasetEntry:
    """Adds a dataset from the user's own code; experiments then name it in `data.name`."""
    e = DatasetEntry(loader.__module__, loader.__name__, modality, needs, loader)
    DATASETS[name] = e
    return e


def entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load(name: str, **options) -> ArrayDataset:
    """Builds dataset `name` with `options` (the config's data fields other than `name`)."""
    e = entry(name)
    try:
        loader = e.loader or getattr(importlib.import_module(e.module), e.function)
    except ModuleNotFoundError as missing:
        raise UserError(f"dataset {name!r} needs the Python package {missing.name!r}, which is not installed: "
                        f"pip install -r requirements.txt") from None
    accepted = inspect.signature(loader).parameters
    # An option left None is unset: an experiment may carry a key one of its datasets has and another lacks.
    options = {k: v for k, v in options.items() if v is not None or k in accepted}
    unknown = sorted(k for k in options if k not in accepted)
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise UserError(f"dataset {name!r} takes no option(s) {', '.join(unknown)}; "
                        f"it accepts: {', '.join(accepted) or 'none'}")
    return loader(**options)
