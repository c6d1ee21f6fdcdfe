"""The level store: files that decode to exactly the in-memory quantizers' output, rates from the stored bytes,
resumable and split builds that make the same bytes, and records any reader opens with array_record and Pillow."""

import io
import json
import pathlib
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from helmjax.data import level_store
from helmjax.data.level_store import LevelStore
from helmjax.errors import UserError
from helmjax.layout import RAW
from helmjax.paths import data_dir
from helmjax.quantizers import registry

SHARD = 16  # 40 items -> shards of 16, 16 and 8


@pytest.fixture(scope="module")
def crops():
    """40 crops of 32x32 from the first 10 Kodak photos (4 each, at fixed places); label = photo % 4."""
    kodak = data_dir() / "kodak"
    if not kodak.is_dir():
        pytest.skip(f"Kodak photos not found at {kodak}; set HELMJAX_DATA_DIR to the folder holding kodak/")
    x, y = [], []
    for n in range(1, 11):
        photo = np.asarray(Image.open(kodak / f"kodim{n:02d}.png").convert("RGB"))
        for r, c in ((0, 0), (100, 200), (200, 100), (300, 330)):
            x.append(photo[r:r + 32, c:c + 32])
            y.append(n % 4)
    return np.stack(x), np.asarray(y, np.int64)


def _spec_or_skip(name):
    try:
        return registry.get(name)
    except UserError as e:  # a codec this imagecodecs build lacks
        pytest.skip(str(e))


def _files(directory: pathlib.Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def jpeg50(crops, tmp_path_factory):
    """The reference store (pillow_jpeg quality 50), built over 2 local processes."""
    directory = tmp_path_factory.mktemp("stores") / "q50"
    x, y = crops
    index = level_store.build(directory, x, y, "pillow_jpeg", 50, shard_size=SHARD, workers=2)
    return directory, index


@pytest.mark.parametrize("quantizer, level, fmt", [
    ("pillow_jpeg", 20, "jpeg"), ("pillow_jpeg", 90, "jpeg"), ("webp", 60, "webp"), ("avif", 50, "avif"),
    ("jpegxl", 2.0, "jxl"), ("jpeg2000", 35.0, "j2k"), ("bitdepth", 3, "png"), (None, RAW, "png")])
def test_stored_files_decode_to_the_in_memory_quantizer_and_rates_come_from_their_bytes(
        crops, tmp_path, quantizer, level, fmt):
    x, y = crops
    index = level_store.build(tmp_path, x, y, quantizer, level, shard_size=SHARD, workers=1)
    store = LevelStore(tmp_path, digest=index["digest"])
    assert index["format"] == fmt and len(store) == 40 and [s["num_records"] for s in index["shards"]] == [16, 16, 8]

    expected = x if level == RAW else _spec_or_skip(quantizer).apply(x, level)
    decoded = np.stack([store.decode(i) for i in range(len(store))])
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, x if level == RAW else expected.data)

    records = [store[i][0] for i in range(len(store))]
    file_bits = np.array([8 * len(r) for r in records])
    assert np.array_equal(store.meta["file_bits"], file_bits)
    if quantizer in level_store.OWN_FILES:  # the quantizer reports its file's size: the stored file is that file
        assert np.array_equal(file_bits, expected.bits_per_item)
        if expected.payload_bits is not None:
            assert np.array_equal(store.meta["payload_bits"], expected.payload_bits)
            assert store.rates["payload_bits_per_item"] == np.mean(expected.payload_bits)
    if quantizer not in level_store.OWN_FILES or expected.payload_bits is None:
        assert np.isnan(store.meta["payload_bits"]).all() and store.rates["payload_bits_per_item"] is None
    # what the level costs: the file for a codec's own file and for raw, else what the quantizer counts
    charged = file_bits if quantizer in level_store.OWN_FILES or level == RAW else expected.bits_per_item
    assert np.array_equal(store.level_bits[0], np.full(40, np.nan) if charged is None else charged, equal_nan=True)
    assert store.rates["file_bits_per_item"] == np.mean(file_bits)
    assert store.rates["bits_per_pixel"] == np.mean(file_bits) / (32 * 32)
    assert index["record_bytes"] == sum(map(len, records))
    assert index["stored_bytes"] == sum((tmp_path / s["file"]).stat().st_size for s in index["shards"])
    assert np.array_equal(store.labels, y) and [store[i][1] for i in (0, 17, 39)] == [y[0], y[17], y[39]]


