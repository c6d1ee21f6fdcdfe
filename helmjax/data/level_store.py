"""A level store: one level of a dataset kept as real files (the codec's own bytes) in sharded ArrayRecord.

Why: the in-memory cache (`sweeps.quantized_data`) keeps decoded pixels and throws the coded bytes away, so a level
takes as much room as raw and its rate is a number kept beside it. Here each record is one item's file exactly (a
JPEG, WebP, AVIF, JPEG XL, JPEG 2000 or MP3 file; PNG or 16-bit FLAC (32-bit float WAV for audio that is not 16-bit
PCM, e.g. synthesised) for a quantizer with no file format and for
the raw level), so the store's size is the level's rate, a data set larger than memory is read item by item, and
anyone reads it with array_record and Pillow alone (README, "The level store").

A level's folder:

    shard-00000-of-00004.array_record   the items' files, in data set order (one record = one file)
    shard-00000-of-00004.npy            per record: label, file_bits (= 8 * bytes of the record), payload_bits,
                                        level_bits and level_payload_bits (what the level costs: see META_DTYPE)
    shard-00000-of-00004.json           the shard's pending entry: the level's digest, items, bytes, SHA-256
    index.json                          written once every shard is there: digest, format, shards, rates

Building is parallel over local cores (a process per shard), resumable (each file is written under a temp name
and renamed; a shard whose files do not match its pending entry is rebuilt) and split over hosts (process i of n
builds shards i, i + n, ...; whichever process finds every shard present writes the index). `LevelStore` reads
a store; it is a grain RandomAccessDataSource (`__len__`, `__getitem__`, picklable).
"""

import bisect
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing
import operator
import os
import pathlib
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from helmjax import atomic_io
from helmjax.data.items import is_lazy
from helmjax.digests import content_digest, key_digest
from helmjax.errors import UserError
from helmjax.layout import RAW
from helmjax.quantizers import registry

log = logging.getLogger(__name__)

STORE_FORMAT = 2  # of the files and of index.json; a change makes every digest new
INDEX_FILE = "index.json"
# One record per chunk, so a record is read alone; no zstd: the records are already coded files (it would cost a
# decompression per read for nothing), and the shard's size stays the sum of its files plus framing.
WRITER_OPTIONS = "group_size:1,uncompressed"
READER_OPTIONS = "readahead_buffer_size:0"  # random access: no read-ahead
# Items per shard. ArrayRecord puts its footer in the file's last 64 KiB block, so each shard carries up to
# ~128 KiB of framing besides ~50 bytes per record: big shards keep the store's size near the files' sum.
SHARD_SIZE = 4096
PNG_LEVEL = 6  # zlib level of the PNG files (Pillow's default)
# Items decoded and coded at once in a shard's build (a quantizer's output is per item, so this changes no file).
ENCODE_CHUNK = 256
# Quantizers whose own file is kept -> its format (also the usual file suffix).
OWN_FILES = {"pillow_jpeg": "jpeg", "webp": "webp", "avif": "avif", "jpegxl": "jxl", "jpeg2000": "j2k", "mp3": "mp3"}
# Per record, beside the records: NaN payload where the file's headers are not separable. level_bits and
# level_payload_bits are what the level costs: the file's own bits for a codec's file, the quantizer's own count
# where the file is a lossless copy of its output (the JAX JPEG codec's coded size; NaN where it counts none), the
# PNG or FLAC file's bits at the raw level.
META_DTYPE = np.dtype([("label", "<i8"), ("file_bits", "<i8"), ("payload_bits", "<f8"), ("level_bits", "<f8"),
                       ("level_payload_bits", "<f8")])


