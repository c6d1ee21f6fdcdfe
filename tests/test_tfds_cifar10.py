"""The tfds path without TensorFlow: prepare cifar10 from the local subset, read it back through load_tfds."""

import json
import logging
import pickle
import shutil

import numpy as np
import pytest

from helmjax.data import cifar10, tfds_cifar10
from helmjax.errors import UserError

pytest.importorskip("tensorflow_datasets", reason="the tfds path needs tensorflow-datasets (in requirements.txt)")


def _has_tensorflow() -> bool:
    try:
        import tensorflow  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from helmjax.paths import data_dir
    if not (data_dir() / cifar10.SUBSET_FILE).is_file():
        pytest.skip(f"shared data not found at {data_dir()}; set HELMJAX_DATA_DIR to the folder holding cifar10/")
    tfds_dir = tmp_path_factory.mktemp("tfds")
    folder = tfds_cifar10.prepare(tfds_dir, source="subset")
    return tfds_dir, folder


@pytest.mark.slow
def test_prepared_subset_reads_back_pixel_equal_in_canonical_order(prepared):
    tfds_dir, folder = prepared
    assert folder == tfds_dir / "cifar10" / "3.0.2"
    assert sorted(p.name for p in folder.glob("*.array_record*")) == [
        "cifar10-test.array_record-00000-of-00001", "cifar10-train.array_record-00000-of-00001"]
    assert tfds_cifar10.prepared_source(folder) == "subset"
    ds = cifar10.load_tfds(tfds_dir)
    ref = cifar10.load_subset()
    assert ds.classes == cifar10.CLASSES and ds.name == "cifar10_tfds"
    for got, want in ((ds.x_train, ref.x_train), (ds.y_train, ref.y_train), (ds.x_test, ref.x_test),
                      (ds.y_test, ref.y_test)):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    auto = cifar10.load(tfds_data_dir=tfds_dir)  # auto prefers a prepared tfds copy
    np.testing.assert_array_equal(auto.x_test, ref.x_test)
    # read on demand: rows come from the data source, and a worker's pickled share reads the same pixels
    assert isinstance(ds.x_train, cifar10.TfdsImages)
    rows = np.array([5169, 0, 1102])
    share = pickle.loads(pickle.dumps(ds.x_train.take(rows)))
    np.testing.assert_array_equal(share[:], ref.x_train[rows])
    assert share.digest != ds.x_train.digest


def test_records_carry_genuine_tfds_ids(prepared):
    import tensorflow_datasets as tfds
    tfds_dir, _ = prepared
    source = tfds.data_source("cifar10", data_dir=str(tfds_dir), download=False, split="train",
                              decoders={"image": tfds.decode.SkipDecoding()})
    ids = {r["id"].decode() if isinstance(r["id"], bytes) else r["id"] for r in source.__getitems__(range(len(source)))}
    want_train, _ = tfds_cifar10.subset_ids(5170, 1017)
    assert ids == set(want_train) and {"train_01101", "train_10000", "train_41016"} <= ids
    assert "train_01102" not in ids


def test_preparing_again_is_a_no_op_and_another_source_is_refused(prepared):
    tfds_dir, folder = prepared
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert tfds_cifar10.prepare(tfds_dir, source="subset") == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    with pytest.raises(UserError, match="already holds a tfds cifar10 .from subset"):
        tfds_cifar10.prepare(tfds_dir, source="jpeg")
    with pytest.raises(UserError, match="unknown source"):
        tfds_cifar10.prepare(tfds_dir, source="npz")


def test_missing_tfds_copy_is_one_line_naming_the_prepare_command(tmp_path):
    with pytest.raises(UserError) as e:
        cifar10.load_tfds(tmp_path)
    message = str(e.value)
    assert str(tmp_path) in message and "python -m helmjax.data.tfds_cifar10" in message and "\n" not in message
    assert not list(tmp_path.rglob("*.tmp.*"))  # nothing was downloaded


@pytest.mark.skipif(_has_tensorflow(), reason="checks the message given when TensorFlow is absent")
def test_download_without_tensorflow_says_what_to_install_without_touching_the_network(tmp_path):
    with pytest.raises(UserError, match="pip install tensorflow"):
        cifar10.load_tfds(tmp_path, download=True)
    assert not (tmp_path / "downloads").exists() or not any((tmp_path / "downloads").iterdir())


@pytest.mark.skipif(_has_tensorflow(), reason="checks the message given when TensorFlow is absent")
def test_tfrecord_copy_without_tensorflow_is_a_user_error_and_auto_passes_it_over(prepared, tmp_path, caplog):
    tfds_dir, folder = prepared
    copy = tmp_path / "tfds" / "cifar10" / "3.0.2"
    shutil.copytree(folder, copy)
    info_path = copy / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["fileFormat"] = "tfrecord"
    info_path.write_text(json.dumps(info))
    caplog.set_level(logging.WARNING, logger="helmjax.data.cifar10")
    with pytest.raises(UserError, match="stored as tfrecord, which only TensorFlow reads"):
        cifar10.load_tfds(tmp_path / "tfds")
    # auto: the unusable tfds copy is passed over (with a warning) for the next source, absent here.
    with pytest.raises(UserError, match="no CIFAR-10 found"):
        cifar10.load(data_dir=tmp_path / "empty", tfds_data_dir=tmp_path / "tfds")
    assert "not using the tfds cifar10" in caplog.text


def test_command_line_reports_and_fails_with_one_line(prepared, tmp_path, capsys, shared_data):
    tfds_dir, folder = prepared
    tfds_cifar10.main([f"--tfds_data_dir={tfds_dir}", "--source=subset", f"--data_dir={shared_data}"])
    assert f"ready at {folder}" in capsys.readouterr().out  # already prepared: a no-op
    with pytest.raises(SystemExit) as e:
        tfds_cifar10.main([f"--tfds_data_dir={tmp_path / 'x'}", f"--data_dir={tmp_path / 'nothing'}"])
    assert e.value.code == 2
    out = capsys.readouterr().out
    assert out.startswith("error: CIFAR-10 lossless subset not found") and str(tmp_path / "nothing") in out