def test_a_killed_build_resumes_at_the_missing_shards_and_makes_the_same_bytes(jpeg50, crops, tmp_path):
    reference, index = jpeg50
    directory = tmp_path / "q50"
    shutil.copytree(reference, directory)
    # killed: before the index, during shard 2 (a temp file left, nothing renamed) and after shard 1's records
    # were renamed but before its pending entry was written
    (directory / "index.json").unlink()
    for suffix in (".array_record", ".npy", ".json"):
        (directory / f"shard-00002-of-00003{suffix}").unlink()
    (directory / ".shard-00002-of-00003.array_record.999.tmp").write_bytes(b"half a shard")
    (directory / "shard-00001-of-00003.json").unlink()
    untouched = (directory / "shard-00000-of-00003.array_record").stat()

    x, y = crops
    assert level_store.build(directory, x, y, "pillow_jpeg", 50, shard_size=SHARD, workers=1) == index
    assert _files(directory) == _files(reference)
    after = (directory / "shard-00000-of-00003.array_record").stat()
    assert (after.st_ino, after.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)  # not rebuilt


def test_a_truncated_or_foreign_shard_is_detected_and_rebuilt(jpeg50, crops, tmp_path, caplog):
    reference, index = jpeg50
    directory = tmp_path / "q50"
    shutil.copytree(reference, directory)
    shard1 = directory / "shard-00001-of-00003.array_record"
    shard1.write_bytes(shard1.read_bytes()[:1000])
    with pytest.raises(UserError, match="truncated"):
        LevelStore(directory)
    # foreign: same size, other bytes (only the SHA-256 against the pending entry tells)
    shard0 = directory / "shard-00000-of-00003.array_record"
    flipped = bytearray(shard0.read_bytes())
    flipped[3000] ^= 0xFF
    shard0.write_bytes(bytes(flipped))

    x, y = crops
    assert level_store.build(directory, x, y, "pillow_jpeg", 50, shard_size=SHARD, workers=1) == index
    assert _files(directory) == _files(reference)
    assert "shard 0 has shard-00000-of-00003.array_record whose SHA-256 differs" in caplog.text
    assert "shard 1 has shard-00001-of-00003.array_record of 1000 bytes" in caplog.text
    assert np.array_equal(LevelStore(directory).decode(20), registry.get("pillow_jpeg").apply(x[20:21], 50).data[0])


def test_two_processes_build_what_one_builds(jpeg50, crops, tmp_path):
    reference, index = jpeg50
    x, y = crops
    first = level_store.build(tmp_path, x, y, "pillow_jpeg", 50, shard_size=SHARD, workers=1,
                              process_index=0, process_count=2)
    assert first is None and not (tmp_path / "index.json").exists()  # shard 1 is the other process's
    assert sorted(p.name for p in tmp_path.glob("*.array_record")) == ["shard-00000-of-00003.array_record",
                                                                      "shard-00002-of-00003.array_record"]
    second = level_store.build(tmp_path, x, y, "pillow_jpeg", 50, shard_size=SHARD, workers=1,
                               process_index=1, process_count=2)
    assert second == index and _files(tmp_path) == _files(reference)


