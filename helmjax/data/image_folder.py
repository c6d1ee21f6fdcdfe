"""Images from a folder of class subfolders (or a .tar/.tar.gz of one): the loader users point at their own data.

Layouts, under a directory or inside an archive (an archive's single wrapping folder is looked through):
- `train/<class>/*` and `test/<class>/*`: the splits as given (`test_fraction`/`seed` unused); both splits must
  name the same classes.
- `<class>/*`: one pool, split per class with `test_fraction` (deterministic from `seed`, stratified).
Labels are the class folder names sorted; files are ordered by natural sort of their path inside the class folder
(`2.png` before `10.png`), nested folders included. Hidden files and folders (`.*`, `__MACOSX`) are ignored.

Any format Pillow reads. Every image becomes 8-bit RGB: grayscale is repeated, alpha is dropped (the stored colour
is kept), palettes are expanded, 16-bit samples are rounded to v/257, EXIF orientation is applied. Sizes: when
`image_size` is None all images must share one size (the first mismatch is an error saying to pass image_size);
with `image_size=(H, W)` (or an int for square) images of another size are resized to it with Pillow's bicubic
filter, aspect ratio not preserved (nothing cropped); images already that size keep their exact pixels. With
`resize="shorter_side"` and an int `image_size` S, each image's shorter side goes to S and the centre SxS is kept
(`resize.shorter_side_center_crop`: the stored resolution of ImageNet-style sets); an SxS image keeps its pixels.

Nothing is held decoded: listing reads names (and a tar's member offsets) only, and the images are `ImageFiles`,
decoded when read (a level store's build reads each one once more). A .tar.gz is unpacked once into a plain tar
(in `cache_dir`, else a temporary folder) so members are read by offset.

Bad files (zero-byte, truncated, corrupt, not an image) are found by one check that decodes every file and keeps only
its verdict and size (parallel over the local cores for big sets): logged with the reason, skipped and counted in
`ArrayDataset.skipped`; the load goes on. A class folder with no readable image in any split is an error (dropping
it would shift every later label); a class missing from one split only is a warning. The check runs before the
split, since the `<class>/*` split is stratified over readable images.
With `cache_dir`, the verdicts are cached there (a small JSON, atomic write), so a second load decodes nothing; a
damaged cache file is detected and rebuilt.
"""

import atexit
import concurrent.futures
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import multiprocessing
import os
import pathlib
import re
import shutil
import tarfile
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from helmjax import atomic_io
from helmjax.data.audio_folder import stratified_split
from helmjax.data.dataset import ArrayDataset
from helmjax.data.items import LazyItems
from helmjax.data.resize import shorter_side_center_crop
from helmjax.digests import key_digest
from helmjax.errors import UserError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
SPLITS = ("train", "test")
RESIZES = ("stretch", "shorter_side")  # how `image_size` is reached: both sides to it, or shorter side + centre crop
_CACHE_VERSION = 2  # bump when decoding rules change, so old caches are not reused
_CHECK_CHUNK = 256  # files per task of the parallel check
_CHECK_IN_PROCESS = 2048  # fewer files than this are checked here (starting worker processes costs more)
_SHOW_BAD = 20  # bad files named in the summary warning (each one is also logged on its own)


