"""Items read on demand: indexing like numpy, lazy subsets, digests, chunks, and a level store read back."""

import pickle

import numpy as np
import pytest

from helmjax.data import level_store
from helmjax.data.items import LazyItems, StoreItems, chunks
from helmjax.digests import content_digest


class Counted(LazyItems):
    """Rows of an array, counting the rows read."""

    def __init__(self, x):
        self.x, self.shape, self.dtype, self.digest, self.reads = x, x.shape, x.dtype, "counted", []

    def _read(self, rows):
        self.reads.append(len(rows))
        return self.x[rows]


@pytest.fixture
def items():
    x = np.arange(10 * 2 * 3, dtype=np.uint8).reshape(10, 2, 3)
    return x, Counted(x)


def test_indexing_gives_what_numpy_gives(items):
    x, lazy = items
    for key in (3, -1, slice(2, 7), slice(None, None, -3), np.array([4, 0, 4]), x[:, 0, 0] % 2 == 0, []):
        np.testing.assert_array_equal(lazy[key], x[key])
    assert lazy[[]].shape == (0, 2, 3) and len(lazy) == 10 and lazy.ndim == 3
    np.testing.assert_array_equal(np.asarray(lazy), x)
    np.testing.assert_array_equal(np.stack(list(lazy)), x)
    with pytest.raises(IndexError):
        lazy[10]


def test_subsets_stay_lazy_and_compose(items):
    x, lazy = items
    lazy.reads.clear()
    sub = lazy.take([9, 1, 5, 3]).take([3, 0])
    assert lazy.reads == [] and sub.base is lazy  # nothing read; one level of indirection
    np.testing.assert_array_equal(sub[:], x[[3, 9]])
    assert sub.digest != lazy.take([9, 1]).digest
    assert content_digest(sub) == content_digest(lazy.take([3, 9])) != content_digest(x[[3, 9]])


def test_chunks_read_a_bounded_number_of_rows_at_a_time(items):
    x, lazy = items
    lazy.reads.clear()
    np.testing.assert_array_equal(np.concatenate(list(chunks(lazy, 4))), x)
    assert lazy.reads == [4, 4, 2]


def test_a_store_read_back_gives_the_items_it_was_built_from(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    level_store.build(tmp_path / "raw", x, np.arange(7) % 2, None, "raw", shard_size=3, workers=1)
    stored = StoreItems(level_store.LevelStore(tmp_path / "raw"))
    assert stored.shape == x.shape and stored.dtype == np.uint8
    np.testing.assert_array_equal(stored[:], x)
    share = pickle.loads(pickle.dumps(stored.take([6, 2])))
    np.testing.assert_array_equal(share[:], x[[6, 2]])


def test_a_store_built_from_lazy_items_in_workers_equals_the_store_of_the_array(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
    y = np.arange(9) % 3
    ref = level_store.build(tmp_path / "array", x, y, "pillow_jpeg", 50, shard_size=4, workers=1, fingerprint="d")
    got = level_store.build(tmp_path / "lazy", Counted(x), y, "pillow_jpeg", 50, shard_size=4, workers=2,
                            fingerprint="d")
    assert [s["sha256"] for s in got["shards"]] == [s["sha256"] for s in ref["shards"]]
    assert got["digest"] == ref["digest"]


def test_coding_a_shard_chunk_by_chunk_changes_no_file(tmp_path, monkeypatch):
    x = np.random.default_rng(2).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    y = np.arange(7) % 2
    whole = {q: level_store.build(tmp_path / f"{q}-whole", x, y, q, 50, workers=1, fingerprint="d")
             for q in ("jax_jpeg", "pillow_jpeg")}
    monkeypatch.setattr(level_store, "ENCODE_CHUNK", 3)
    for q, ref in whole.items():
        got = level_store.build(tmp_path / f"{q}-chunks", Counted(x), y, q, 50, workers=1, fingerprint="d")
        assert [s["sha256"] for s in got["shards"]] == [s["sha256"] for s in ref["shards"]]
        assert [s["meta_sha256"] for s in got["shards"]] == [s["meta_sha256"] for s in ref["shards"]]
