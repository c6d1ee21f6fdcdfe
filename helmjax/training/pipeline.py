"""The one input pipeline of training and evaluation, on grain: source -> order -> this process's rows -> read and
decode -> batches on the mesh.

A member's items come from a source: `ArraySource` (decoded items in memory) or `StoreSource` (a level store's files,
decoded when read). A source that decodes to at most `train.in_memory_bytes` is decoded once and kept as an array,
so small sets are served by index gathering with no decoding per epoch; larger ones are read and decoded batch by
batch in `train.data_workers` processes (grain's `mp_prefetch`; in this process when 0). Training draws each member's
epoch order from its run's key (`epoch_order`: the permutation the loop always drew, so runs keep their numbers);
evaluation reads in order, the last batch padded and masked. Each process reads only its own rows of every global
batch, which `jax.make_array_from_process_local_data` puts onto the mesh (batch axis over `data`).

`TrainIterator` yields every member's batches epoch after epoch. Its state is the position of the next batch,
{"epoch", "step"}, saved with every checkpoint: a run killed mid-epoch resumes at that batch and sees each item once
per epoch. The position, not grain's per-worker state, is saved, so the worker count may change across a resume.
"""

import dataclasses
from typing import Iterator, Optional, Sequence, Tuple, Union

from absl import flags
import grain
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from helmjax.errors import UserError
from helmjax.training.recipe import TrainSettings

# Rows per read when a store is decoded into memory: big enough to amortise a worker's round trip.
DECODE_CHUNK = 256
# Input values of an evaluation batch at most: the default train.eval_batch_size of 1000 stands for RGB images up
# to 52x52 (CIFAR's 32x32 included); bigger ones get fewer (96x96: 303).
EVAL_VALUES = 2 ** 23


@dataclasses.dataclass(frozen=True)
class SplitData:
    """Host arrays of one run: train (without the validation part), validation and test."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def arrays(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))


# ---- sources -----------------------------------------------------------------------------------------------------

class ArraySource:
    """Decoded items in memory: item i is (x[i], y[i])."""

    def __init__(self, x, y):
        if len(x) != len(y):
            raise ValueError(f"a source needs one label per item; got {len(x)} items and {len(y)} labels")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    @property
    def item_spec(self) -> Tuple[tuple, str]:
        return tuple(np.shape(self.x)[1:]), str(np.asarray(self.x[:0]).dtype)

    def read(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return self.x[rows], self.y[rows]


class StoreSource:
    """Records `rows` (default: all) of a level store (`data.level_store.LevelStore`), decoded when read: uint8
    images or float32 waveforms, int32 labels. Picklable, so worker processes read it."""

    def __init__(self, store, rows: Optional[np.ndarray] = None):
        self.store = store
        self.rows = np.arange(len(store)) if rows is None else np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def item_spec(self) -> Tuple[tuple, str]:
        return tuple(self.store.plan.item_shape), "uint8" if self.store.plan.modality == "image" else "float32"

    @property
    def decoded_bytes(self) -> int:
        shape, dtype = self.item_spec
        return len(self) * int(np.prod(shape)) * np.dtype(dtype).itemsize

    def read(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        records = self.rows[rows]
        shape, dtype = self.item_spec
        x = np.stack([self.store.decode(int(r)) for r in records]) if len(records) else np.zeros((0, *shape), dtype)
        return x.astype(dtype, copy=False), self.store.labels[records].astype(np.int32)


Source = Union[ArraySource, StoreSource]


@dataclasses.dataclass(frozen=True)
class Split:
    """A run's three sources: train (without the validation part), validation and test."""
    train: Source
    val: Source
    test: Source

    @classmethod
    def of(cls, data: Union["Split", SplitData]) -> "Split":
        if isinstance(data, Split):
            return data
        return cls(ArraySource(data.x_train, data.y_train), ArraySource(data.x_val, data.y_val),
                   ArraySource(data.x_test, data.y_test))


PARTS = ("train", "val", "test")


# ---- the grain chain ---------------------------------------------------------------------------------------------

class _ReadRows:
    """rows (sources, k) -> (rows, x, y), x and y stacked over the sources: the map run in grain's workers."""

    def __init__(self, sources: Sequence[Source]):
        self.sources = list(sources)

    def __call__(self, rows):
        parts = [source.read(r) for source, r in zip(self.sources, rows)]
        return rows, np.stack([x for x, _ in parts]), np.stack([y for _, y in parts])


def read_batches(sources: Sequence[Source], orders: Sequence[np.ndarray], workers: int) -> Iterator[tuple]:
    """(rows, x, y) of each element of `orders` (each (len(sources), k): rows of each source), in order, read through
    grain: in `workers` processes when some source is not in memory, else here (index gathering needs no workers)."""
    all_in_memory = all(isinstance(source, ArraySource) for source in sources)
    ds = grain.MapDataset.source(orders).map(_ReadRows(sources))
    # Grain advises no reader threads for data in memory (they only contend for the GIL).
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0 if all_in_memory else 2,
                                              prefetch_buffer_size=0 if all_in_memory else 4))
    if workers and not all_in_memory:
        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (google/grain#1355); outside absl.app
            flags.FLAGS.mark_as_parsed()  # they are unparsed: their defaults are what is meant
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2))
    it = iter(ds)
    try:
        yield from it
    finally:
        if hasattr(it, "close"):
            it.close()


