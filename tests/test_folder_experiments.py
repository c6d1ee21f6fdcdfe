"""Folder-based large-scale sets: the image folder's shorter-side resize, ILSVRC-2012 as distributed
(`data.ilsvrc`), and the experiments on them (`imagenet_q_sweep`, `cowc_q_sweep`) end to end on fake folders made of
Kodak crops."""

import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from helmjax import config as config_lib
from helmjax.data import image_folder
from helmjax.data.ilsvrc import load_ilsvrc
from helmjax.data.image_folder import decode_image, load_image_folder
from helmjax.data.items import LazyItems
from helmjax.errors import UserError
from helmjax.sweeps import sweep

QUIET = dict(progress=False, log=lambda *_: None)
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331"]  # sorted, as the labels


def _encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _kodak_crops(kodak, n: int, shapes=((60, 80), (80, 60))):
    """n different crops of the Kodak photos, cycling through `shapes` (height, width)."""
    photos = [np.asarray(Image.open(kodak / f"kodim{i:02d}.png").convert("RGB")) for i in range(1, 7)]
    for k in range(n):
        photo, (h, w) = photos[k % len(photos)], shapes[k % len(shapes)]
        top, left = (37 * k) % (photo.shape[0] - h), (53 * k) % (photo.shape[1] - w)
        yield photo[top:top + h, left:left + w]


def _val_name(i: int) -> str:
    return f"ILSVRC2012_val_{i:08d}"


def make_ilsvrc(root, kodak, labels: str = "csv", per_class: int = 4, val_per_class: int = 2) -> dict:
    """train/<wnid>/*.JPEG and a flat val/ of JPEG crops with its labels file ("csv": LOC_val_solution.csv, "txt":
    val_labels.txt, "none"); returns {val image name: wnid}. Val labels interleave the classes (name order is not
    class order)."""
    crops = _kodak_crops(kodak, len(WNIDS) * (per_class + val_per_class))
    for wnid in WNIDS:
        (root / "train" / wnid).mkdir(parents=True)
        for j in range(per_class):
            (root / "train" / wnid / f"{wnid}_{j + 1}.JPEG").write_bytes(_encode(next(crops), "JPEG"))
    (root / "val").mkdir()
    val = {_val_name(i): WNIDS[(5 * i) % len(WNIDS)] for i in range(1, len(WNIDS) * val_per_class + 1)}
    for name in val:
        (root / "val" / f"{name}.JPEG").write_bytes(_encode(next(crops), "JPEG"))
    shuffled = sorted(val.items(), key=lambda kv: kv[1])  # the files list images in their own order
    if labels == "csv":
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
            f"{name},{wnid} 12 30 200 180 {wnid} 1 2 3 4 \n" for name, wnid in shuffled))
    elif labels == "txt":
        (root / "val_labels.txt").write_text("".join(f"{name}.JPEG {wnid}\n" for name, wnid in shuffled))
    return val


@pytest.fixture
def kodak(shared_data):
    return shared_data / "kodak"


def _pillow_shorter_side(array: np.ndarray, size: int) -> np.ndarray:
    """Pillow's bicubic resize of the shorter side to `size`, then the centre crop, written out here."""
    h, w = array.shape[:2]
    new_w, new_h = (round(w * size / h), size) if h <= w else (size, round(h * size / w))
    resized = np.asarray(Image.fromarray(array).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top:top + size, left:left + size]


def test_shorter_side_resize_is_pillows_resize_then_centre_crop_and_keeps_exact_squares(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (40, 60, 3), np.uint8)
    want = _pillow_shorter_side(wide, 32)
    assert want.shape == (32, 32, 3)
    np.testing.assert_array_equal(decode_image(_encode(wide), 32, "shorter_side"), want)
    np.testing.assert_array_equal(decode_image(_encode(wide.transpose(1, 0, 2)), (32, 32), "shorter_side"),
                                  _pillow_shorter_side(wide.transpose(1, 0, 2), 32))
    square = rng.integers(0, 256, (32, 32, 3), np.uint8)
    np.testing.assert_array_equal(decode_image(_encode(square), 32, "shorter_side"), square)
    # the stretch (default) squeezes the whole image instead: not the crop
    assert not np.array_equal(decode_image(_encode(wide), 32), want)

    for name, image in (("a/wide.png", wide), ("a/square.png", square), ("b/tall.png", wide.transpose(1, 0, 2)),
                        ("b/square.png", square[::-1])):
        (tmp_path / "set" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / name).write_bytes(_encode(image))
    cache = tmp_path / "cache"
    cropped = load_image_folder(tmp_path / "set", image_size=32, resize="shorter_side", test_fraction=0.5,
                                cache_dir=cache)
    stretched = load_image_folder(tmp_path / "set", image_size=32, test_fraction=0.5, cache_dir=cache)
    assert len(list(cache.glob("*.json"))) == 2  # resize is part of the cache key
    assert cropped.x_train.digest != stretched.x_train.digest
    every = {x.tobytes() for x in np.concatenate([cropped.x_train, cropped.x_test])}
    assert want.tobytes() in every and square.tobytes() in every
    assert cropped.x_train.take([0]).resize == "shorter_side"
    with pytest.raises(UserError, match="use one of stretch, shorter_side"):
        load_image_folder(tmp_path / "set", image_size=32, resize="crop")
    with pytest.raises(UserError, match="square image_size"):
        load_image_folder(tmp_path / "set", image_size=(32, 48), resize="shorter_side")