@dataclasses.dataclass(frozen=True)
class Plan:
    """One level's files, resolved once: what the builders encode and the reader decodes (index.json keeps it)."""
    quantizer: str  # a registered quantizer, or "raw"
    version: str  # the quantizer's (its output's), and the lossless writer's for PNG/FLAC files
    level: Any  # validated by the quantizer's spec; "raw"
    options: dict  # the options the quantizer takes
    modality: str  # "image" or "audio"
    format: str  # "jpeg", "webp", "avif", "jxl", "j2k", "mp3"; "png" / "flac" / "wav": kept losslessly
    item_shape: Tuple[int, ...]
    sample_rate: Optional[int]  # audio
    fitted: Optional[str] = None  # digest of a fitted quantizer's state (learned JPEG tables), passed to its apply

    @classmethod
    def from_index(cls, index: dict) -> "Plan":
        fields = {f.name: index[f.name] for f in dataclasses.fields(cls)}
        return cls(**dict(fields, item_shape=tuple(fields["item_shape"])))


def _lossless_version(fmt: str) -> str:
    if fmt == "png":
        import PIL
        return f"PNG through Pillow {PIL.__version__} (zlib level {PNG_LEVEL})"
    import soundfile
    kind = "16-bit FLAC" if fmt == "flac" else "32-bit float WAV"
    return f"{kind} through libsndfile {soundfile.__libsndfile_version__}"


def _is_pcm16(x, chunk: int = 256) -> bool:
    """Whether every sample is a 16-bit PCM value (x * 32768 whole, in range), as read from 16-bit files."""
    for start in range(0, len(x), chunk):
        pcm = np.asarray(x[start:start + chunk], np.float64) * 32768.0
        if not (np.array_equal(np.round(pcm), pcm) and pcm.min(initial=0) >= -32768 and pcm.max(initial=0) < 32768):
            return False
    return True


def _modality(x) -> str:
    shape, dtype = tuple(x.shape), np.dtype(x.dtype)
    if dtype == np.uint8 and (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3))):
        return "image"
    if np.issubdtype(dtype, np.floating) and len(shape) == 2:
        return "audio"
    raise UserError(f"a level store holds uint8 images (N,H,W[,1|3]) or float waveforms (N,T); got {dtype} "
                    f"{shape}: convert with np.uint8 or stack clips of one length first")


def make_plan(x, quantizer: Optional[str], level, options: Optional[dict] = None,
              sample_rate: Optional[int] = None, fitted: Optional[dict] = None) -> Plan:
    """The plan of `x` at `level` of `quantizer` (level "raw": the data kept losslessly, quantizer ignored);
    `fitted`: the state of a quantizer fitted on training data (`quantized_data.fitted_state`)."""
    modality = _modality(x)
    if modality == "audio" and not sample_rate:
        raise UserError("an audio level store needs the clips' sample_rate (ArrayDataset.sample_rate)")
    sample_rate = int(sample_rate) if modality == "audio" else None
    lossless = "png" if modality == "image" else "flac" if _is_pcm16(x) else "wav"
    if level == RAW:
        return Plan(RAW, _lossless_version(lossless), RAW, {}, modality, lossless, tuple(x.shape[1:]), sample_rate)
    spec = registry.get(quantizer)
    if spec.modality != modality:
        raise UserError(f"quantizer {spec.name!r} codes {spec.modality}, but the data are {modality}")
    options = dict(options or {})
    if modality == "audio":
        options.setdefault("sample_rate", sample_rate)
    options = registry.accepted_options(spec, options)
    options.pop("workers", None)  # mp3.compress's process count: not part of the output
    # a quantizer's output is not 16-bit PCM in general: float WAV keeps any float32 output exactly
    fmt = OWN_FILES.get(spec.name, "png" if modality == "image" else "wav")
    version = spec.version if spec.name in OWN_FILES else f"{spec.version}; {_lossless_version(fmt)}"
    return Plan(spec.name, version, spec.check(level), options, modality, fmt, tuple(x.shape[1:]), sample_rate,
                None if fitted is None else registry.weights_digest(fitted))