def test_records_read_with_array_record_pillow_and_numpy_alone(jpeg50, crops):
    from array_record.python.array_record_module import ArrayRecordReader
    from grain.python import ArrayRecordDataSource
    directory, _ = jpeg50
    x, y = crops
    index = json.loads((directory / "index.json").read_text())
    pixels, labels, records = [], [], []
    for shard in index["shards"]:
        reader = ArrayRecordReader(str(directory / shard["file"]))
        for record in reader.read(list(range(reader.num_records()))):
            records.append(record)
            pixels.append(np.asarray(Image.open(io.BytesIO(record))))
        labels.append(np.load(directory / shard["meta"])["label"])
    assert np.array_equal(np.stack(pixels), registry.get("pillow_jpeg").apply(x, 50).data)
    assert np.array_equal(np.concatenate(labels), y)
    source = ArrayRecordDataSource([str(directory / s["file"]) for s in index["shards"]])
    assert len(source) == 40 and [source[i] for i in (0, 16, 39)] == [records[0], records[16], records[39]]


def test_the_store_is_a_picklable_grain_source(jpeg50):
    import grain
    store = LevelStore(jpeg50[0])
    first = store[5]  # opens a shard: the copy must open its own
    copy = pickle.loads(pickle.dumps(store))
    assert copy[5] == first and copy[-1] == store[39] and len(copy) == 40
    with pytest.raises(IndexError):
        copy[40]
    assert grain.MapDataset.source(copy)[21] == store[21]


def test_another_level_or_digest_is_refused(jpeg50, crops):
    directory, index = jpeg50
    x, y = crops
    with pytest.raises(UserError, match="another level store"):
        level_store.build(directory, x, y, "pillow_jpeg", 20, shard_size=SHARD, workers=1)
    with pytest.raises(UserError, match="not 0+; rebuild"):
        LevelStore(directory, digest="0" * 24)


def test_mp3_and_raw_audio_stores_decode_to_the_in_memory_output(tmp_path):
    from helmjax.data.audio_folder import read_clips
    folder = data_dir() / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"FSDD not found at {folder}; set HELMJAX_DATA_DIR to the folder holding fsdd/recordings/")
    x, _, rate, _ = read_clips(sorted(folder.glob("*.wav"))[:6], sample_rate=8000, duration_s=0.5)
    y = np.arange(6) % 2
    index = level_store.build(tmp_path / "kbps32", x, y, "mp3", 32, sample_rate=rate, shard_size=4, workers=1)
    store = LevelStore(tmp_path / "kbps32")
    expected = registry.get("mp3").apply(x, 32, sample_rate=rate, workers=1)
    assert index["format"] == "mp3" and index["options"] == {"sample_rate": 8000}
    assert np.array_equal(np.stack([store.decode(i) for i in range(6)]), expected.data)
    file_bits = np.array([8 * len(store[i][0]) for i in range(6)])
    assert np.array_equal(file_bits, expected.bits_per_item)
    assert np.array_equal(store.meta["payload_bits"], expected.payload_bits, equal_nan=True)
    assert store.rates["bits_per_second"] == np.mean(file_bits) / 0.5

    raw = level_store.build(tmp_path / "raw", x, y, None, RAW, sample_rate=rate, shard_size=4, workers=1)
    decoded = np.stack([LevelStore(tmp_path / "raw").decode(i) for i in range(6)])
    assert raw["format"] == "flac" and decoded.dtype == np.float32 and np.array_equal(decoded, x)


def test_audio_off_the_16_bit_grid_is_kept_exactly_as_float_wav(tmp_path):
    x = np.full((2, 100), 0.1, np.float32)  # 0.1 * 32768 is not a whole number: 16-bit FLAC would change it
    index = level_store.build(tmp_path, x, np.zeros(2), None, RAW, sample_rate=8000, workers=1)
    store = LevelStore(tmp_path)
    assert index["format"] == "wav" and "32-bit float WAV" in index["version"]
    assert np.array_equal(np.stack([store.decode(i) for i in range(2)]), x)