def test_ilsvrc_folder_gives_sorted_wnid_classes_val_labels_and_lazy_stored_images(tmp_path, kodak, monkeypatch):
    root = tmp_path / "ilsvrc"
    val = make_ilsvrc(root, kodak)
    cache = tmp_path / "cache"
    ds = load_ilsvrc(root, image_size=48, cache_dir=cache)
    assert ds.classes == tuple(WNIDS) and ds.name == "ilsvrc2012" and ds.skipped == 0
    assert isinstance(ds.x_train, LazyItems) and isinstance(ds.x_test, LazyItems)
    assert ds.x_train.shape == (24, 48, 48, 3) and ds.x_test.shape == (12, 48, 48, 3)
    assert ds.y_train.tolist() == [c for c in range(6) for _ in range(4)] and ds.y_train.dtype == np.int32
    expected = sorted(val, key=lambda name: (WNIDS.index(val[name]), name))  # by class, then by name
    assert [f.name for f in ds.x_test.files] == [f"val/{name}.JPEG" for name in expected]
    assert ds.y_test.tolist() == [WNIDS.index(val[name]) for name in expected]
    # Read on demand, at the stored resolution: shorter side 48, centre crop.
    decoded = np.asarray(Image.open(root / "val" / f"{expected[3]}.JPEG").convert("RGB"))
    np.testing.assert_array_equal(ds.x_test[3], _pillow_shorter_side(decoded, 48))
    first = np.asarray(Image.open(root / "train" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG").convert("RGB"))
    np.testing.assert_array_equal(ds.x_train[0], _pillow_shorter_side(first, 48))
    test_images = ds.x_test[:]  # read now: the files move below

    # A second load reads its check from the cache: no image is decoded.
    decodes = []
    real = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda *a: decodes.append(1) or real(*a))
    again = load_ilsvrc(root, image_size=48, cache_dir=cache)
    assert decodes == [] and again.y_test.tolist() == ds.y_test.tolist()
    monkeypatch.undo()

    # The plain text label file gives the same labels; so does a val/ already sorted into class folders.
    (root / "LOC_val_solution.csv").unlink()
    with pytest.raises(UserError, match="looked for LOC_val_solution.csv and val_labels.txt.*ImageId,PredictionString"):
        load_ilsvrc(root, image_size=48)
    (root / "labels.txt").write_text("".join(f"{name}.JPEG {wnid}\n" for name, wnid in val.items()))
    assert load_ilsvrc(root, image_size=48, labels_file="labels.txt").y_test.tolist() == ds.y_test.tolist()
    (root / "labels.txt").rename(root / "val_labels.txt")
    txt = load_ilsvrc(root, image_size=48)
    assert txt.y_test.tolist() == ds.y_test.tolist()
    np.testing.assert_array_equal(txt.x_test[:], test_images)
    (root / "val" / "stray.JPEG").write_bytes((root / "val" / f"{expected[0]}.JPEG").read_bytes())
    with pytest.raises(UserError, match="1 image.* have no label in .*val_labels.txt, e.g. val/stray.JPEG"):
        load_ilsvrc(root, image_size=48)
    (root / "val" / "stray.JPEG").unlink()
    for name, wnid in val.items():
        (root / "val" / wnid).mkdir(exist_ok=True)
        shutil.move(root / "val" / f"{name}.JPEG", root / "val" / wnid / f"{name}.JPEG")
    (root / "val_labels.txt").unlink()
    sorted_val = load_ilsvrc(root, image_size=48)
    assert sorted_val.y_test.tolist() == ds.y_test.tolist()
    np.testing.assert_array_equal(sorted_val.x_test[:], test_images)

    # A bad training file is skipped and counted, as in any image folder.
    (root / "train" / WNIDS[1] / "broken.JPEG").write_bytes(b"")
    assert load_ilsvrc(root, image_size=48).skipped == 1


def test_ilsvrc_errors_name_the_layout(tmp_path, kodak):
    with pytest.raises(UserError, match="data.root is empty"):
        load_ilsvrc("")
    with pytest.raises(UserError, match="no train/ folder; expected ILSVRC-2012 as distributed"):
        load_ilsvrc(tmp_path)
    root = tmp_path / "ilsvrc"
    make_ilsvrc(root, kodak, labels="none", per_class=1, val_per_class=1)
    with pytest.raises(UserError, match="give one int"):
        load_ilsvrc(root, image_size=(48, 64))
    with pytest.raises(UserError, match="no validation labels"):
        load_ilsvrc(root)
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
        f"{_val_name(i)},n99999999 1 2 3 4\n" for i in range(1, 7)))
    with pytest.raises(UserError, match="wnid that train/ has no folder for"):
        load_ilsvrc(root)
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000001\n")
    with pytest.raises(UserError, match="line 2.*is not a label line"):
        load_ilsvrc(root)