def in_memory(source: Source, max_bytes: int, workers: int) -> Source:
    """`source` decoded once into an `ArraySource` when it decodes to at most `max_bytes`, else as it is."""
    if isinstance(source, ArraySource) or source.decoded_bytes > max_bytes:
        return source
    chunks = [np.arange(a, min(a + DECODE_CHUNK, len(source)))[None] for a in range(0, len(source), DECODE_CHUNK)]
    parts = [(x[0], y[0]) for _, x, y in read_batches([source], chunks, workers)]
    if not parts:
        shape, dtype = source.item_spec
        return ArraySource(np.zeros((0, *shape), dtype), np.zeros(0, np.int32))
    return ArraySource(np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))


# ---- orders ------------------------------------------------------------------------------------------------------

def epoch_keys(train_key: jax.Array, epoch: int) -> Tuple[jax.Array, jax.Array]:
    """(shuffle key, step key) of a member's epoch: its order's permutation, and the key each step folds its number
    into."""
    shuffle_key, step_key = jax.random.split(jax.random.fold_in(train_key, epoch))
    return shuffle_key, step_key


def epoch_order(n: int, steps: int, batch: int, shuffle_key: jax.Array) -> np.ndarray:
    """(steps, batch) rows of one member's epoch over `n` items: a permutation, the last partial batch dropped."""
    return np.asarray(jax.random.permutation(shuffle_key, n))[: steps * batch].reshape(steps, batch)


def batch_shardings(mesh: jax.sharding.Mesh) -> Tuple[NamedSharding, NamedSharding]:
    """How batches lie on the mesh (the steps take them so): (members, batch, ...) arrays and (batch,) masks, the
    batch axis split over `data`."""
    return NamedSharding(mesh, P(None, "data")), NamedSharding(mesh, P("data"))


def _local_rows(sharding: NamedSharding, batch: int) -> slice:
    """This process's rows of a global batch sharded by `sharding` (over its one axis): one contiguous block."""
    spans = sorted({(index[0].start or 0, batch if index[0].stop is None else index[0].stop)
                    for index in sharding.addressable_devices_indices_map((batch,)).values()})
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), f"this process's rows are not contiguous: {spans}"
    return slice(spans[0][0], spans[-1][1])


@dataclasses.dataclass(frozen=True)
class Batch:
    """Step `step` of epoch `epoch` of every member: `x`, `y` (members, batch, ...) on the mesh; `rows` (members,
    this process's share) the items' rows in the members' train sources."""
    epoch: int
    step: int
    rows: np.ndarray
    x: jax.Array
    y: jax.Array


@dataclasses.dataclass(frozen=True)
class EvalBatch:
    """An evaluation batch of every distinct data set: `x`, `y` (datasets, batch, ...) and `mask` (batch,) on the
    mesh; `keep` the host copy of the whole mask (padding rows False)."""
    x: jax.Array
    y: jax.Array
    mask: jax.Array
    keep: np.ndarray


def train_steps_per_epoch(n: int, settings: TrainSettings) -> int:
    """Steps of an epoch over `n` training items: whole batches (the last partial one dropped), at most
    `settings.max_steps_per_epoch` when that is set."""
    steps = n // settings.batch_size
    if steps == 0:
        raise UserError(f"train.batch_size={settings.batch_size} is larger than the {n} training examples; lower it")
    return min(steps, settings.max_steps_per_epoch) if settings.max_steps_per_epoch else steps


