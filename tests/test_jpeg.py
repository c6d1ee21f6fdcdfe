"""Tests of the JAX JPEG codec: pixel-identity with Pillow/libjpeg-turbo, gradients, compilation, sharding."""

import contextlib
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from PIL import Image, features

from helmjax.errors import UserError
from helmjax.paths import data_dir
from helmjax.quantizers import Quantized, apply, jpeg, pillow_jpeg, register
from helmjax.quantizers.jpeg import libjpeg

QUALITIES = (1, 5, 10, 20, 50, 75, 90, 95, 100)
PILLOW_LIBJPEG = features.version("libjpeg_turbo")


def _versions() -> str:
    return (f"compared against Pillow's libjpeg-turbo {PILLOW_LIBJPEG}; the reference is "
            f"{jpeg.REFERENCE_LIBJPEG_TURBO}: if these differ, libjpeg-turbo changed its arithmetic")


def _assert_identical(ours, theirs, what: str):
    ours, theirs = np.asarray(ours).astype(int), np.asarray(theirs).astype(int)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    diff = np.abs(ours - theirs)
    assert diff.max() == 0, f"{what}: max |diff| {diff.max()}, {np.count_nonzero(diff)} pixels differ; {_versions()}"


def _pillow(images, quality, subsampling):
    return pillow_jpeg.compress(np.asarray(images), quality, subsampling).data


@contextlib.contextmanager
def _compilations():
    """The functions JAX traces or compiles inside the block, by name, from JAX's own monitoring events."""
    events = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")
    names = []

    def listener(event, duration, **kwargs):
        if event in events:
            names.append(kwargs.get("fun_name", event))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def kodak():
    folder = data_dir() / "kodak"
    paths = sorted(folder.glob("kodim*.png"))
    if len(paths) != 24:
        pytest.skip(f"expected the 24 Kodak images in {folder}, found {len(paths)}; set HELMJAX_DATA_DIR")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("subsampling", jpeg.SUBSAMPLINGS)
def test_all_kodak_images_at_all_qualities_equal_pillow(kodak, subsampling):
    """Batches of 8 images of one orientation: portrait and landscape batches then have the same number of
    blocks, so the DCT stages compile once for both. Big batches run stage by stage: new qualities (as many
    as before) must compile nothing at all."""
    thirds = [QUALITIES[i:i + 3] for i in range(0, len(QUALITIES), 3)]
    for shape in sorted({img.shape for img in kodak}):
        same_shape = [img for img in kodak if img.shape == shape]
        for start in range(0, len(same_shape), 8):
            batch = np.stack(same_shape[start:start + 8])
            outputs = [np.asarray(jpeg.compress_qualities(batch, thirds[0], subsampling=subsampling))]
            with _compilations() as compiled:
                outputs += [np.asarray(jpeg.compress_qualities(batch, q, subsampling=subsampling))
                            for q in thirds[1:]]
            assert compiled == [], f"new qualities compiled {compiled}"
            for quality, ours in zip(QUALITIES, np.concatenate(outputs)):
                _assert_identical(ours, _pillow(batch, quality, subsampling), f"Kodak {shape} q={quality} {subsampling}")


@pytest.mark.parametrize("subsampling", jpeg.SUBSAMPLINGS)
def test_uniform_noise_equals_pillow(subsampling):
    noise = np.random.default_rng(1).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    ours = np.asarray(jpeg.compress_qualities(noise, (1, 10, 50, 90, 100), subsampling=subsampling))
    for qi, quality in enumerate((1, 10, 50, 90, 100)):
        _assert_identical(ours[qi], _pillow(noise, quality, subsampling), f"noise q={quality} {subsampling}")