def _rows(work, config):
    return [json.loads(line) for line in (work / config.name / "results.jsonl").read_text().splitlines()]


def _report(sweep_dir):
    from helmjax.reporting import report
    return report.write_report(sweep_dir, resamples=50)


TINY = ["grid.level=raw,50", "model.width=0.125", "train.epochs=1", "train.batch_size=4",
        "train.max_steps_per_epoch=2", "train.eval_batch_size=8", "train.warmup_epochs=0.5"]


@pytest.mark.slow
def test_imagenet_q_sweep_runs_end_to_end_on_a_fake_ilsvrc_folder(tmp_path, kodak, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # level stores built in this process: worker starts cost more
    root = tmp_path / "ilsvrc"
    make_ilsvrc(root, kodak)
    config = config_lib.apply_overrides(config_lib.load_experiment("imagenet_q_sweep"), [
        f"data.root={root}", "data.image_size=48", "train.crop_size=40", "grid.arch=resnet64", *TINY])
    out = sweep.run_sweep(config, tmp_path / "work", **QUIET)
    rows = _rows(tmp_path / "work", config)
    assert out.trained == ["raw-resnet64-s0", "q50-resnet64-s0"] and [r["level"] for r in rows] == ["raw", 50]
    for r in rows:  # 6 classes: top-5 is measured, and is at least the top-1
        assert r["num_test"] == 12 and r["num_classes"] == 6
        assert r["test_acc"] is not None and r["test_top5_acc"] >= r["test_acc"]
    assert rows[0]["bpp"] == 24.0 and 0 < rows[1]["bpp"] < 24.0
    report = _report(tmp_path / "work" / config.name).read_text().replace("\n", " ")
    assert "What a level is" in report and "stored at 48x48" in report


@pytest.mark.slow
def test_cowc_q_sweep_runs_end_to_end_on_a_fake_patch_folder(tmp_path, kodak, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    root = tmp_path / "cowc"
    crops = _kodak_crops(kodak, 16, shapes=((64, 64),))
    for cls in ("car", "no_car"):
        (root / cls).mkdir(parents=True)
        for j in range(8):
            (root / cls / f"{cls}.{j}.png").write_bytes(_encode(next(crops)))
    config = config_lib.apply_overrides(config_lib.load_experiment("cowc_q_sweep"), [f"data.root={root}", *TINY])
    assert list(config.grid.arch) == ["alexnet"] and config.model.family == "imagenet"
    out = sweep.run_sweep(config, tmp_path / "work", **QUIET)
    rows = _rows(tmp_path / "work", config)
    assert out.trained == ["raw-alexnet-s0", "q50-alexnet-s0"]
    for r in rows:  # 2 classes: no top-5
        assert r["num_test"] == 4 and r["test_acc"] is not None and r.get("test_top5_acc") is None
    assert _report(tmp_path / "work" / config.name).is_file()


def test_the_report_says_what_a_level_is_at_the_stored_resolution():
    from helmjax.analysis.findings import level_meaning
    record = {"data": {"name": "ilsvrc", "image_size": 256}, "train": {"crop_size": 224,
                                                                      "augment_mode": "random_resized_crop"}}
    text = level_meaning(record)
    assert "stored at 256x256" in text and "random-resized 224x224 crops" in text and "centre 224x224" in text
    assert level_meaning({"data": {"name": "image_folder", "image_size": None}, "train": {}}) == ""
