"""Items read on demand: a data set's images or clips that are not held in memory (files in a folder or tar, a
level store's records, a tfds data source, arrays stored uncompressed in an .npz), indexed like a numpy array.

Why: a data set larger than memory must never be decoded whole. Loaders return `LazyItems` where they would return
an array; level stores, digests, rates and the noise record take them as they take arrays (`len`, `shape`, `dtype`,
`x[i]`, `x[a:b]`, `x[rows]` give numpy), and `take(rows)` is a lazy subset that pickles small, so worker processes
decode their own share. `np.asarray(x)` decodes everything: meant for small sets and tests only.
"""

import os
import pathlib
import struct
import zipfile
from typing import Dict, Iterator, Sequence, Tuple, Union

import numpy as np

from helmjax.digests import content_digest, key_digest


class LazyItems:
    """Base of items read on demand. Subclasses set `shape` ((N, ...) of the decoded items), `dtype` and `digest`
    (changes whenever the items do) and implement `_read(rows)`: the items at int64 `rows`, stacked."""

    shape: Tuple[int, ...]
    dtype: np.dtype
    digest: str
    read_on_demand = True  # how `digests.content_digest` knows them without importing this module

    def _read(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            if not -len(self) <= key < len(self):
                raise IndexError(f"item {key} of {len(self)}")
            return self._read(np.array([key % len(self)], np.int64))[0]
        rows = np.arange(len(self))[key]  # slices, int arrays and boolean masks, checked by numpy
        if rows.ndim != 1:
            raise IndexError(f"lazy items take one index, a slice or a 1-D array of rows; got {key!r}")
        if len(rows) == 0:
            return np.zeros((0, *self.shape[1:]), self.dtype)
        return self._read(rows.astype(np.int64))

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in chunks(self):
            yield from chunk

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take(self, rows: Sequence[int]) -> "LazyItems":
        """The items at `rows`, still lazy."""
        return Subset(self, rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items of {self.shape[1:]} {np.dtype(self.dtype)})"


class Subset(LazyItems):
    """Rows of other lazy items."""

    def __init__(self, base: LazyItems, rows: Sequence[int]):
        rows = np.asarray(rows, np.int64)
        if isinstance(base, Subset):  # one level of indirection, however often subsets are taken
            base, rows = base.base, base.rows[rows]
        self.base, self.rows = base, rows
        self.shape, self.dtype = (len(rows), *base.shape[1:]), base.dtype
        self.digest = key_digest({"of": base.digest, "rows": content_digest(rows)})

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return self.base._read(self.rows[rows])


class StoreItems(LazyItems):
    """The decoded records of a level store (`data.level_store.LevelStore`): a data set kept losslessly as its raw
    level is read back from it, item by item."""

    def __init__(self, store):
        self.store = store
        self.shape = (len(store), *store.plan.item_shape)
        self.dtype = np.dtype(np.uint8 if store.plan.modality == "image" else np.float32)
        self.digest = store.index["digest"]

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return np.stack([self.store.decode(int(r)) for r in rows]).astype(self.dtype, copy=False)


class NpzRows(LazyItems):
    """An array stored uncompressed in an .npz (`np.savez`'s way), read row by row from the file: a data set kept
    as arrays is not loaded whole. Picklable (a path and offsets)."""

    def __init__(self, path, offset: int, shape: Tuple[int, ...], dtype, digest: str, rows=None):
        self.path, self.offset, self.item_shape, self.dtype = str(path), int(offset), tuple(shape[1:]), np.dtype(dtype)
        self.rows = np.arange(shape[0], dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.shape, self.digest = (len(self.rows), *self.item_shape), digest

    def _read(self, rows: np.ndarray) -> np.ndarray:
        size = int(np.prod(self.item_shape)) * self.dtype.itemsize
        out = np.empty((len(rows), *self.item_shape), self.dtype)
        with open(self.path, "rb") as f:
            for k, r in enumerate(self.rows[rows]):
                data = os.pread(f.fileno(), size, self.offset + int(r) * size)
                if len(data) != size:
                    raise OSError(f"{self.path} ends inside row {r}: it changed after it was opened")
                out[k] = np.frombuffer(data, self.dtype).reshape(self.item_shape)
        return out

    def take(self, rows) -> "NpzRows":
        rows = np.asarray(rows, np.int64)
        return NpzRows(self.path, self.offset, (0, *self.item_shape), self.dtype,
                       key_digest({"of": self.digest, "rows": content_digest(rows)}), self.rows[rows])


def npz_arrays(path: Union[str, os.PathLike], names: Sequence[str]) -> Dict[str, Union[np.ndarray, NpzRows]]:
    """The arrays `names` of an .npz: those of more than one dimension stored uncompressed (np.savez) as `NpzRows`,
    read on demand; the others (compressed: np.savez_compressed, or labels) loaded. Raises KeyError for a missing
    name, and zipfile/numpy errors for a damaged file."""
    path = pathlib.Path(path)
    stat = path.stat()
    out = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
        for name in names:
            info = archive.getinfo(f"{name}.npy")
            if info.compress_type == zipfile.ZIP_STORED:
                f.seek(info.header_offset)
                local = f.read(30)  # the member's local header: its name and extra field lengths at bytes 26-30
                f.seek(info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30])))
                version = np.lib.format.read_magic(f)
                shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0) else
                                         np.lib.format.read_array_header_2_0(f))
                if len(shape) > 1 and not fortran and not dtype.hasobject:
                    digest = key_digest({"npz": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
                                         "member": name})
                    out[name] = NpzRows(path, f.tell(), shape, dtype, digest)
                    continue
            with archive.open(f"{name}.npy") as member:
                out[name] = np.lib.format.read_array(member, allow_pickle=False)
    return out


def chunks(items, size: int = 256) -> Iterator[np.ndarray]:
    """`items` (an array or lazy items) as numpy chunks of at most `size` items: bounded memory either way."""
    for start in range(0, len(items), size):
        yield np.asarray(items[start:start + size])


def is_lazy(items) -> bool:
    return isinstance(items, LazyItems)