class StackInput:
    """The input of a stack of runs on a mesh: member m reads `datas[m]` (a `Split`, or `SplitData` held in
    memory). A data object given to several members is evaluated once for them (`data_of_member`)."""

    def __init__(self, datas: Sequence[Union[Split, SplitData]], settings: TrainSettings,
                 mesh: jax.sharding.Mesh):
        distinct, self.data_of_member = [], []
        for data in datas:
            match = next((k for k, d in enumerate(distinct) if d is data), None)
            if match is None:
                distinct.append(data)
                match = len(distinct) - 1
            self.data_of_member.append(match)
        self.workers = settings.data_workers
        self.splits = [Split(*(in_memory(getattr(split, part), settings.in_memory_bytes, self.workers)
                               for part in PARTS)) for split in map(Split.of, distinct)]
        for part in PARTS:
            specs = {(len(getattr(s, part)), *getattr(s, part).item_spec) for s in self.splits}
            if len(specs) > 1:
                raise ValueError(f"stacked runs need data of one shape; {part} differs: {sorted(specs)}")
        devices = mesh.devices.size
        self.batch_size = settings.batch_size
        if self.batch_size % devices:
            raise UserError(f"train.batch_size={self.batch_size} must be a multiple of the {devices} devices")
        self.steps_per_epoch = train_steps_per_epoch(len(self.splits[0].train), settings)
        # At most EVAL_VALUES input values (a batch's activations grow with its items' size: 1000 images of 96x96
        # peaked at 4.4 GB, 100 at 1.8 GB), rounded down to a multiple of the devices: at least one row per device.
        values = int(np.prod(self.splits[0].train.item_spec[0]))
        eval_batch = min(settings.eval_batch_size, max(1, EVAL_VALUES // max(1, values)))
        self.eval_batch_size = max(devices, eval_batch - eval_batch % devices)
        self.member_batch, self.batch = batch_shardings(mesh)
        self._train_rows = _local_rows(self.batch, self.batch_size)
        self._eval_rows = _local_rows(self.batch, self.eval_batch_size)

    @property
    def members(self) -> int:
        return len(self.data_of_member)

    def split(self, m: int) -> Split:
        return self.splits[self.data_of_member[m]]

    def sample(self, m: int = 0) -> np.ndarray:
        """Member m's first training item, as a batch of one (to initialise a model)."""
        return self.split(m).train.read(np.arange(1))[0]

    def _members_on_mesh(self, array: np.ndarray, rows: int) -> jax.Array:
        """(members or datasets, this process's rows, ...) -> the global (.., `rows`, ...) array."""
        return jax.make_array_from_process_local_data(self.member_batch, array,
                                                      (array.shape[0], rows, *array.shape[2:]))

    def epoch_orders(self, train_keys: Sequence[jax.Array], epoch: int) -> np.ndarray:
        """(steps, members, batch): every member's rows of every step of `epoch`."""
        assert len(train_keys) == self.members, f"{len(train_keys)} keys for {self.members} members"
        return np.stack([epoch_order(len(self.split(m).train), self.steps_per_epoch, self.batch_size,
                                     epoch_keys(key, epoch)[0]) for m, key in enumerate(train_keys)], axis=1)

    def batches(self, orders: np.ndarray, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """Batches of steps `start`, `start` + 1, ... of `orders` (steps, members, batch: rows of each member's train
        source): an epoch's, or an order a caller draws its own way."""
        sources = [self.split(m).train for m in range(self.members)]
        local = [order[:, self._train_rows] for order in orders[start:]]
        for step, (rows, x, y) in enumerate(read_batches(sources, local, self.workers), start):
            yield Batch(epoch, step, rows, self._members_on_mesh(x, self.batch_size),
                        self._members_on_mesh(y, self.batch_size))

    def train(self, train_keys: Sequence[jax.Array], position: dict) -> "TrainIterator":
        """Every member's training batches from `position` ({"epoch", "step"} of the next batch) on."""
        return TrainIterator(self, train_keys, position)

    def evaluation(self, part: str) -> Iterator[EvalBatch]:
        """The `part` ("val" or "test") of every distinct data set, in order, in padded batches."""
        sources = [getattr(split, part) for split in self.splits]
        n, batch = len(sources[0]), self.eval_batch_size
        index = np.arange(-(-n // batch) * batch).reshape(-1, batch)
        keep = index < n
        rows = np.where(keep, index, 0)[:, self._eval_rows]
        orders = [np.repeat(r[None], len(sources), axis=0) for r in rows]
        for k, (_, x, y) in enumerate(read_batches(sources, orders, self.workers)):
            mask = jax.make_array_from_process_local_data(self.batch, keep[k, self._eval_rows], (batch,))
            yield EvalBatch(self._members_on_mesh(x, batch), self._members_on_mesh(y, batch), mask, keep[k])


class TrainIterator:
    """Every member's training batches, epoch after epoch. As grain's iterators, its state (`get_state`,
    `set_state`) says where it is: {"epoch": e, "step": s}, the next batch being step s of epoch e."""

    def __init__(self, inputs: StackInput, train_keys: Sequence[jax.Array], position: dict):
        self.inputs, self.train_keys = inputs, list(train_keys)
        self._batches: Optional[Iterator[Batch]] = None
        self.set_state(position)

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "step": self.step}

    def set_state(self, state: dict):
        self.close()
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        if not 0 <= self.step < self.inputs.steps_per_epoch:
            raise ValueError(f"step {self.step} is outside an epoch of {self.inputs.steps_per_epoch} steps")

    def __iter__(self) -> "TrainIterator":
        return self

    def __next__(self) -> Batch:
        if self._batches is None:
            self._batches = self.inputs.batches(self.inputs.epoch_orders(self.train_keys, self.epoch), self.epoch,
                                                self.step)
        batch = next(self._batches)
        assert (batch.epoch, batch.step) == (self.epoch, self.step)
        self.step += 1
        if self.step == self.inputs.steps_per_epoch:
            self.close()
            self.epoch, self.step = self.epoch + 1, 0
        return batch

    def close(self):
        if self._batches is not None:
            self._batches.close()
            self._batches = None
