"""CIFAR-10 loaders: the lossless subset against the shared data, and clear errors for missing or bad files."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helmjax.data import cifar10
from helmjax.errors import UserError


def test_subset_shapes_labels_and_known_pixels(shared_data):
    ds = cifar10.load_subset(shared_data)
    assert ds.x_train.shape == (5170, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (1017, 32, 32, 3) and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert ds.classes == cifar10.CLASSES and ds.skipped == 0
    # Canonical first labels of data_batch_1 (frog, truck, truck) and test_batch (cat, ship, ship).
    assert ds.y_train[:3].tolist() == [6, 9, 9]
    assert ds.y_test[:3].tolist() == [3, 8, 8]
    assert np.bincount(ds.y_train).tolist() == [521, 534, 497, 505, 540, 484, 515, 524, 537, 513]
    assert np.bincount(ds.y_test).tolist() == [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]


def test_subset_is_found_through_the_environment_and_the_cifar10_folder(shared_data, monkeypatch):
    monkeypatch.setenv("HELMJAX_DATA_DIR", str(shared_data))
    a = cifar10.load_subset()
    b = cifar10.load_subset(shared_data / "cifar10")
    assert hashlib.sha256(a.x_train.tobytes()).digest() == hashlib.sha256(b.x_train.tobytes()).digest()


def test_missing_subset_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(UserError) as e:
        cifar10.load_subset(tmp_path)
    message = str(e.value)
    assert str(tmp_path / "cifar10" / "cifar10_lossless_subset.npz") in message
    assert "HELMJAX_DATA_DIR" in message and "\n" not in message


def _write_subset(path, y_train, x_train=None):
    n = len(y_train)
    x_train = np.zeros((n, 32, 32, 3), np.uint8) if x_train is None else x_train
    (path / "cifar10").mkdir(exist_ok=True)
    np.savez(path / "cifar10" / "cifar10_lossless_subset.npz", x_train=x_train, y_train=y_train,
             x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.zeros(1, np.uint8), classes=np.array(cifar10.CLASSES))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=20))
def test_labels_outside_range_are_refused_and_in_range_kept(tmp_path_factory, labels):
    d = tmp_path_factory.mktemp("subset")
    _write_subset(d, np.asarray(labels, np.int16))
    if all(0 <= v < 10 for v in labels):
        assert cifar10.load_subset(d).y_train.tolist() == labels
    else:
        with pytest.raises(UserError, match="labels outside 0..9"):
            cifar10.load_subset(d)


def test_wrong_shapes_missing_keys_and_damaged_file_are_user_errors(tmp_path):
    _write_subset(tmp_path, np.zeros(2, np.uint8), x_train=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(UserError, match="expected uint8"):
        cifar10.load_subset(tmp_path)
    np.savez(tmp_path / "cifar10" / "cifar10_lossless_subset.npz", x_train=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(UserError, match="lacks the array"):
        cifar10.load_subset(tmp_path)
    path = tmp_path / "cifar10" / "cifar10_lossless_subset.npz"
    _write_subset(tmp_path, np.zeros(2, np.uint8))
    path.write_bytes(path.read_bytes()[:300])  # truncated copy
    with pytest.raises(UserError, match="damaged"):
        cifar10.load_subset(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(UserError, match="damaged"):
        cifar10.load_subset(tmp_path)


def _small_jpeg_tree(shared_data, dest, per_class=4):
    """A copy of the real tree holding its first `per_class` files of each class and split (one streaming pass)."""
    kept = {}
    with tarfile.open(shared_data / cifar10.JPEG_TREE_FILE, "r|gz") as tar, tarfile.open(dest, "w:gz") as out:
        for member in tar:
            folder = member.name.rsplit("/", 1)[0]
            if member.isfile() and kept.get(folder, 0) < per_class:
                kept[folder] = kept.get(folder, 0) + 1
                out.addfile(member, tar.extractfile(member))
    return kept


def test_jpeg_tree_counts_class_order_and_canonical_numbering(shared_data, tmp_path):
    """Real files from the 60k tree (4 per class and split; the whole tree loads in bench_data.py)."""
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    kept = _small_jpeg_tree(shared_data, tmp_path / "data" / cifar10.JPEG_TREE_FILE)
    assert len(kept) == 20
    cache = tmp_path / "cache"
    ds = cifar10.load_jpeg_tree(tmp_path / "data", cache_dir=cache)
    assert ds.name == "cifar10_jpeg75" and ds.classes == cifar10.CLASSES and ds.skipped == 0
    assert ds.x_train.shape == (40, 32, 32, 3) and ds.x_test.shape == (40, 32, 32, 3)
    assert ds.y_train.tolist() == [c for c in range(10) for _ in range(4)] == ds.y_test.tolist()
    # The subset's first 1102 train images are data_batch_1's first: the k-th of class c there is
    # train/<c>/000k.jpg, a JPEG-75 copy (about 30 dB), far closer to it than to the next image of its class.
    subset = cifar10.load_subset(shared_data)
    for c in range(10):
        originals = subset.x_train[:1102][subset.y_train[:1102] == c][:4].astype(np.int32)
        copies = ds.x_train[ds.y_train == c].astype(np.int32)
        same = np.abs(originals - copies).mean(axis=(1, 2, 3))
        shifted = np.abs(originals - np.roll(copies, 1, axis=0)).mean(axis=(1, 2, 3))
        assert same.max() < 12 and shifted.min() > 3 * same.max(), (c, same, shifted)
    for original, copy in ((subset.x_test[0], ds.x_test[3 * 4]), (subset.x_test[1], ds.x_test[8 * 4])):
        assert np.abs(original.astype(np.int32) - copy).mean() < 12  # test_batch: cat 0, ship 0
    cached = cifar10.load(source="jpeg", data_dir=tmp_path / "data", cache_dir=cache)
    np.testing.assert_array_equal(cached.x_test, ds.x_test)
    assert len(list(cache.glob("*.json"))) == 1 and len(list(cache.glob("*.tar"))) == 1  # the check, the plain tar
    # auto with no prepared tfds copy falls back to the tree.
    auto = cifar10.load(data_dir=tmp_path / "data", tfds_data_dir=tmp_path / "no_tfds", cache_dir=cache)
    assert auto.name == "cifar10_jpeg75" and len(auto.x_train) == 40



def test_jpeg_tree_with_other_class_folders_is_refused(tmp_path):
    from PIL import Image
    tree = tmp_path / "tree"
    for name in ("train/cats/1.png", "train/dogs/1.png", "test/cats/1.png", "test/dogs/1.png"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32)).save(tree / name)
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    with tarfile.open(tmp_path / "data" / cifar10.JPEG_TREE_FILE, "w:gz") as tar:
        tar.add(tree / "train", arcname="train")
        tar.add(tree / "test", arcname="test")
    with pytest.raises(UserError, match="expected CIFAR-10's"):
        cifar10.load_jpeg_tree(tmp_path / "data")


def test_load_with_no_source_lists_where_it_looked_and_how_to_get_each(tmp_path):
    with pytest.raises(UserError) as e:
        cifar10.load(data_dir=tmp_path / "data", tfds_data_dir=tmp_path / "tfds")
    message = str(e.value)
    for part in (str(tmp_path / "tfds"), str(tmp_path / "data" / "cifar10" / "cifar10_jpeg75.tar.gz"),
                 "python -m helmjax.data.tfds_cifar10", "subset"):
        assert part in message
    with pytest.raises(UserError, match=str(tmp_path / "data" / "cifar10" / "cifar10_jpeg75.tar.gz")):
        cifar10.load(source="jpeg", data_dir=tmp_path / "data")
    with pytest.raises(UserError, match="unknown CIFAR-10 source 'tfrecords'"):
        cifar10.load(source="tfrecords")


def test_an_uncompressed_subset_file_is_read_on_demand_with_the_same_pixels(shared_data, tmp_path):
    from helmjax.data.items import NpzRows
    ref = cifar10.load_subset(shared_data)
    assert isinstance(ref.x_train, np.ndarray)  # the shipped file is deflated: loaded
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / cifar10.SUBSET_FILE, x_train=ref.x_train, y_train=ref.y_train, x_test=ref.x_test,
             y_test=ref.y_test, classes=np.array(cifar10.CLASSES))
    ds = cifar10.load_subset(tmp_path)
    assert isinstance(ds.x_train, NpzRows) and isinstance(ds.y_train, np.ndarray)
    rows = np.array([5169, 3, 0])
    np.testing.assert_array_equal(ds.x_train[rows], ref.x_train[rows])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ds.x_test.take(rows % 1017)))[:], ref.x_test[rows % 1017])
    np.testing.assert_array_equal(ds.x_test, ref.x_test)
