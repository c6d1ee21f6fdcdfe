"""The classifiers learned tables are judged by: fixed ones a descent learns against, fresh ones that pick a descent.

The training split is cut in two (`split_for_tables`): the tables are learned on one part, the classifiers train on
the other, so a loss never rewards what a classifier memorised. Each descent has its own fixed classifier
(`fixed_classifier`), trained on raw and randomly JPEG-compressed images (`compressed_copies`) and shared by every
level of a dataset through an in-process memo; fresh classifiers trained briefly on the images coded with a
descent's tables score it (`fresh_score`), as the sweep's classifiers would. Both train through the project's one
Trainer, on batches drawn afresh each step, with the standardisation inside the model (`StandardizedNet`).
"""

import dataclasses
import functools
import io
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from helmjax import models
from helmjax.models.cifar import CifarNet
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, scaled_table
from helmjax.quantizers.learned_jpeg.files import compress_with_tables, encode
from helmjax.quantizers.learned_jpeg.rate import random_tables
from helmjax.training.recipe import TrainSettings
from helmjax.training.pipeline import SplitData, StackInput
from helmjax.training.trainer import Trainer


def _accuracy(logits, labels) -> float:
    return float(np.mean(np.argmax(np.asarray(logits), -1) == labels))


def _standardize(images, mean, std):
    return (images / 255.0 - mean) / std


# In-process memo: every level of one dataset shares its fixed classifiers (one per descent) and rate calibration
# (keyed by data digest and the settings they depend on), so a sweep over levels trains each classifier once.
_MEMO: dict = {}
_MEMO_SIZE = 64  # entries (a classifier is about 0.2 MB); cleared when full


def _memo(key: tuple, make):
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = make()
    return _MEMO[key]


@dataclasses.dataclass(frozen=True)
class Split:
    """The training split cut in two: (x, y) the tables are learned on, (rest_x, rest_y) the classifiers train
    on; `key` (data digest, subset, seed) names the cut in the memo."""
    x: np.ndarray
    y: np.ndarray
    rest_x: np.ndarray
    rest_y: np.ndarray
    key: tuple