@pytest.mark.slow
def test_random_crops_of_odd_and_tiny_sizes_equal_pillow(kodak):
    """Edge padding and chroma edges only show on sizes that are not multiples of 16."""
    rng = np.random.default_rng(2)
    sizes = [(1, 1), (1, 7), (5, 3), (2, 2), (3, 15), (9, 4), (15, 15), (16, 17)]
    sizes += [tuple(rng.integers(1, 80, 2)) for _ in range(12)]  # 20 sizes: each costs a compilation
    assert len(set(sizes)) == len(sizes) >= 20
    for i, (h, w) in enumerate(sizes):
        subsampling = jpeg.SUBSAMPLINGS[i % 3]
        crops = []
        for _ in range(3):
            img = kodak[rng.integers(24)]
            y, x = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
            crops.append(img[y:y + h, x:x + w])
        batch = np.stack(crops)
        qualities = rng.integers(1, 101, 3)
        ours = np.asarray(jpeg.compress(batch, qualities, subsampling=subsampling))  # one quality per image
        for j, quality in enumerate(qualities):
            _assert_identical(ours[j], _pillow(batch[j:j + 1], int(quality), subsampling)[0],
                              f"crop {h}x{w} q={quality} {subsampling}")


@pytest.mark.parametrize("channel_axis", [False, True])
def test_grayscale_equals_pillow(kodak, channel_axis):
    grey = np.stack([np.asarray(Image.fromarray(img[:37, :29]).convert("L")) for img in kodak[:4]])
    if channel_axis:
        grey = grey[..., None]
    for quality in (3, 75):
        ours = jpeg.compress(grey, quality)
        assert ours.shape == grey.shape and ours.dtype == jnp.uint8
        _assert_identical(ours, _pillow(grey, quality, "4:2:0"), f"grey q={quality}")


def test_custom_tables_equal_pillow_qtables(kodak):
    """A non-symmetric table catches a transposed table; like Pillow, quality scales custom tables."""
    luma = np.arange(1, 65).reshape(8, 8)
    chroma = np.clip(np.arange(64).reshape(8, 8).T * 3 + 2, 1, 255)
    batch = kodak[0][None, :48, :64]
    for quality in (50, 20):
        buf = __import__("io").BytesIO()
        Image.fromarray(batch[0]).save(buf, "JPEG", quality=quality, qtables=[luma.ravel().tolist(),
                                                                            chroma.ravel().tolist()])
        reference = np.asarray(Image.open(buf))
        ours = jpeg.compress(batch, quality, luma_table=luma, chroma_table=chroma)[0]
        _assert_identical(ours, reference, f"custom tables q={quality}")


def test_scaled_tables_follow_ijg_rule():
    assert np.all(np.asarray(jpeg.scaled_table(jpeg.LUMA_TABLE, 50)) == jpeg.LUMA_TABLE)
    assert np.all(np.asarray(jpeg.scaled_table(jpeg.LUMA_TABLE, 100)) == 1)
    assert np.all(np.asarray(jpeg.scaled_table(jpeg.LUMA_TABLE, 1)) == 255)
    assert int(jpeg.scaled_table(jpeg.LUMA_TABLE, 10)[0, 0]) == (16 * 500 + 50) // 100


def test_reciprocal_quantization_is_round_half_away_from_zero():
    """libjpeg-turbo's multiply-by-reciprocal equals (|x| + 4Q) // (8Q) for every table entry and input."""
    x = jnp.arange(-(2 ** 14), 2 ** 14, dtype=jnp.int32)[:, None]
    table = jnp.arange(1, 256, dtype=jnp.int32)[None, :]
    ours = np.asarray(jax.jit(libjpeg.quantize_exact)(x, table))
    xa, ta = np.asarray(x, np.int64), np.asarray(table, np.int64)
    expected = np.sign(xa) * ((np.abs(xa) + 4 * ta) // (8 * ta))
    assert np.array_equal(ours, expected)


def test_float_input_gives_the_same_pixels_as_float32():
    images = np.random.default_rng(3).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
    ours = jpeg.compress(images.astype(np.float32), 40.0)
    assert ours.dtype == jnp.float32
    _assert_identical(ours, jpeg.compress(images, 40), "float input")


@pytest.mark.slow
def test_many_qualities_compile_once():
    images = np.random.default_rng(4).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)  # a shape no other test uses
    with _compilations() as first:
        outputs = [np.asarray(jpeg.compress(images, 5))]
    assert "_compress_jit" in first  # the listener sees the codec compile
    with _compilations() as compiled:
        outputs += [np.asarray(jpeg.compress(images, q)) for q in (37, 64, 99)]
    assert compiled == []
    assert not np.array_equal(outputs[0], outputs[-1])
    jpeg.compress_qualities(images, (1, 2, 3))
    with _compilations() as compiled:
        jpeg.compress_qualities(images, (70, 80, 90))
    assert compiled == []