def level_key(plan: Plan, fingerprint: str) -> dict:
    """What a store's files depend on; its `key_digest` is the store's digest."""
    return {"store_format": STORE_FORMAT, "dataset": fingerprint, "quantizer": plan.quantizer,
            "version": plan.version, "level": plan.level, "options": plan.options, "format": plan.format,
            "item_shape": list(plan.item_shape), "sample_rate": plan.sample_rate, "fitted": plan.fitted}


# ---- files of one item -------------------------------------------------------------------------------------------

def _png(image: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(
        buf, "PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _flac(waveform: np.ndarray, sample_rate: int) -> bytes:
    import soundfile
    pcm = np.round(np.asarray(waveform, np.float64) * 32768.0)
    if not (np.array_equal(pcm / 32768.0, waveform) and pcm.min(initial=0) >= -32768 and pcm.max(initial=0) < 32768):
        raise UserError("audio stored losslessly must be 16-bit PCM samples (x * 32768 whole numbers in "
                        "[-32768, 32767]), as read from 16-bit files; resampled audio is not: keep its native rate")
    buf = io.BytesIO()
    soundfile.write(buf, pcm.astype(np.int16), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _wav(waveform: np.ndarray, sample_rate: int) -> bytes:
    import soundfile
    buf = io.BytesIO()
    soundfile.write(buf, np.asarray(waveform, np.float32), sample_rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _lossless_file(plan: Plan, item: np.ndarray) -> bytes:
    if plan.format == "wav":
        return _wav(item, plan.sample_rate)
    return _png(item) if plan.modality == "image" else _flac(item, plan.sample_rate)


def _own_file(plan: Plan, item: np.ndarray) -> Tuple[bytes, Optional[int]]:
    """(the quantizer's own file of one item, its payload bytes or None): the quantizer's encoders."""
    if plan.format == "jpeg":
        from helmjax.quantizers import pillow_jpeg
        data = pillow_jpeg.encode(item, plan.level, **plan.options)
        return data, pillow_jpeg.payload_bytes(data)
    if plan.format == "mp3":
        from helmjax.quantizers import mp3
        data = mp3.encode(item, plan.level, **plan.options)
        return data, mp3.payload_bytes(data)
    from helmjax.quantizers import codecs
    data = codecs.encode(plan.quantizer, item, plan.level, **plan.options)
    payload = codecs.CODECS[plan.quantizer].payload_bytes
    return data, None if payload is None else payload(data)


def encode_items(plan: Plan, items, fitted: Optional[dict] = None) -> Tuple[list, list, np.ndarray]:
    """(files, payload bytes or None each, (2, N) level bits and payload bits) of items (an array or lazy items,
    `data.items`) at the plan's level; `fitted` the state whose digest the plan holds. Decoded and coded
    ENCODE_CHUNK items at a time: a shard's build holds a chunk decoded, not the shard."""
    parts = [_encode_chunk(plan, np.asarray(items[a:a + ENCODE_CHUNK]), fitted)
             for a in range(0, len(items), ENCODE_CHUNK)]
    return ([f for files, _, _ in parts for f in files], [p for _, payloads, _ in parts for p in payloads],
            np.concatenate([bits for _, _, bits in parts], axis=1) if parts else np.zeros((2, 0)))


def _encode_chunk(plan: Plan, items: np.ndarray, fitted: Optional[dict]) -> Tuple[list, list, np.ndarray]:
    if plan.quantizer in OWN_FILES:
        pairs = [_own_file(plan, item) for item in items]
        files, payloads = [f for f, _ in pairs], [p for _, p in pairs]
        return files, payloads, np.array([[8.0 * len(f) for f in files],
                                          [np.nan if p is None else 8.0 * p for p in payloads]]).reshape(2, -1)
    if plan.level == RAW:
        files = [_lossless_file(plan, item) for item in items]
        bits = np.array([8.0 * len(f) for f in files])
        return files, [None] * len(files), np.stack([bits, bits])
    # a quantizer with no file format: its output kept losslessly, the level charged what the quantizer counts
    if (fitted is None) != (plan.fitted is None) or (fitted is not None and registry.weights_digest(fitted)
                                                       != plan.fitted):
        raise ValueError(f"level store of {plan.quantizer}: the fitted state does not match the plan's")
    result = registry.get(plan.quantizer).apply(np.asarray(items), plan.level, **plan.options,
                                                **({} if fitted is None else {"fitted": fitted}))
    n = len(items)
    level_bits = np.stack([np.full(n, np.nan) if b is None else np.asarray(b, np.float64)
                           for b in (result.bits_per_item, result.payload_bits)])
    return [_lossless_file(plan, item) for item in result.data], [None] * n, level_bits


def _pillow_decode(data: bytes, shape: tuple) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data))).reshape(shape)


def decode_file(plan: Plan, data: bytes) -> np.ndarray:
    """One stored file -> what the in-memory quantizer gives for that item (uint8 image, float32 waveform)."""
    if plan.format in ("jpeg", "png"):  # as pillow_jpeg.decode
        return _pillow_decode(data, plan.item_shape)
    if plan.format in ("webp", "avif", "jxl", "j2k"):
        from helmjax.quantizers import codecs
        return codecs.decode(plan.quantizer, data, np.zeros(plan.item_shape, np.uint8))
    if plan.format == "mp3":
        from helmjax.quantizers import mp3
        audio, rate = mp3.decode(data)
        return mp3.align(audio, rate, plan.level, length=plan.item_shape[0], **plan.options)
    from helmjax import audio_decode
    audio, _ = audio_decode.decode(data, undecodable=lambda why: f"a stored {plan.format} file is not readable: "
                                   f"{why}", no_frames=f"a stored {plan.format} file holds no samples")
    return audio[:, 0]


# ---- shards ------------------------------------------------------------------------------------------------------

def shard_bounds(n: int, shard_size: int) -> list:
    """[(start, stop)] of each shard: `shard_size` items each, the last one shorter."""
    if n <= 0 or shard_size <= 0:
        raise UserError(f"a level store needs items and a positive shard size; got {n} items, shard_size={shard_size}")
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def shard_name(i: int, count: int) -> str:
    return f"shard-{i:05d}-of-{count:05d}"


def _paths(directory: pathlib.Path, i: int, count: int) -> dict:
    base = directory / shard_name(i, count)
    return {"records": base.with_name(base.name + ".array_record"), "meta": base.with_name(base.name + ".npy"),
            "entry": base.with_name(base.name + ".json")}


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_records(path: pathlib.Path, files: Sequence[bytes]):
    """An ArrayRecord file of `files`, written under a temp name and renamed: a kill never leaves half a shard."""
    from array_record.python.array_record_module import ArrayRecordWriter
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer = ArrayRecordWriter(str(tmp), WRITER_OPTIONS)
        for data in files:
            writer.write(data)
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_shard(directory: pathlib.Path, plan: Plan, digest: str, i: int, count: int, start: int,
                items: np.ndarray, labels: np.ndarray, fitted: Optional[dict] = None) -> dict:
    """Encodes and writes shard `i`: records, then labels and bits, then its pending entry (which says it is done).
    `items`: an array or lazy items (`data.items`), decoded here."""
    files, payloads, level_bits = encode_items(plan, items, fitted)
    meta = np.zeros(len(files), META_DTYPE)
    meta["label"] = labels
    meta["file_bits"] = [8 * len(f) for f in files]
    meta["payload_bits"] = [np.nan if p is None else 8 * p for p in payloads]
    meta["level_bits"], meta["level_payload_bits"] = level_bits
    paths = _paths(directory, i, count)
    for stale in directory.glob(f".{paths['records'].name}.*.tmp"):  # left by a killed build of this shard
        stale.unlink(missing_ok=True)
    _write_records(paths["records"], files)
    atomic_io.write_npy(paths["meta"], meta)
    entry = {"digest": digest, "shard": i, "num_shards": count, "start": start, "stop": start + len(files),
             "records": len(files), "record_bytes": sum(len(f) for f in files),
             "payload_bits": None if any(p is None for p in payloads) else 8 * sum(payloads),
             "bytes": paths["records"].stat().st_size, "sha256": _sha256(paths["records"]),
             "meta_bytes": paths["meta"].stat().st_size, "meta_sha256": _sha256(paths["meta"])}
    atomic_io.write_json(paths["entry"], entry)
    return entry


def check_shard(directory: pathlib.Path, digest: str, i: int, count: int, bounds: Tuple[int, int],
                full: bool = True) -> Tuple[Optional[dict], str]:
    """(shard i's pending entry, "") when its files are those the entry describes (`full`: their SHA-256 too, else
    sizes only), or (None, why not)."""
    paths = _paths(directory, i, count)
    try:
        entry = json.loads(paths["entry"].read_text())
    except FileNotFoundError:
        return None, "missing"
    except (ValueError, OSError) as e:
        return None, f"has an unreadable entry ({e})"
    if (entry.get("digest"), entry.get("start"), entry.get("stop")) != (digest, *bounds):
        return None, "belongs to another level or sharding"
    for name, size, sha in (("records", "bytes", "sha256"), ("meta", "meta_bytes", "meta_sha256")):
        path = paths[name]
        if not path.exists():
            return None, f"has no {path.name}"
        if path.stat().st_size != entry[size]:
            return None, f"has {path.name} of {path.stat().st_size} bytes, not {entry[size]} (truncated or foreign)"
        if full and _sha256(path) != entry[sha]:
            return None, f"has {path.name} whose SHA-256 differs from its entry (foreign)"
    return entry, ""


def _build_all(tasks: list, workers: int) -> list:
    """Runs `build_shard(*task())` for each task over `workers` processes (here when 1); a task makes its shard's
    arguments when it is sent, at most two per worker in flight, so a big level is never all in memory at once."""
    workers = max(1, min(workers, len(tasks)))
    if workers == 1:
        return [build_shard(*make()) for make in tasks]
    entries, pending, todo = [], set(), list(tasks)
    # Spawned, not forked: safe beside JAX's threads (as mp3.compress).
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        while todo or pending:
            while todo and len(pending) < 2 * workers:
                pending.add(pool.submit(build_shard, *todo.pop(0)()))
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            entries += [future.result() for future in done]
    return entries


def _rates(plan: Plan, records: int, record_bytes: int, payload_bits: Optional[int]) -> dict:
    """Mean bits per item from the stored files (file bits = 8 * bytes of the record), per pixel or second."""
    file_bits = 8 * record_bytes / records
    payload = None if payload_bits is None else payload_bits / records
    rates = {"file_bits_per_item": file_bits, "payload_bits_per_item": payload}
    if plan.modality == "image":
        pixels = plan.item_shape[0] * plan.item_shape[1]
        rates.update(bits_per_pixel=file_bits / pixels, payload_bits_per_pixel=None if payload is None
                     else payload / pixels)
    else:
        seconds = plan.item_shape[0] / plan.sample_rate
        rates.update(bits_per_second=file_bits / seconds, payload_bits_per_second=None if payload is None
                     else payload / seconds)
    return rates


def finish(directory: pathlib.Path, plan: Plan, key: dict, bounds: list) -> Optional[dict]:
    """Writes index.json when every shard matches its pending entry (sizes; each builder checked its own shards'
    SHA-256) and returns it; None while some shard is missing."""
    digest, count, entries = key_digest(key), len(bounds), []
    for i, span in enumerate(bounds):
        entry, _ = check_shard(directory, digest, i, count, span, full=False)
        if entry is None:
            return None
        entries.append(entry)
    records = sum(e["records"] for e in entries)
    record_bytes = sum(e["record_bytes"] for e in entries)
    payload = None if any(e["payload_bits"] is None for e in entries) else sum(e["payload_bits"] for e in entries)
    names = [_paths(directory, i, count) for i in range(count)]
    shards = [{"file": names[i]["records"].name, "meta": names[i]["meta"].name, "num_records": e["records"],
               "start": e["start"], "bytes": e["bytes"], "sha256": e["sha256"],
               "meta_bytes": e["meta_bytes"], "meta_sha256": e["meta_sha256"]} for i, e in enumerate(entries)]
    index = dict(dataclasses.asdict(plan), item_shape=list(plan.item_shape), store_format=STORE_FORMAT,
                 digest=digest, key=key, writer_options=WRITER_OPTIONS, meta_fields=list(META_DTYPE.names),
                 num_records=records, record_bytes=record_bytes, stored_bytes=sum(e["bytes"] for e in entries),
                 shards=shards, rates=_rates(plan, records, record_bytes, payload))
    path = directory / INDEX_FILE
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        atomic_io.write_text(path, text)
    return index


def build(directory, x, y, quantizer: Optional[str], level, options: Optional[dict] = None, *,
          sample_rate: Optional[int] = None, shard_size: int = SHARD_SIZE, workers: Optional[int] = None,
          process_index: int = 0, process_count: int = 1, fingerprint: Optional[str] = None,
          fitted: Optional[dict] = None) -> Optional[dict]:
    """Writes `x` (uint8 images or float waveforms; anything sliced as x[a:b], e.g. np.memmap, or lazy items
    (`data.items.LazyItems`), each shard decoded by its builder) with labels `y` at
    `level` of `quantizer` ("raw": kept losslessly) into `directory`, one folder per level.

    This process builds shards i with i % process_count == process_index over `workers` local processes (default
    all cores), skipping those already there and whole, then writes the index if every shard is present. Returns
    the index, or None while other processes' shards are missing. `fingerprint`: the data's digest when known
    (default: a hash of x and y); `fitted`: a fitted quantizer's state (learned JPEG tables), keyed by its digest.
    A quantizer with no file format (the JAX JPEG codec, bit depth) runs in this process, batched by shard: its
    compiled program is not rebuilt in every worker.
    """
    directory = pathlib.Path(directory)
    if len(x) != len(y):
        raise UserError(f"a level store needs one label per item; got {len(x)} items and {len(y)} labels")
    if not 0 <= process_index < process_count:
        raise UserError(f"process_index={process_index} must be in [0, process_count={process_count})")
    plan = make_plan(x, quantizer, level, options, sample_rate, fitted)
    key = level_key(plan, fingerprint or content_digest((np.asarray(x), np.asarray(y))))
    digest = key_digest(key)
    index_path = directory / INDEX_FILE
    if index_path.exists():
        other = json.loads(index_path.read_text()).get("digest")
        if other != digest:
            raise UserError(f"{directory} holds another level store (digest {other}, not {digest}); build each "
                            "level into its own folder, or delete that one")
    directory.mkdir(parents=True, exist_ok=True)
    bounds = shard_bounds(len(x), shard_size)
    count, tasks = len(bounds), []
    for i in range(process_index, count, process_count):
        entry, why = check_shard(directory, digest, i, count, bounds[i])
        if entry is None:
            if why != "missing":
                log.warning("level store %s: shard %d %s; rebuilding it", directory, i, why)
            start, stop = bounds[i]
            # deferred, so only the shards in flight are in memory; lazy items are decoded by the shard's builder
            tasks.append(lambda i=i, start=start, stop=stop: (
                directory, plan, digest, i, count, start,
                x.take(np.arange(start, stop)) if is_lazy(x) else np.asarray(x[start:stop]),
                np.asarray(y[start:stop]), fitted))
    in_process = plan.level != RAW and plan.quantizer not in OWN_FILES
    _build_all(tasks, 1 if in_process else workers or os.cpu_count() or 1)
    return finish(directory, plan, key, bounds)


# ---- reading -----------------------------------------------------------------------------------------------------

class LevelStore:
    """A built level: `store[i]` is (item i's file, its label), `store.decode(i)` its pixels or samples. A grain
    RandomAccessDataSource (`grain.MapDataset.source(store)`); picklable: shards are opened on first read in each
    process."""

    def __init__(self, directory, digest: Optional[str] = None):
        self.directory = pathlib.Path(directory)
        path = self.directory / INDEX_FILE
        if not path.is_file():
            raise UserError(f"no level store at {self.directory} (no {INDEX_FILE}); build it with "
                            "helmjax.data.level_store.build, on every process when split over hosts")
        self.index = json.loads(path.read_text())
        if self.index.get("store_format") != STORE_FORMAT:
            raise UserError(f"{path} is level store format {self.index.get('store_format')}, this helmjax reads "
                            f"{STORE_FORMAT}; rebuild the store")
        if digest is not None and self.index["digest"] != digest:
            raise UserError(f"{self.directory} holds level {self.index['digest']}, not {digest}; rebuild it")
        for shard in self.index["shards"]:
            for name, size in ((shard["file"], shard["bytes"]), (shard["meta"], shard["meta_bytes"])):
                actual = (self.directory / name).stat().st_size if (self.directory / name).exists() else None
                if actual != size:
                    raise UserError(f"{self.directory / name} is {actual} bytes, the index says {size} (missing, "
                                    "truncated or foreign); run level_store.build again to rebuild it")
        self.plan = Plan.from_index(self.index)
        self._starts = np.cumsum([0] + [s["num_records"] for s in self.index["shards"]]).tolist()
        self._readers, self._meta = {}, None

    def __len__(self) -> int:
        return self.index["num_records"]

    def __repr__(self) -> str:
        return f"LevelStore({str(self.directory)!r}: {len(self)} {self.plan.format} files, {self.plan.quantizer} " \
               f"{self.plan.level})"

    def __getstate__(self):
        return dict(self.__dict__, _readers={}, _meta=None)

    def _shard(self, i: int) -> Tuple[int, int]:
        i = operator.index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"record {i} of a store of {len(self)}")
        i %= len(self)
        shard = bisect.bisect_right(self._starts, i) - 1
        return shard, i - self._starts[shard]

    def _reader(self, shard: int):
        if shard not in self._readers:
            from array_record.python.array_record_module import ArrayRecordReader
            path = self.directory / self.index["shards"][shard]["file"]
            self._readers[shard] = ArrayRecordReader(str(path), READER_OPTIONS)
        return self._readers[shard]

    @property
    def meta(self) -> np.ndarray:
        """(N,) records of label, file_bits, payload_bits (NaN where not separable), from the shards' .npy."""
        if self._meta is None:
            self._meta = np.concatenate([np.load(self.directory / s["meta"]) for s in self.index["shards"]])
        return self._meta

    @property
    def labels(self) -> np.ndarray:
        return self.meta["label"]

    @property
    def level_bits(self) -> np.ndarray:
        """(2, N) what each item costs at this level: bits, payload bits (NaN where not separable)."""
        return np.stack([self.meta["level_bits"], self.meta["level_payload_bits"]])

    @property
    def rates(self) -> dict:
        """Mean file and payload bits per item, and per pixel (images) or second (audio)."""
        return dict(self.index["rates"])

    def __getitem__(self, i) -> Tuple[bytes, int]:
        shard, j = self._shard(i)
        return self._reader(shard).read([j])[0], int(self.labels[self._starts[shard] + j])

    def decode(self, i) -> np.ndarray:
        """Item i as the in-memory quantizer gives it: uint8 (H, W[, C]) image or float32 (T,) waveform."""
        return decode_file(self.plan, self[i][0])