def split_for_tables(images: np.ndarray, labels: np.ndarray, digest: str, subset: int, seed: int) -> Split:
    """`subset` images for the tables (half the split when it is small), the rest for the classifiers: a loss on
    images the classifier memorised would ask the tables to keep everything (measured on CIFAR-10: 2 bpp)."""
    order = np.random.default_rng(seed).permutation(len(images))
    n_tables = min(int(subset), max(1, len(images) // 2))
    pick, rest = order[:n_tables], order[n_tables:]
    return Split(images[pick], labels[pick], images[rest], labels[rest], (digest, subset, seed))


def compressed_copies(images: np.ndarray, copies: int, seed: int, subsampling: str = "4:2:0") -> np.ndarray:
    """`copies` JPEG-decoded copies of `images` (concatenated), each image with its own random tables: half Annex K
    at a random quality in [2, 95], half random log-uniform tables (the kinds of tables a descent visits)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for image in images:
            if rng.random() < 0.5:
                quality = int(rng.integers(2, 96))
                luma, chroma = scaled_table(LUMA_TABLE, quality), scaled_table(CHROMA_TABLE, quality)
            else:
                [(luma, chroma)] = random_tables(rng, 1)
            out.append(np.asarray(Image.open(io.BytesIO(encode(image, luma, chroma, subsampling)))))
    return np.stack(out) if out else images[:0]


class StandardizedNet(CifarNet):
    """The CIFAR net reading images in [0, 255], standardised first by its training images' channel `mean` and
    `std` (on the [0, 1] scale): the parameters are the net's own, at the same paths."""
    mean: Sequence[float] = (0.0, 0.0, 0.0)
    std: Sequence[float] = (1.0, 1.0, 1.0)

    def __call__(self, x, *, train: bool):
        return super().__call__(_standardize(x, jnp.asarray(self.mean, jnp.float32),
                                             jnp.asarray(self.std, jnp.float32)), train=train)


def _train_classifier(images, labels, num_classes, arch, width, steps, batch_size, seed, augment=0,
                      subsampling="4:2:0"):
    """The project's CIFAR net (`arch` at `width`, no dropout) trained by the project's Trainer with Adam, a batch
    drawn afresh each step, on raw images and `augment` JPEG-compressed copies of them (`compressed_copies`);
    returns (apply(variables, images float [0,255]) -> logits, variables, accuracy on its raw training images)."""
    net = models.build("image", arch, num_classes, width=width, dropout=0.0)
    raw = np.asarray(images, np.float32)
    x = np.concatenate([raw, compressed_copies(images, augment, seed, subsampling).astype(np.float32)])
    y = np.tile(labels, 1 + augment)
    mean, std = raw.mean(axis=(0, 1, 2)) / 255.0, raw.std(axis=(0, 1, 2)) / 255.0 + 1e-6
    knobs = {f.name: getattr(net, f.name) for f in dataclasses.fields(net) if f.name not in ("parent", "name")}
    model = StandardizedNet(**knobs, mean=tuple(map(float, mean)), std=tuple(map(float, std)))
    # Constant-rate Adam on the images as they are, flax's own layers, one unstacked member: the weights the tables
    # were always learned against (the "cpu" profile's convolutions, for one, train other, as good, ones).
    settings = TrainSettings(optimizer="adam", lr=2e-3, lr_decay=0.0, batch_size=batch_size, augment=False,
                             performance="plain", stack_mode="unroll")
    trainer = Trainer(model, settings, is_image=True)
    inputs = StackInput([SplitData(x, y, x[:0], y[:0], x[:0], y[:0])], settings, trainer.mesh)
    key = jax.random.PRNGKey(seed)
    states = trainer.stack_states([trainer.init(x, key)])
    rng = np.random.default_rng(seed)
    order = np.array([rng.choice(len(x), batch_size, replace=False) for _ in range(steps)])
    states, _ = trainer.train_steps(states, inputs.batches(order.reshape(steps, 1, batch_size)), [key])

    def apply(variables, images):
        return net.apply(variables["params"], _standardize(images, variables["mean"], variables["std"]),
                         train=False)

    variables = {"params": {"params": trainer.member_state(states, 0).params}, "mean": jnp.asarray(mean),
                 "std": jnp.asarray(std)}
    logits_of = jax.jit(apply)
    logits = np.concatenate([np.asarray(logits_of(variables, raw[i:i + 500])) for i in range(0, len(raw), 500)])
    return apply, variables, _accuracy(logits, labels)  # on its own (raw) training images


def _train_fixed(split: Split, num_classes: int, s: dict, subsampling: str, seed: int) -> tuple:
    """A fixed classifier trained on the classifiers' part, with its accuracy on the tables' raw images."""
    apply, variables, train_accuracy = _train_classifier(split.rest_x, split.rest_y, num_classes, s["arch"],
                                                         s["width"], s["classifier_steps"], s["batch_size"], seed,
                                                         s["augment"], subsampling)
    return apply, variables, train_accuracy, _accuracy(apply(variables, jnp.asarray(split.x, jnp.float32)), split.y)


def fixed_classifier(split: Split, num_classes: int, s: dict, subsampling: str, restart: int) -> tuple:
    """The fixed classifier of one descent: (apply, variables, accuracy on its own raw images, accuracy on the
    tables' raw images), seed `seed + restart`, from the memo when this split and these settings trained it before.
    Each descent has its own, because one classifier that reads a few frequencies led every descent to the same
    failure (measured on camera, learning seed 1: all three descents at 0.6-0.7 bpp dropped the gratings)."""
    seed = s["seed"] + restart
    return _memo(("classifier", num_classes, s["arch"], s["width"], s["classifier_steps"], s["batch_size"],
                  s["augment"], subsampling, seed) + split.key,
                 functools.partial(_train_fixed, split, num_classes, s, subsampling, seed))


def fresh_score(tables: dict, split: Split, num_classes: int, s: dict, subsampling: str) -> dict:
    """Classifiers trained from scratch on the classifiers' images coded with these tables (as the sweep's are, and
    for as few steps: `fresh_steps`), scored on the tables' images coded alike, mean over `fresh_seeds`: which of
    several descents a fresh classifier learns best from. Why short: measured on camera, after 600 steps every
    candidate scores 99.5-100% and the choice is blind, while after 170 (the sweep's 6 epochs) tables of one rate
    differ by 5 points, as they do in the sweep."""
    train = compress_with_tables(split.rest_x, tables, subsampling).data
    held = jnp.asarray(compress_with_tables(split.x, tables, subsampling).data, jnp.float32)
    losses, accuracies = [], []
    for k in range(max(1, int(s["fresh_seeds"]))):
        fresh_apply, fresh_vars, _ = _train_classifier(train, split.rest_y, num_classes, s["arch"], s["width"],
                                                       s["fresh_steps"], s["batch_size"], s["seed"] + k, 0,
                                                       subsampling)
        logits = fresh_apply(fresh_vars, held)
        losses.append(float(optax.softmax_cross_entropy_with_integer_labels(logits, split.y).mean()))
        accuracies.append(_accuracy(logits, split.y))
    return {"fresh_loss": float(np.mean(losses)), "fresh_accuracy": float(np.mean(accuracies))}
