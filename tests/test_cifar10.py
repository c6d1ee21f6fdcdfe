"""CIFAR-10 loaders: the lossless subset against the shared data, and clear errors for missing or bad files."""

import hashlib

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