def test_matmul_and_butterfly_dcts_agree_on_the_whole_input_range():
    """Small batches run the DCT passes as int32 matrix products read off the butterflies, big ones run the
    butterflies: both must give the same integers for every sample (forward) and coefficient (inverse)."""
    rng = np.random.default_rng(10)
    samples = rng.integers(-128, 128, (8, 8, 4000)).astype(np.int32)
    samples[..., 0], samples[..., 1] = -128, 127  # constant extreme blocks
    samples[..., 2] = np.where((np.arange(8)[:, None] + np.arange(8)) % 2, 127, -128)  # checkerboard
    coefs = rng.integers(-1024, 1025, (8, 8, 4000)).astype(np.int32)
    coefs[..., 0] = 1024
    coefs[..., 1] = -1024
    for dct, x in ((libjpeg.fdct_exact, samples), (libjpeg.idct_exact, coefs)):
        by_matmul = np.asarray(jax.jit(lambda v: dct(v, use_dot=True))(x))
        by_butterflies = np.asarray(jax.jit(lambda v: dct(v, use_dot=False))(x))
        assert np.array_equal(by_matmul, by_butterflies), dct.__name__


@pytest.mark.slow
def test_works_under_user_jit_and_vmap():
    images = np.random.default_rng(5).integers(0, 256, (3, 2, 16, 24, 3), dtype=np.uint8)
    direct = np.stack([np.asarray(jpeg.compress(batch, 30)) for batch in images])
    jitted = jax.jit(lambda x, q: jpeg.compress(x, q))(images[0], 30)
    _assert_identical(jitted, direct[0], "under jit")
    mapped = jax.vmap(lambda x: jpeg.compress(x, 30))(images)
    _assert_identical(mapped, direct, "under vmap")


def test_registry_entry_equals_pillow_path(shared_data):
    data = np.load(shared_data / "cifar10" / "cifar10_lossless_subset.npz")["x_test"][:37]
    ours = apply("jax_jpeg", data, 60)
    theirs = apply("pillow_jpeg", data, 60)
    _assert_identical(ours.data, theirs.data, "jax_jpeg vs pillow_jpeg")
    assert ours.bits_per_item.dtype == np.int64
    assert np.array_equal(ours.bits_per_item, theirs.bits_per_item)
    chunked = jpeg.quantize_dataset(data, [10, 60], chunk=16)  # 37 = 16 + 16 + 5 (padded)
    _assert_identical(chunked[1], theirs.data, "chunked dataset")
    with pytest.raises(UserError, match="quality"):
        apply("jax_jpeg", data, 0)


def test_user_defined_quantizer_runs_through_the_registry():
    def posterize_to_black_and_white(images, level):
        out = np.where(images >= level, 255, 0).astype(np.uint8)
        return Quantized(out, None)

    register("test_threshold", posterize_to_black_and_white, level_name="threshold", level_range=(0, 255),
             overwrite=True)
    images = np.array([[[[10, 200, 128]]]], np.uint8)
    result = apply("test_threshold", images, 128)
    assert result.data.tolist() == [[[[0, 255, 255]]]] and result.bits_per_item is None


def test_gradients_of_exact_mode_are_finite_and_nonzero_at_all_qualities():
    images = jnp.asarray(np.random.default_rng(6).integers(0, 256, (1, 16, 16, 3)), jnp.float32)
    target = images[..., ::-1]
    for quality in (1.0, 2.0, 49.0, 50.0, 75.0, 99.0, 100.0):
        def loss(x, q, luma, chroma):
            out = jpeg.compress(x, q, luma_table=luma, chroma_table=chroma)
            return jnp.mean((out - target) ** 2)

        grads = jax.grad(loss, argnums=(0, 1, 2, 3))(images, jnp.float32(quality),
                                                    jnp.asarray(jpeg.LUMA_TABLE, jnp.float32),
                                                    jnp.asarray(jpeg.CHROMA_TABLE, jnp.float32))
        for name, g in zip(("image", "quality", "luma", "chroma"), grads):
            g = np.asarray(g)
            assert np.all(np.isfinite(g)), (name, quality)
            assert np.any(g != 0), (name, quality)


