"""ILSVRC-2012 (ImageNet-1k) from its folder as distributed: the training set is `train/<wnid>/*.JPEG` (each class's
tar unpacked into a folder named by its WordNet id; classes are the sorted wnids), the 50,000 validation images,
the usual test set, are `val/*.JPEG` with their labels in a file, or `val/<wnid>/*.JPEG` already sorted.

Validation labels (`labels_file`, default: `LOC_val_solution.csv`, else `val_labels.txt`, looked for in the root):
Kaggle's `LOC_val_solution.csv` (header `ImageId,PredictionString`; the prediction string's first token is the
wnid, the boxes after it are ignored) or a text file of `<file name> <wnid>` lines. Images are matched by file
name without its extension. Kaggle's download (`ILSVRC/Data/CLS-LOC/{train,val}` beside the CSV) is found as well.

Images are stored at the resolution ImageNet-style pipelines use: the shorter side resized to `image_size` (256),
then the centre square (`resize.shorter_side_center_crop`); training crops from that. Everything else is the
image-folder loader's (`image_folder`): the listing reads names only, the images are `ImageFiles` decoded on
demand, one check decodes every file once (cached in `cache_dir`), bad files are logged, skipped and counted.
"""

import hashlib
import logging
import os
import pathlib
from typing import Dict, Optional, Union

from helmjax.data import image_folder
from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError

log = logging.getLogger(__name__)

LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt")  # looked for in this order
KAGGLE_DIR = ("ILSVRC", "Data", "CLS-LOC")  # where Kaggle's download keeps train/ and val/
NAME = "ilsvrc2012"
_LAYOUT = ("expected ILSVRC-2012 as distributed: train/<wnid>/*.JPEG (each class tar unpacked into its folder) and "
           "val/*.JPEG with LOC_val_solution.csv or val_labels.txt beside them (or val/<wnid>/*.JPEG)")
_FORMATS = ("Kaggle's LOC_val_solution.csv (header ImageId,PredictionString, the wnid first in each prediction) or "
            "a text file of '<file name> <wnid>' lines")


def _data_root(root: pathlib.Path) -> pathlib.Path:
    """The folder holding train/ and val/: the root itself, or Kaggle's ILSVRC/Data/CLS-LOC under it."""
    for candidate in (root, root.joinpath(*KAGGLE_DIR)):
        if (candidate / "train").is_dir():
            if not (candidate / "val").is_dir():
                raise UserError(f"{candidate} has train/ but no val/ folder; {_LAYOUT}")
            return candidate
    raise UserError(f"{root} has no train/ folder; {_LAYOUT}")


def _labels_path(root: pathlib.Path, data_root: pathlib.Path, labels_file) -> pathlib.Path:
    if labels_file:
        path = pathlib.Path(labels_file).expanduser()
        for candidate in (path, root / path):
            if candidate.is_file():
                return candidate
        raise UserError(f"validation labels file {labels_file} not found (nor in {root}); give {_FORMATS}")
    folders = list(dict.fromkeys((root, data_root)))
    for folder in folders:
        for name in LABEL_FILES:
            if (folder / name).is_file():
                return folder / name
    raise UserError(f"no validation labels for {data_root / 'val'}: looked for {' and '.join(LABEL_FILES)} in "
                    f"{' and '.join(map(str, folders))}; give {_FORMATS} (data.labels_file), or sort val/ into "
                    "val/<wnid>/ folders")


def _stem(name: str) -> str:
    return pathlib.PurePosixPath(name.strip()).stem


