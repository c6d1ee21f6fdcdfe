"""Atomic file writes: temp file in the same directory, fsync, rename. A kill never leaves half a file."""

import json
import os
import pathlib
import tempfile
import zipfile
from typing import Any, Callable

import numpy as np

from helmjax import trace


def write_with(path: pathlib.Path, write: Callable[[Any], None], mode: str = "wb"):
    """Calls `write(file)` on a temp file beside `path`, then renames it into place."""
    path = pathlib.Path(path)
    trace.event(f"write-start {path.parent.name}/{path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        trace.event(f"write-end {path.parent.name}/{path.name}")
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes(path: pathlib.Path, data: bytes):
    write_with(path, lambda f: f.write(data))


def write_text(path: pathlib.Path, text: str):
    write_bytes(path, text.encode("utf-8"))


def write_json(path: pathlib.Path, obj: Any):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_npz(path: pathlib.Path, **arrays: np.ndarray):
    """An uncompressed .npz, as np.savez writes it, but any array name works (np.savez reserves "file")."""
    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)
    write_with(path, write)


def write_npy(path: pathlib.Path, array: np.ndarray):
    write_with(path, lambda f: np.save(f, array))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pathlib.Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
