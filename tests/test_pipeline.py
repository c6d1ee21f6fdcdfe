"""The input pipeline: a level store's files (decoded here, in worker processes, or once into memory) and arrays in
memory give the same batches; an epoch's order visits each item once; an iterator resumed at a position goes on
with the batch an uninterrupted one would give there."""

import dataclasses
import itertools

import jax
import numpy as np
import pytest

from helmjax.data import level_store
from helmjax.layout import RAW
from helmjax.training.pipeline import ArraySource, Split, SplitData, StackInput, StoreSource
from helmjax.training.recipe import TrainSettings
from helmjax.training.trainer import data_mesh
from tests.conftest import make_stripes

SETTINGS = TrainSettings(batch_size=32, eval_batch_size=48)
KEYS = [jax.random.key(0), jax.random.key(1)]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The stripes set as arrays and as two raw (PNG) level stores, train and test, in shards of 100 records."""
    ds = make_stripes()
    root = tmp_path_factory.mktemp("stores")
    for part, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        level_store.build(root / part, x, y, None, RAW, shard_size=100, workers=1)
    train, test = level_store.LevelStore(root / "train"), level_store.LevelStore(root / "test")
    arrays = SplitData(ds.x_train[:192], ds.y_train[:192], ds.x_train[192:], ds.y_train[192:], ds.x_test, ds.y_test)
    files = Split(StoreSource(train, np.arange(192)), StoreSource(train, np.arange(192, 256)), StoreSource(test))
    return arrays, files


def _epoch(inputs: StackInput, epoch: int = 1, step: int = 0) -> list:
    batches = inputs.train(KEYS[:inputs.members], {"epoch": epoch, "step": step})
    try:
        return [(b.epoch, b.step, b.rows, np.asarray(b.x), np.asarray(b.y))
                for b in itertools.islice(batches, inputs.steps_per_epoch - step + 2)]  # and 2 of the next epoch
    finally:
        batches.close()


def _evaluation(inputs: StackInput, part: str) -> list:
    return [(np.asarray(b.x), np.asarray(b.y), b.keep) for b in inputs.evaluation(part)]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(len(p) == len(q) and all(np.array_equal(u, v) for u, v in zip(p, q))
                                    for p, q in zip(a, b))


def test_an_epoch_visits_each_item_once_in_a_new_order_each_epoch(stored):
    arrays, _ = stored
    inputs = StackInput([arrays, arrays], SETTINGS, data_mesh())
    assert inputs.steps_per_epoch == 6 and inputs.data_of_member == [0, 0]
    first, second = inputs.epoch_orders(KEYS, 1), inputs.epoch_orders(KEYS, 2)
    assert first.shape == (6, 2, 32)
    for m in range(2):
        assert sorted(first[:, m].ravel().tolist()) == list(range(192))
    assert not np.array_equal(first[:, 0], first[:, 1])  # each member its own order (its run's key)
    assert not np.array_equal(first, second)
    batches = _epoch(inputs)
    assert [(e, s) for e, s, *_ in batches] == [(1, s) for s in range(6)] + [(2, 0), (2, 1)]
    assert np.array_equal(batches[0][3], arrays.x_train[first[0]])  # x[m] is member m's rows
    assert np.array_equal(batches[0][4], arrays.y_train[first[0]])


def test_store_files_give_the_batches_of_arrays_decoded_here_or_once_into_memory(stored):
    arrays, files = stored
    mesh = data_mesh()
    in_memory = StackInput([arrays], SETTINGS, mesh)
    streamed = StackInput([files], dataclasses.replace(SETTINGS, in_memory_bytes=0), mesh)
    decoded = StackInput([files], SETTINGS, mesh)
    assert all(isinstance(getattr(streamed.splits[0], p), StoreSource) for p in ("train", "val", "test"))
    assert all(isinstance(getattr(decoded.splits[0], p), ArraySource) for p in ("train", "val", "test"))
    reference = _epoch(in_memory)
    assert _same(_epoch(streamed), reference) and _same(_epoch(decoded), reference)
    for part in ("val", "test"):
        reference = _evaluation(in_memory, part)
        assert _same(_evaluation(streamed, part), reference) and _same(_evaluation(decoded, part), reference)
    padded = _evaluation(in_memory, "test")  # 128 examples in batches of 48: the last one padded and masked
    assert [int(keep.sum()) for _, _, keep in padded] == [48, 48, 32]


@pytest.mark.slow
def test_worker_processes_read_the_same_batches_and_resume_at_a_position(stored):
    arrays, files = stored
    mesh = data_mesh()
    reference = _epoch(StackInput([arrays], SETTINGS, mesh))
    workers = StackInput([files], dataclasses.replace(SETTINGS, in_memory_bytes=0, data_workers=2), mesh)
    assert _same(_epoch(workers), reference)
    assert _same(_epoch(workers, step=4), reference[4:])  # resumed mid-epoch: the rest, then the next epoch


def test_evaluation_batches_of_big_items_hold_at_most_eval_values():
    from helmjax.training import pipeline
    mesh = data_mesh()
    devices = mesh.devices.size
    settings = TrainSettings(batch_size=devices, eval_batch_size=1000)
    for side, want in ((32, 1000), (96, pipeline.EVAL_VALUES // (96 * 96 * 3))):
        x = np.zeros((2 * devices, side, side, 3), np.uint8)
        data = SplitData(x, np.zeros(len(x), np.int32), x, np.zeros(len(x), np.int32), x, np.zeros(len(x), np.int32))
        inputs = StackInput([data], settings, mesh)
        assert inputs.eval_batch_size == want - want % devices
    assert pipeline.EVAL_VALUES // (96 * 96 * 3) == 303