def read_val_labels(path: pathlib.Path) -> Dict[str, str]:
    """{image name without extension: wnid} from a LOC_val_solution.csv or a `<file name> <wnid>` text file."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a leading byte-order mark is dropped
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read validation labels {path} ({type(e).__name__}: {e}); give {_FORMATS}") from None
    header = bool(lines) and lines[0].replace(" ", "").lower().startswith("imageid,")
    csv = header or path.suffix.lower() == ".csv"
    labels: Dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (header and number == 1):
            continue
        if csv:
            image, _, prediction = line.partition(",")
            tokens = prediction.split()[:1]
        else:
            image, *tokens = line.split()
        if not image.strip() or len(tokens) != 1:
            raise UserError(f"{path} line {number}: {line.strip()[:80]!r} is not a label line; give {_FORMATS}")
        stem, wnid = _stem(image), tokens[0]
        if labels.setdefault(stem, wnid) != wnid:
            raise UserError(f"{path} line {number}: {image.strip()} is labelled both {labels[stem]} and {wnid}")
    if not labels:
        raise UserError(f"{path} holds no labels; give {_FORMATS}")
    return labels


def _val_split(files, dirs, classes, root: pathlib.Path, data_root: pathlib.Path, labels_file):
    """({wnid: val files}, digest of the labels file or ""): from val/<wnid>/ folders, else the flat val/ and its
    labels file."""
    test = {c: [] for c in classes}
    val_classes = sorted(d[1] for d in dirs if len(d) == 2 and d[0] == "val")
    flat = [f for f in files if f.parts[0] == "val" and len(f.parts) == 2]
    labels_digest = ""
    if val_classes:  # already sorted into class folders: no labels file needed
        unknown = [c for c in val_classes if c not in test]
        if unknown:
            raise UserError(f"{data_root / 'val'} has class folder(s) {', '.join(unknown[:5])} that train/ lacks; "
                            "give both the same wnid folders")
        if flat:
            log.warning("%s: ignoring %d file(s) beside the class folders of val/, e.g. %s", data_root, len(flat),
                        flat[0].name)
        for f in files:
            if f.parts[0] == "val" and len(f.parts) >= 3:
                test[f.parts[1]].append(f)
    else:
        if not flat:
            raise UserError(f"{data_root / 'val'} holds no images; {_LAYOUT}")
        path = _labels_path(root, data_root, labels_file)
        labels = read_val_labels(path)
        labels_digest = hashlib.sha256(path.read_bytes()).hexdigest()
        unlabelled, unknown = [], []
        for f in flat:
            wnid = labels.get(_stem(f.parts[1]))
            if wnid is None:
                unlabelled.append(f.name)
            elif wnid not in test:
                unknown.append(f"{f.name} ({wnid})")
            else:
                test[wnid].append(f)
        if unlabelled:
            raise UserError(f"{len(unlabelled)} image(s) of {data_root / 'val'} have no label in {path}, e.g. "
                            f"{unlabelled[0]}; give the labels file of this validation set ({_FORMATS})")
        if unknown:
            raise UserError(f"{len(unknown)} image(s) of {data_root / 'val'} are labelled with a wnid that train/ "
                            f"has no folder for, e.g. {unknown[0]}; check {path} and train/")
        if len(labels) > len(flat):
            log.warning("%s labels %d images, %s holds %d: testing on those", path, len(labels), data_root / "val",
                        len(flat))
    return test, labels_digest


def load_ilsvrc(root: Union[str, os.PathLike], *, image_size=256, labels_file: Optional[str] = None,
                cache_dir: Optional[Union[str, os.PathLike]] = None, workers: Optional[int] = None) -> ArrayDataset:
    """ILSVRC-2012 -> ArrayDataset: train = train/, test = val/, images decoded on demand at `image_size` x
    `image_size` (shorter side, centre crop), labels int32 in sorted-wnid order. See the module docstring."""
    if not str(root).strip():
        raise UserError(f"data.root is empty: point it at the ILSVRC-2012 folder; {_LAYOUT}")
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"ILSVRC-2012 folder {root} does not exist or is not a folder; {_LAYOUT}")
    size = image_folder.normalise_size(image_size)
    if size is None or size[0] != size[1]:
        raise UserError(f"image_size {image_size!r}: ILSVRC images are stored as S x S (shorter side to S, centre "
                        "crop); give one int, e.g. 256")
    data_root = _data_root(root)
    files, dirs = image_folder.list_directory(data_root, top=("train", "val"))
    classes = sorted(d[1] for d in dirs if len(d) == 2 and d[0] == "train")
    if not classes:
        raise UserError(f"{data_root / 'train'} has no class folders; {_LAYOUT}")
    train = {c: [] for c in classes}
    for f in files:
        if f.parts[0] == "train" and len(f.parts) >= 3:
            train[f.parts[1]].append(f)
    stray = [f.name for f in files if f.parts[0] == "train" and len(f.parts) == 2]
    if stray:
        log.warning("%s: ignoring %d file(s) outside the class folders of train/, e.g. %s", data_root, len(stray),
                    stray[0])
    test, labels_digest = _val_split(files, dirs, classes, root, data_root, labels_file)
    for by_class in (train, test):
        for members in by_class.values():
            members.sort(key=lambda f: image_folder.natural_key(f.parts))
    fingerprint = hashlib.sha256(
        f"{image_folder.source_fingerprint(data_root, files)}\0{labels_digest}".encode()).hexdigest()
    cache_path, key = image_folder.cache_location(cache_dir, NAME, (fingerprint, size, "shorter_side"))
    return image_folder.dataset_from_layout(data_root, {"train": train, "test": test}, name=NAME,
                                            fingerprint=fingerprint, image_size=size, resize="shorter_side",
                                            cache_path=cache_path, key=key, workers=workers,
                                            split_folders={"train": "train/", "test": "val/"})
