"""Image-folder loader: layouts (directory, tar, tar.gz), conversions, bad files, sizes, empty classes, the cache."""

import io
import json
import logging
import pathlib
import pickle
import shutil
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from helmjax.data.image_folder import BadImage, decode_image, load_image_folder
from helmjax.errors import UserError


def _png(array: np.ndarray, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG") if mode else Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _rgb(seed: int, size=(8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def _write(root: pathlib.Path, files: dict):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _tar(src: pathlib.Path, dest: pathlib.Path, wrapper: str = "") -> pathlib.Path:
    mode = "w:gz" if dest.name.endswith("gz") else "w"
    with tarfile.open(dest, mode) as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=f"{wrapper}{p.name}")
    return dest


@pytest.fixture
def clean_tree(tmp_path):
    """class layout: cat 0..4 and dog 0..4, PNG, 8x8, with known pixels; natural order 2 < 10 in cat."""
    root = tmp_path / "pets"
    files = {f"cat/{i}.png": _png(_rgb(i)) for i in (1, 2, 10, 11, 3)}
    files.update({f"dog/{i:02d}.png": _png(_rgb(100 + i)) for i in range(5)})
    _write(root, files)
    return root


def test_split_layout_keeps_splits_order_and_exact_pixels(tmp_path):
    root = tmp_path / "data"
    _write(root, {"train/b/1.png": _png(_rgb(1)), "train/a/10.png": _png(_rgb(2)), "train/a/2.png": _png(_rgb(3)),
                  "test/a/x.png": _png(_rgb(4)), "test/b/y.png": _png(_rgb(5))})
    ds = load_image_folder(root)
    assert ds.classes == ("a", "b") and ds.name == "data" and ds.skipped == 0
    assert ds.y_train.tolist() == [0, 0, 1] and ds.y_test.tolist() == [0, 1]
    assert ds.y_train.dtype == np.int32 and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, np.stack([_rgb(3), _rgb(2), _rgb(1)]))  # 2.png before 10.png
    np.testing.assert_array_equal(ds.x_test, np.stack([_rgb(4), _rgb(5)]))


def test_class_layout_split_is_stratified_and_seeded(clean_tree):
    a = load_image_folder(clean_tree, test_fraction=0.4, seed=0)
    b = load_image_folder(clean_tree, test_fraction=0.4, seed=0)
    c = load_image_folder(clean_tree, test_fraction=0.4, seed=1)
    assert np.bincount(a.y_train).tolist() == [3, 3] and np.bincount(a.y_test).tolist() == [2, 2]
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_test, c.x_test)
    every = {img.tobytes() for img in np.concatenate([a.x_train, a.x_test])}
    assert every == {_rgb(s).tobytes() for s in (1, 2, 10, 11, 3, 100, 101, 102, 103, 104)}


@pytest.mark.parametrize("archive", ["pets.tar", "pets.tar.gz", "pets.tgz"])
@pytest.mark.parametrize("wrapper", ["", "pets/"])
def test_archive_loads_like_the_directory(clean_tree, tmp_path, archive, wrapper):
    ref = load_image_folder(clean_tree)
    ds = load_image_folder(_tar(clean_tree, tmp_path / archive, wrapper))
    assert ds.classes == ref.classes and ds.name == "pets"
    for got, want in ((ds.x_train, ref.x_train), (ds.y_train, ref.y_train), (ds.x_test, ref.x_test)):
        np.testing.assert_array_equal(got, want)