class BadImage(ValueError):
    """A file that cannot become an image; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class _OnDisk:
    """Reads a file of a folder (picklable, so worker processes read it)."""
    path: str

    def __call__(self) -> bytes:
        return pathlib.Path(self.path).read_bytes()


@dataclasses.dataclass(frozen=True)
class _InTar:
    """Reads a member of an uncompressed tar by its offset (picklable)."""
    tar: str
    offset: int
    size: int

    def __call__(self) -> bytes:
        with open(self.tar, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.tar} ends before the member at byte {self.offset} (changed since it was listed)")
        return data


@dataclasses.dataclass(frozen=True)
class _File:
    parts: Tuple[str, ...]  # path inside the root, split into components
    read: Callable[[], bytes]  # _OnDisk or _InTar

    @property
    def name(self) -> str:
        return "/".join(self.parts)


def to_rgb8(img: Image.Image) -> Image.Image:
    """Any Pillow image -> 8-bit RGB by the rules in the module docstring."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.int64)
        if mode == "I" and a.size and 0 <= a.min() and a.max() <= 255:
            a8 = a.astype(np.uint8)  # 32-bit container holding 8-bit values
        else:
            a8 = ((np.clip(a, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
        return Image.fromarray(a8, "L").convert("RGB")
    if mode == "F":
        a = np.nan_to_num(np.asarray(img, np.float64))
        if a.size and a.max() <= 1.0:
            a = a * 255.0  # float images in [0, 1]
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "RGB":
        return img
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # through RGBA: some alpha modes (La) have no direct path to RGB
    return img.convert("RGB")


def _square_side(image_size) -> int:
    """S of an int S or an (S, S) size: what `resize="shorter_side"` crops to."""
    size = normalise_size(image_size)
    if size is None or size[0] != size[1]:
        raise UserError(f'resize="shorter_side" needs a square image_size: one positive int S (the stored SxS '
                        f"resolution, e.g. 256); got {image_size!r}")
    return size[0]


def _check_resize(resize: str, image_size):
    if resize not in RESIZES:
        raise UserError(f"resize={resize!r}; use one of {', '.join(RESIZES)}")
    if resize == "shorter_side":
        _square_side(image_size)


def decode_image(data: bytes, image_size: Optional[Tuple[int, int]] = None, resize: str = "stretch") -> np.ndarray:
    """Encoded bytes -> uint8 (H, W, 3); with `image_size` ((H, W), or an int for square), resized to it by `resize`
    ("stretch": both sides to it; "shorter_side": shorter side to S, then the centre SxS). Raises BadImage with the
    reason."""
    _check_resize(resize, image_size)  # before the try: a bad option is the caller's error, not the file's
    image_size = normalise_size(image_size)
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes now, so truncation and corruption surface here
            img = ImageOps.exif_transpose(img)
            img = to_rgb8(img)
            if resize == "shorter_side":
                out = np.ascontiguousarray(shorter_side_center_crop(np.asarray(img, np.uint8),
                                                                    _square_side(image_size)))
            else:
                if image_size is not None and img.size != (image_size[1], image_size[0]):
                    img = img.resize((image_size[1], image_size[0]), Image.Resampling.BICUBIC)
                out = np.asarray(img, np.uint8)
    except Image.UnidentifiedImageError:
        raise BadImage("not an image format Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise BadImage(f"too many pixels ({e})") from None
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, EOFError... for bad data
        raise BadImage(f"corrupt or truncated ({type(e).__name__}: {e})") from None
    if out.ndim != 3 or out.shape[2] != 3 or 0 in out.shape:
        raise BadImage(f"decoded to an unusable shape {out.shape}")
    return out


def natural_key(parts: Sequence[str]):
    """Sort key: digit runs compare as numbers, so 2.png < 10.png."""
    return [tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", p)) for p in parts]


def _ignored(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def is_archive(path: pathlib.Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _dataset_name(root: pathlib.Path) -> str:
    name = root.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def list_directory(root: pathlib.Path, top: Optional[Sequence[str]] = None):
    """(files, folders) under `root`, paths as parts relative to it, nothing read; `top`: walk only these top-level
    folders (files directly in `root` then left out)."""
    files, dirs = [], set()
    for folder, subdirs, names in os.walk(root):
        rel = pathlib.Path(folder).relative_to(root).parts
        subdirs[:] = sorted(d for d in subdirs if not _ignored((d,)) and (top is None or rel or d in top))
        dirs.update(rel + (d,) for d in subdirs)
        if top is not None and not rel:
            continue
        for n in names:
            p = pathlib.Path(folder) / n
            if not _ignored((n,)) and p.is_file():
                files.append(_File(rel + (n,), _OnDisk(str(p))))
    return files, dirs


_SPOOL_DIRS: List[str] = []


@atexit.register
def _remove_spools():
    for folder in _SPOOL_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


def _plain_tar(root: pathlib.Path, fingerprint: str, cache_dir: Optional[pathlib.Path]) -> pathlib.Path:
    """`root` itself when it is an uncompressed tar, else its gzip-unpacked copy (once, streamed: never in memory)
    in `cache_dir` (kept, keyed by the archive's bytes) or a temporary folder removed at exit."""
    with open(root, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return root
    if cache_dir is None:
        _SPOOL_DIRS.append(tempfile.mkdtemp(prefix="helmjax-tar-"))
        folder = pathlib.Path(_SPOOL_DIRS[-1])
    else:
        folder = pathlib.Path(cache_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_dataset_name(root)}-{fingerprint[:16]}.tar"
    if path.exists():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(root, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, path)
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read archive {root} ({type(e).__name__}: {e}); it is damaged or not a tar, "
                        "re-create it or point data.root at an unpacked folder") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _list_archive(root: pathlib.Path, tar_path: pathlib.Path):
    """The members of `tar_path` (`root` unpacked when compressed) with their offsets; no file is read."""
    files, dirs, unsafe = [], set(), []
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for member in tar:
                parts = tuple(p for p in pathlib.PurePosixPath(member.name).parts if p not in (".", "/"))
                if not parts or _ignored(parts):
                    continue
                if ".." in parts or pathlib.PurePosixPath(member.name).is_absolute():
                    unsafe.append(member.name)
                    continue
                if member.isdir():
                    dirs.add(parts)
                elif member.isfile():
                    if member.issparse():
                        raise tarfile.TarError(f"member {member.name} is a sparse file; re-create the archive")
                    files.append(_File(parts, _InTar(str(tar_path), member.offset_data, member.size)))
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read archive {root} ({type(e).__name__}: {e}); it is damaged or not a tar, "
                        "re-create it or point data.root at an unpacked folder") from None
    if unsafe:
        log.warning("ignored %d archive member(s) with absolute or '..' paths, e.g. %s", len(unsafe), unsafe[0])
    for f in files:  # folders named only through their files' paths
        dirs.update(f.parts[:i] for i in range(1, len(f.parts)))
    # Look through a single wrapping folder (archives are often made of `mydata/...`).
    while files and len({f.parts[0] for f in files}) == 1 and all(len(f.parts) >= 3 for f in files) \
            and files[0].parts[0] not in SPLITS and not any(len(d) == 1 and d != files[0].parts[:1] for d in dirs):
        files = [_File(f.parts[1:], f.read) for f in files]
        dirs = {d[1:] for d in dirs if len(d) > 1}
    return files, dirs


def source_fingerprint(root: pathlib.Path, files: List[_File]) -> str:
    """Changes whenever the input changes: archive bytes, or every file's path, size and mtime."""
    h = hashlib.sha256()
    if root.is_file():
        with open(root, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    else:
        for f in sorted(files, key=lambda f: f.parts):
            st = (root.joinpath(*f.parts)).stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def normalise_size(image_size) -> Optional[Tuple[int, int]]:
    if image_size is None:
        return None
    size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise UserError(f"image_size {image_size!r} must be a positive int or (height, width)")
    return size


def _layout(files: List[_File], dirs, root) -> Dict[Optional[str], Dict[str, List[_File]]]:
    """{split or None: {class: files}}; split None for the `<class>/*` layout. Every class folder appears, empty or not."""
    top = {d[0] for d in dirs if len(d) >= 1}
    odd_case = sorted(t for t in top if t.lower() in SPLITS and t not in SPLITS)
    if odd_case:  # else `Train/` and `Test/` would silently become two classes
        raise UserError(f"{root} has folder(s) {', '.join(odd_case)}; name the split folders train/ and test/ "
                        "(lowercase), or use only <class>/ folders")
    if top & set(SPLITS):
        missing = [s for s in SPLITS if s not in top]
        if missing:
            raise UserError(f"{root} has a {'/'.join(sorted(top & set(SPLITS)))}/ folder but no {missing[0]}/ folder; "
                            "give both train/<class>/ and test/<class>/, or only <class>/ folders to split automatically")
        extra = sorted(top - set(SPLITS))
        if extra:
            log.warning("%s: ignoring top-level folder(s) %s beside train/ and test/", root, ", ".join(extra))
        layout = {s: {d[1]: [] for d in dirs if len(d) >= 2 and d[0] == s} for s in SPLITS}
        stray = [f.name for f in files if len(f.parts) == 2 and f.parts[0] in SPLITS]
        for f in files:
            if len(f.parts) >= 3 and f.parts[0] in SPLITS:
                layout[f.parts[0]][f.parts[1]].append(f)
    else:
        layout = {None: {d[0]: [] for d in dirs if len(d) >= 1}}
        stray = [f.name for f in files if len(f.parts) == 1]
        for f in files:
            if len(f.parts) >= 2:
                layout[None][f.parts[0]].append(f)
    if stray:
        log.warning("%s: ignoring %d file(s) outside class folders, e.g. %s", root, len(stray), stray[0])
    if "train" in layout and set(layout["train"]) != set(layout["test"]):
        only_train = sorted(set(layout["train"]) - set(layout["test"]))
        only_test = sorted(set(layout["test"]) - set(layout["train"]))
        raise UserError(f"{root}: train/ and test/ name different classes (only in train: {only_train or 'none'}; "
                        f"only in test: {only_test or 'none'}); give both splits the same class folders")
    for by_class in layout.values():
        for members in by_class.values():
            members.sort(key=lambda f: natural_key(f.parts))
    return layout


class ImageFiles(LazyItems):
    """Image files decoded when read (by `decode_image`'s rules), uint8 (N, H, W, 3). Picklable: a worker
    process decodes its own rows."""

    def __init__(self, files: Sequence[_File], image_size: Optional[Tuple[int, int]], item_shape: Tuple[int, ...],
                 digest: str, resize: str = "stretch"):
        self.files, self.image_size, self.resize = list(files), image_size, resize
        self.shape, self.dtype, self.digest = (len(self.files), *item_shape), np.dtype(np.uint8), digest

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for k, r in enumerate(rows):
            f = self.files[r]
            try:
                out[k] = decode_image(f.read(), self.image_size, self.resize)
            except (BadImage, OSError, ValueError) as e:
                raise UserError(f"{f.name} no longer decodes to a {'x'.join(map(str, self.shape[1:]))} image "
                                f"({e}): the data changed after it was listed; load it again") from None
        return out

    def take(self, rows: Sequence[int]) -> "ImageFiles":
        rows = np.asarray(rows, np.int64)
        return ImageFiles([self.files[r] for r in rows], self.image_size, self.shape[1:],
                          key_digest({"of": self.digest, "rows": hashlib.sha256(rows.tobytes()).hexdigest()}),
                          self.resize)


def _check(files: Sequence[_File], image_size, resize: str = "stretch") -> list:
    """(reason or None, decoded shape or None) of each file: the file decoded and dropped."""
    out = []
    for f in files:
        try:
            out.append((None, decode_image(f.read(), image_size, resize).shape))
        except (BadImage, OSError) as e:
            out.append((str(e), None))
    return out


def _check_all(files: List[_File], image_size, workers: Optional[int] = None, resize: str = "stretch") -> list:
    """`_check` of every file, over `workers` processes (default the local cores) for big sets."""
    workers = max(1, int(workers or os.cpu_count() or 1))
    if workers == 1 or len(files) < _CHECK_IN_PROCESS:
        return _check(files, image_size, resize)
    chunks = [files[a:a + _CHECK_CHUNK] for a in range(0, len(files), _CHECK_CHUNK)]
    # Spawned, not forked: safe beside JAX's threads (as the level store's builders).
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [v for part in pool.map(_check, chunks, [image_size] * len(chunks), [resize] * len(chunks))
                for v in part]


def _verdicts(ordered: List[_File], image_size, root, cache_path, key, workers,
              resize: str = "stretch") -> Tuple[list, Tuple[int, ...]]:
    """([reason or None] of each file, the images' shape): cached, else checked; mixed sizes without image_size
    stop at the first mismatch, naming it."""
    if cache_path is not None and cache_path.is_file():
        cached = _read_cache(cache_path, key, len(ordered))
        if cached is not None:
            log.info("loaded the check of %s from cache %s", root, cache_path)
            return cached
    checked = _check_all(ordered, image_size, workers, resize)
    first = None
    for f, (reason, shape) in zip(ordered, checked):
        if reason is not None:
            log.warning("skipping %s in %s: %s", f.name, root, reason)
        elif first is None:
            first = (f.name, shape)
        elif shape != first[1]:
            raise UserError(f"{root}: images differ in size ({first[0]} is {first[1][0]}x{first[1][1]}, "
                            f"{f.name} is {shape[0]}x{shape[1]}); pass image_size=(height, width) "
                            "(data.image_size) to resize them all to one size")
    verdicts = [reason for reason, _ in checked]
    shape = tuple(first[1]) if first else (1, 1, 3)
    if cache_path is not None:
        _write_cache(cache_path, key, verdicts, shape)
    return verdicts, shape


def cache_location(cache_dir, label: str, parts: tuple) -> Tuple[Optional[pathlib.Path], Optional[str]]:
    """(file, key) of the cached check of a set identified by `parts` (its fingerprint and whatever changes the
    verdicts or their order), or (None, None) without `cache_dir`."""
    if cache_dir is None:
        return None, None
    key = hashlib.sha256(repr((_CACHE_VERSION, *parts)).encode()).hexdigest()
    return pathlib.Path(cache_dir).expanduser() / f"{label}-{key[:16]}.json", key


def dataset_from_layout(root: pathlib.Path, layout: Dict[Optional[str], Dict[str, List[_File]]], *, name: str,
                        fingerprint: str, image_size=None, resize: str = "stretch", test_fraction: float = 0.2,
                        seed: int = 0, cache_path=None, key=None, workers=None,
                        split_folders: Optional[Dict[str, str]] = None) -> ArrayDataset:
    """The data set of `layout` ({"train"/"test": {class: files}}, or {None: {class: files}} to split per class
    with `test_fraction`): the check of every file (or its cache), bad files skipped, labels from the sorted
    classes, `ImageFiles` read on demand. `split_folders` names each split's folder in messages (default its key)."""
    split_folders = split_folders or {}
    classes = sorted(set().union(*(by_class.keys() for by_class in layout.values())))
    if not classes:
        raise UserError(f"no class folders in {root}; lay it out as <class>/<image> or train/<class>/<image> "
                        "and test/<class>/<image>")
    no_files = [c for c in classes if not any(by_class.get(c) for by_class in layout.values())]
    if no_files:  # before decoding anything: this is cheap to find and fatal
        raise UserError(f"{root}: class folder(s) {', '.join(no_files)} are empty; add images or remove the folder "
                        "(labels come from the sorted class folders, so an empty class cannot be dropped silently)")
    ordered = [(split, label, f) for split, by_class in layout.items() for label, name in enumerate(classes)
               for f in by_class[name]]
    verdicts, shape = _verdicts([f for _, _, f in ordered], image_size, root, cache_path, key, workers, resize)
    bad = [(f.name, reason) for (_, _, f), reason in zip(ordered, verdicts) if reason is not None]
    if bad:
        shown = "; ".join(f"{n}: {r}" for n, r in bad[:_SHOW_BAD])
        more = f"; and {len(bad) - _SHOW_BAD} more" if len(bad) > _SHOW_BAD else ""
        log.warning("skipped %d unreadable file(s) in %s: %s%s", len(bad), root, shown, more)
    kept = {split: [(label, f) for (s, label, f), reason in zip(ordered, verdicts) if s == split and reason is None]
            for split in layout}
    labels = {split: np.asarray([label for label, _ in pairs], np.int32) for split, pairs in kept.items()}
    counts = {s: np.bincount(y, minlength=len(classes)) for s, y in labels.items()}
    total = sum(counts.values())
    empty = [c for c, n in zip(classes, total) if n == 0]
    if empty:
        raise UserError(f"{root}: class folder(s) {', '.join(empty)} hold no readable image; add images or remove the "
                        "folder (labels come from the sorted class folders, so an empty class cannot be dropped silently)")
    if len(classes) < 2:
        raise UserError(f"{root} has one class folder ({classes[0]}); a classifier needs at least two")
    # "stretch" keys as before the option existed, so existing caches and level stores stay valid.
    digest = key_digest({"source": fingerprint, "image_size": image_size, "version": _CACHE_VERSION,
                         **({} if resize == "stretch" else {"resize": resize})})
    items = {split: ImageFiles([f for _, f in pairs], image_size, shape, f"{digest}/{split}", resize)
             for split, pairs in kept.items()}
    if None in items:
        x, y = items[None], labels[None]
        train, test = stratified_split(y, test_fraction, seed)
        x_train, y_train, x_test, y_test = x.take(train), y[train], x.take(test), y[test]
    else:
        (x_train, y_train), (x_test, y_test) = (items["train"], labels["train"]), (items["test"], labels["test"])
        for split, n in counts.items():
            missing = [c for c, k in zip(classes, n) if k == 0]
            if missing:
                log.warning("%s: class(es) %s have no readable image in %s", root, ", ".join(missing),
                            split_folders.get(split, f"{split}/"))
    if len(x_test) == 0 or len(x_train) == 0:
        raise UserError(f"{root}: the {'test' if len(x_test) == 0 else 'train'} split holds no readable image; "
                        "add images (or, for <class>/ folders, at least two per class)")
    return ArrayDataset(name, x_train, y_train, x_test, y_test, tuple(classes), skipped=len(bad))


def _read_cache(path: pathlib.Path, key: str, count: int) -> Optional[Tuple[list, Tuple[int, ...]]]:
    try:
        cached = json.loads(path.read_text())
        if cached["key"] != key:
            raise ValueError("key mismatch")
        verdicts, shape = cached["verdicts"], tuple(int(v) for v in cached["shape"])
        if len(verdicts) != count or not all(v is None or isinstance(v, str) for v in verdicts) \
                or len(shape) != 3 or shape[2] != 3:
            raise ValueError("unexpected contents")
        return verdicts, shape
    except Exception as e:  # truncated, not JSON, missing keys...: check again rather than fail
        log.warning("dataset cache %s is unreadable (%s: %s); rebuilding it", path, type(e).__name__, e)
        return None


def _write_cache(path: pathlib.Path, key: str, verdicts: list, shape: Tuple[int, ...]):
    try:
        atomic_io.write_text(path, json.dumps({"key": key, "shape": list(shape), "verdicts": verdicts}))
    except OSError as e:  # a cache that cannot be written costs time, not correctness
        log.warning("could not write dataset cache %s (%s); continuing without it", path, e)


def load_image_folder(root: Union[str, os.PathLike], *, image_size=None, test_fraction: float = 0.2, seed: int = 0,
                      cache_dir: Optional[Union[str, os.PathLike]] = None, workers: Optional[int] = None,
                      resize: str = "stretch") -> ArrayDataset:
    """A directory or .tar/.tar.gz/.tgz of class folders -> ArrayDataset of `ImageFiles` (uint8 NHWC RGB, decoded
    when read) and int32 labels. `workers`: processes of the check of a big set (default the local cores);
    `resize`: how images reach `image_size` ("stretch", or "shorter_side" then the centre square).

    See the module docstring for layouts, conversions, sizes and bad files.
    """
    root = pathlib.Path(root).expanduser()
    size = normalise_size(image_size)
    _check_resize(resize, image_size)
    if not root.exists():
        raise UserError(f"image folder {root} does not exist; set data.root to a folder (or .tar/.tar.gz) of "
                        "class subfolders")
    if root.is_file() and not is_archive(root):
        raise UserError(f"{root} is a file but not a .tar/.tar.gz/.tgz archive; point data.root at a folder of "
                        "class subfolders or an archive of one")
    if root.is_file():
        fingerprint = source_fingerprint(root, [])
        files, dirs = _list_archive(root, _plain_tar(root, fingerprint, cache_dir))
    else:
        files, dirs = list_directory(root)
        fingerprint = source_fingerprint(root, files)
    # "stretch" keys as before the option existed, so existing caches stay valid.
    cache_path, key = cache_location(cache_dir, f"image_folder-{_dataset_name(root)}",
                                     (fingerprint, size, float(test_fraction), int(seed))
                                     + (() if resize == "stretch" else (resize,)))
    return dataset_from_layout(root, _layout(files, dirs, root), name=_dataset_name(root), fingerprint=fingerprint,
                               image_size=size, resize=resize, test_fraction=test_fraction, seed=seed,
                               cache_path=cache_path, key=key, workers=workers)