@pytest.mark.parametrize("mode", ["cubic", "sinusoidal"])
def test_soft_modes_pass_numerical_gradient_checks_in_float64(mode):
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        images = jnp.asarray(rng.uniform(60, 190, (1, 8, 16, 3)))  # no pixel near the clamp
        chroma = jnp.asarray(jpeg.CHROMA_TABLE, jnp.float64)

        def codec(x, luma):
            return jpeg.compress(x, 50.0, mode=mode, luma_table=luma, chroma_table=chroma)

        check_grads(codec, (images, jnp.asarray(jpeg.LUMA_TABLE, jnp.float64)), order=1, modes=("rev",),
                    eps=1e-4, atol=1e-3, rtol=1e-3)


def test_soft_modes_are_close_to_exact(kodak):
    """Soft rounding models JPEG: nearer to the exact output than the input is (cubic much nearer)."""
    crop = kodak[4][None, 100:164, 200:264]
    for quality in (10, 75):
        exact = np.asarray(jpeg.compress(crop, quality)).astype(float)
        input_error = np.abs(crop - exact).mean()
        for mode, bound in (("cubic", 0.5), ("sinusoidal", 0.8)):
            soft = np.asarray(jpeg.compress(crop.astype(np.float32), quality, mode=mode))
            assert np.abs(soft - exact).mean() < bound * input_error, (mode, quality)


@pytest.mark.slow
def test_sharded_batch_equals_single_device():
    script = textwrap.dedent("""
        import numpy as np, jax
        from jax.sharding import NamedSharding, PartitionSpec
        from helmjax.quantizers import jpeg
        assert jax.device_count() == 4, jax.devices()
        images = np.random.default_rng(0).integers(0, 256, (8, 24, 40, 3), dtype=np.uint8)
        single = np.asarray(jpeg.compress(jax.device_put(images, jax.devices()[0]), 45))
        mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        sharded_in = jax.device_put(images, NamedSharding(mesh, PartitionSpec("data")))
        sharded = jpeg.compress(sharded_in, 45)
        assert len(sharded.sharding.device_set) == 4, sharded.sharding
        assert np.array_equal(np.asarray(sharded), single)
        print("SHARDED_OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "SHARDED_OK" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("kwargs, argument", [
    (dict(images=np.zeros((4, 4), np.uint8)), "images"),
    (dict(images=np.zeros((1, 4, 4, 2), np.uint8)), "images"),
    (dict(images=np.zeros((1, 4, 4, 3), np.int16)), "images"),
    (dict(quality=0), "quality"),
    (dict(quality=101), "quality"),
    (dict(quality=np.array([10, 20, 30])), "quality"),
    (dict(luma_table=np.ones((8, 7))), "luma_table"),
    (dict(chroma_table=np.full((8, 8), 256)), "chroma_table"),
    (dict(luma_table=np.zeros((8, 8))), "luma_table"),
    (dict(subsampling="4:1:1"), "subsampling"),
    (dict(mode="float"), "mode"),
])
def test_bad_input_raises_value_error_naming_the_argument(kwargs, argument):
    args = dict(images=np.zeros((2, 4, 4, 3), np.uint8), quality=50)
    args.update(kwargs)
    images, quality = args.pop("images"), args.pop("quality")
    with pytest.raises(ValueError, match=argument):
        jpeg.compress(images, quality, **args)
    with pytest.raises(ValueError, match=argument):  # raised at trace time too
        jax.jit(lambda x: jpeg.compress(x, quality, **args))(images)


def test_file_bits_come_from_pillow():
    images = np.random.default_rng(9).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    bits = jpeg.file_bits(images, 50)
    assert bits.tolist() == [8 * len(pillow_jpeg.encode(img, 50)) for img in images]
    assert np.allclose(jpeg.bits_per_pixel(images, 50), bits / 256)