def _bad_files(good: bytes) -> dict:
    jpeg = io.BytesIO()
    Image.fromarray(_rgb(7, (64, 64))).save(jpeg, "JPEG", quality=90)
    return {"zero.png": b"", "truncated.png": good[:len(good) // 2], "truncated.jpg": jpeg.getvalue()[:400],
            "corrupt.png": good[:16] + bytes(range(256)) * 2, "notes.txt": b"not an image at all\n",
            "fake.jpg": b"\xff\xd8\xff\xe0garbage"}


@pytest.mark.parametrize("as_tar", [False, True])
def test_bad_files_are_reported_skipped_and_counted(clean_tree, tmp_path, caplog, as_tar):
    bad = _bad_files(_png(_rgb(0, (32, 32))))
    _write(clean_tree, {f"cat/{n}": d for n, d in bad.items()})
    _write(clean_tree, {".DS_Store": b"\0\0", "cat/.hidden.png": b"", "README.txt": b"hello"})  # ignored, not counted
    root = _tar(clean_tree, tmp_path / "pets.tar.gz") if as_tar else clean_tree
    with caplog.at_level(logging.WARNING, logger="helmjax.data.image_folder"):
        ds = load_image_folder(root)
    assert ds.skipped == len(bad)
    assert len(ds.x_train) + len(ds.x_test) == 10  # every good image kept
    summary = [r.getMessage() for r in caplog.records if "unreadable file(s)" in r.getMessage()]
    assert len(summary) == 1 and all(f"cat/{n}" in summary[0] for n in bad)
    assert "README.txt" in caplog.text  # the stray top-level file is mentioned, not counted


def test_grayscale_rgba_palette_16bit_and_bilevel_become_exact_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    rgba = np.dstack([_rgb(1), np.full((8, 8), 7, np.uint8)])
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 65535 - 63000)
    pal = Image.fromarray(gray).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_buf = io.BytesIO()
    pal.save(pal_buf, "PNG")
    bilevel = io.BytesIO()
    Image.fromarray(gray > 100).save(bilevel, "PNG")
    la = io.BytesIO()
    Image.fromarray(np.dstack([gray, gray]), "LA").save(la, "PNG")
    _write(tmp_path / "d", {"a/gray.png": _png(gray), "a/rgba.png": _png(rgba), "a/deep.png": _png(deep),
                            "b/pal.png": pal_buf.getvalue(), "b/bilevel.png": bilevel.getvalue(),
                            "b/la.png": la.getvalue(), "b/rgb.png": _png(_rgb(2))})
    ds = load_image_folder(tmp_path / "d", test_fraction=0.01)  # rounds to one test image per class
    x = {img.tobytes(): img for img in np.concatenate([ds.x_train, ds.x_test])}
    expect_deep = ((deep.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    pal_rgb = np.asarray(pal.convert("RGB"))
    for want in (np.repeat(gray[..., None], 3, 2), rgba[..., :3], np.repeat(expect_deep[..., None], 3, 2), pal_rgb,
                 np.repeat(np.where(gray > 100, 255, 0).astype(np.uint8)[..., None], 3, 2), _rgb(2)):
        assert want.tobytes() in x, want[..., 0]
    assert ds.skipped == 0 and len(ds.x_train) + len(ds.x_test) == 7
    assert len(x) == 6  # gray and la decode to the same pixels


def test_mixed_sizes_need_image_size_and_resize_leaves_matching_images_exact(tmp_path):
    _write(tmp_path / "d", {"a/small.png": _png(_rgb(1, (8, 8))), "a/big.png": _png(_rgb(2, (12, 20))),
                            "b/1.png": _png(_rgb(3, (8, 8))), "b/2.png": _png(_rgb(4, (8, 8)))})
    with pytest.raises(UserError, match=r"differ in size .*12x20.*image_size"):
        load_image_folder(tmp_path / "d")
    ds = load_image_folder(tmp_path / "d", image_size=8, test_fraction=0.5)
    assert ds.x_train.shape[1:] == (8, 8, 3)
    every = {img.tobytes() for img in np.concatenate([ds.x_train, ds.x_test])}
    assert {_rgb(s).tobytes() for s in (1, 3, 4)} <= every  # already 8x8: untouched
    assert load_image_folder(tmp_path / "d", image_size=(6, 10)).x_train.shape[1:] == (6, 10, 3)
    with pytest.raises(UserError, match="image_size"):
        load_image_folder(tmp_path / "d", image_size=(0, 4))


def test_kodak_photos_of_two_orientations_need_and_take_image_size(shared_data, tmp_path):
    """Real photographs: 768x512 and 512x768 PNGs in two class folders."""
    kodak = shared_data / "kodak"
    sizes = {n: Image.open(kodak / f"kodim{n:02d}.png").size for n in range(1, 25)}
    wide = [n for n, s in sizes.items() if s == (768, 512)][:2]
    tall = [n for n, s in sizes.items() if s == (512, 768)][:2]
    for cls, numbers in (("wide", wide), ("tall", tall)):
        (tmp_path / "k" / cls).mkdir(parents=True)
        for n in numbers:
            shutil.copy(kodak / f"kodim{n:02d}.png", tmp_path / "k" / cls)
    archive = _tar(tmp_path / "k", tmp_path / "kodak.tar")
    with pytest.raises(UserError, match="image_size"):
        load_image_folder(archive)
    ds = load_image_folder(archive, image_size=(64, 96), test_fraction=0.5)
    assert ds.classes == ("tall", "wide") and ds.x_train.shape == (2, 64, 96, 3) and ds.skipped == 0


def test_empty_class_folders_and_unreadable_classes_are_errors(clean_tree):
    (clean_tree / "emu").mkdir()
    with pytest.raises(UserError, match="emu are empty"):
        load_image_folder(clean_tree)
    (clean_tree / "emu" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    with pytest.raises(UserError, match="emu hold no readable image"):
        load_image_folder(clean_tree)


def test_split_layout_errors(tmp_path):
    _write(tmp_path / "d", {"train/a/1.png": _png(_rgb(1)), "train/b/1.png": _png(_rgb(2)),
                            "test/a/1.png": _png(_rgb(3)), "test/c/1.png": _png(_rgb(4))})
    with pytest.raises(UserError, match=r"only in train: \['b'\]; only in test: \['c'\]"):
        load_image_folder(tmp_path / "d")
    _write(tmp_path / "e", {"train/a/1.png": _png(_rgb(1)), "train/b/1.png": _png(_rgb(2))})
    with pytest.raises(UserError, match="no test/ folder"):
        load_image_folder(tmp_path / "e")
    _write(tmp_path / "f", {"Train/a/1.png": _png(_rgb(1)), "Test/a/1.png": _png(_rgb(2))})
    with pytest.raises(UserError, match="lowercase"):
        load_image_folder(tmp_path / "f")


def test_a_class_empty_in_one_split_only_is_a_warning(tmp_path, caplog):
    _write(tmp_path / "d", {"train/a/1.png": _png(_rgb(1)), "train/b/1.png": _png(_rgb(2)),
                            "test/a/1.png": _png(_rgb(3)), "test/b/bad.png": b""})
    with caplog.at_level(logging.WARNING, logger="helmjax.data.image_folder"):
        ds = load_image_folder(tmp_path / "d")
    assert ds.y_train.tolist() == [0, 1] and ds.y_test.tolist() == [0] and ds.skipped == 1
    assert "class(es) b have no readable image in test/" in caplog.text


def test_missing_root_plain_file_and_damaged_archive_are_user_errors(tmp_path, clean_tree):
    with pytest.raises(UserError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(UserError, match="not a .tar"):
        load_image_folder(tmp_path / "x.zip")
    archive = _tar(clean_tree, tmp_path / "pets.tar.gz")
    (tmp_path / "cut.tar.gz").write_bytes(archive.read_bytes()[:len(archive.read_bytes()) // 2])
    with pytest.raises(UserError, match="damaged or not a tar"):
        load_image_folder(tmp_path / "cut.tar.gz")
    (tmp_path / "one").mkdir()
    _write(tmp_path / "one", {"only/1.png": _png(_rgb(1)), "only/2.png": _png(_rgb(2))})
    with pytest.raises(UserError, match="at least two"):
        load_image_folder(tmp_path / "one")


def test_cache_hit_rebuild_after_damage_and_after_a_change(clean_tree, tmp_path, caplog, monkeypatch):
    from helmjax.data import image_folder
    cache = tmp_path / "cache"
    ref = load_image_folder(clean_tree, cache_dir=cache)
    (path,) = cache.glob("*.json")
    assert not list(cache.glob(".*.tmp"))  # atomic write left no temp file
    decoded = []
    real = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda *a: decoded.append(1) or real(*a))
    again = load_image_folder(clean_tree, cache_dir=cache)
    assert decoded == []  # a cache hit checks nothing again: loading decodes no file
    np.testing.assert_array_equal(again.x_train, ref.x_train)
    assert again.classes == ref.classes and again.name == ref.name
    for damage in (lambda b: b[:len(b) // 2], lambda b: b[:20] + b"\0" * (len(b) - 20), lambda b: b""):
        path.write_bytes(damage(path.read_bytes()) if path.stat().st_size else b"junk")
        with caplog.at_level(logging.WARNING, logger="helmjax.data.image_folder"):
            rebuilt = load_image_folder(clean_tree, cache_dir=cache)
        assert "rebuilding" in caplog.text
        caplog.clear()
        np.testing.assert_array_equal(rebuilt.x_test, ref.x_test)
        assert json.loads(path.read_text())["verdicts"] == [None] * 10  # rewritten whole
    _write(clean_tree, {"dog/99.png": _png(_rgb(99))})
    changed = load_image_folder(clean_tree, cache_dir=cache)
    assert len(changed.x_train) + len(changed.x_test) == 11


def test_images_are_read_on_demand_and_a_file_changed_after_listing_is_named(clean_tree):
    from helmjax.data.items import LazyItems
    ds = load_image_folder(clean_tree)
    assert isinstance(ds.x_train, LazyItems) and ds.x_train.shape == (8, 8, 8, 3)
    first = ds.x_train[0]
    np.testing.assert_array_equal(ds.x_train[[0]][0], first)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(ds.x_train.take([0])))[:][0], first)  # workers' copy
    name = next(f for f in ds.x_train.files[:1]).name
    (clean_tree / name).write_bytes(b"")
    with pytest.raises(UserError, match=f"{name} no longer decodes.*changed after it was listed"):
        ds.x_train[0]


def test_the_check_of_a_big_set_in_worker_processes_equals_the_check_here(clean_tree, monkeypatch, caplog):
    from helmjax.data import image_folder
    _write(clean_tree, {f"cat/{n}": d for n, d in _bad_files(_png(_rgb(0, (32, 32)))).items()})
    here = load_image_folder(clean_tree, workers=1)
    monkeypatch.setattr(image_folder, "_CHECK_IN_PROCESS", 1)
    monkeypatch.setattr(image_folder, "_CHECK_CHUNK", 3)
    with caplog.at_level(logging.WARNING, logger="helmjax.data.image_folder"):
        spread = load_image_folder(clean_tree, workers=2)
    assert spread.skipped == here.skipped == 6 and "skipping cat/zero.png" in caplog.text
    np.testing.assert_array_equal(spread.x_train, here.x_train)
    np.testing.assert_array_equal(spread.y_test, here.y_test)


def test_a_tar_gz_is_unpacked_once_into_the_cache_and_read_by_offset(clean_tree, tmp_path):
    archive = _tar(clean_tree, tmp_path / "pets.tar.gz")
    cache = tmp_path / "cache"
    ds = load_image_folder(archive, cache_dir=cache)
    (plain,) = cache.glob("pets-*.tar")
    assert ds.x_train.files[0].read.tar == str(plain)
    stamp = plain.stat().st_mtime_ns
    again = load_image_folder(archive, cache_dir=cache)
    assert plain.stat().st_mtime_ns == stamp  # reused, not unpacked again
    np.testing.assert_array_equal(again.x_test, load_image_folder(clean_tree).x_test)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_anything_but_bad_image_on_random_bytes(data):
    try:
        out = decode_image(data)
    except BadImage:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


_VALID = {fmt: None for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


def _encoded(fmt: str) -> bytes:
    if _VALID[fmt] is None:
        buf = io.BytesIO()
        Image.fromarray(_rgb(5, (16, 16))).save(buf, fmt)
        _VALID[fmt] = buf.getvalue()
    return _VALID[fmt]


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(sorted(_VALID)), st.floats(0.0, 1.0), st.integers(0, 255), st.booleans())
def test_truncated_or_flipped_files_decode_or_raise_bad_image(fmt, where, byte, truncate):
    data = _encoded(fmt)
    cut = int(where * len(data))
    damaged = data[:cut] if truncate else data[:cut] + bytes([byte]) + data[cut + 1:]
    try:
        out = decode_image(damaged)
    except BadImage:
        return
    assert out.dtype == np.uint8 and out.shape[2] == 3
