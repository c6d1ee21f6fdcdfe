"""A PyTorch (CPU) peer of the CIFAR-10 classifiers A-F, timed on the same training step as helmjax.

Same layers, parameter counts (checked against `helmjax.models.cifar.PAPER_PARAMS`), batch, dropout 0.5, SGD with
Nesterov momentum and the same augmentation work (edge-replicating shift of up to 10% and a horizontal flip on
each batch, from uint8 data gathered by index). Used by `benchmarks/bench_train.py --torch`; torch is a
benchmark-only requirement (benchmarks/requirements-bench.txt).

    python benchmarks/torch_reference.py --archs=A,F --steps=20
"""

import argparse
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from helmjax.models.cifar import PAPER_PARAMS

# (stride-2 blocks after the stem, head, hidden dense units): as helmjax.models.cifar.ARCHS.
ARCHS = {
    "A": (1, "conv", ()),
    "B": (1, "dense", (64, 256)),
    "C": (2, "conv", ()),
    "D": (2, "dense", (128, 256)),
    "E": (1, "dense", (128, 256)),
    "F": (1, "dense", (128, 256, 256)),
}


def build(arch: str, num_classes: int = 10, image_size: int = 32, dropout: float = 0.5) -> nn.Module:
    blocks, head, dense_units = ARCHS[arch]
    conv = lambda cin, cout, stride=1: nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    layers = [conv(3, 32), nn.ReLU(), conv(32, 64), nn.ReLU(), conv(64, 128, 2), nn.Dropout(dropout)]
    for _ in range(blocks):
        layers += [conv(128, 128), nn.ReLU(), conv(128, 128), nn.ReLU(), conv(128, 128, 2), nn.Dropout(dropout)]
    if head == "conv":
        layers += [conv(128, 128), nn.ReLU(), nn.Conv2d(128, 128, 1), nn.ReLU(), nn.Conv2d(128, num_classes, 1),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    else:
        units = 128 * (image_size // 2 ** (blocks + 1)) ** 2
        layers.append(nn.Flatten())
        for hidden in dense_units:
            layers += [nn.Linear(units, hidden), nn.ReLU(), nn.Dropout(dropout)]
            units = hidden
        layers.append(nn.Linear(units, num_classes))
    return nn.Sequential(*layers)


def augment(images: torch.Tensor, shift_fraction: float = 0.1) -> torch.Tensor:
    """Random edge-replicating shift and horizontal flip of NCHW float images, as `training.inputs.augment`."""
    n, _, h, w = images.shape
    dy, dx = round(h * shift_fraction), round(w * shift_fraction)
    padded = F.pad(images, (dx, dx, dy, dy), mode="replicate").permute(0, 2, 3, 1)  # NHWC for the gather
    oy = torch.randint(0, 2 * dy + 1, (n, 1, 1))
    ox = torch.randint(0, 2 * dx + 1, (n, 1, 1))
    rows = oy + torch.arange(h).view(1, h, 1)
    cols = ox + torch.arange(w).view(1, 1, w)
    shifted = padded[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
    flip = torch.rand(n, 1, 1, 1) < 0.5
    return torch.where(flip, shifted.flip(3), shifted)


def make_torch_step(arch: str, batch: int, image_size: int = 32):
    """A callable running one training step of `arch` at `batch` (waiting for it), warmed up, with every core as
    a torch thread."""
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = build(arch, image_size=image_size)
    if image_size == 32:
        params = sum(p.numel() for p in model.parameters())
        assert params == PAPER_PARAMS[arch], (arch, params, PAPER_PARAMS[arch])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    rng = np.random.RandomState(0)
    n = batch * 8
    data_x = torch.from_numpy(rng.randint(0, 256, (n, 3, image_size, image_size), np.uint8))
    data_y = torch.from_numpy(rng.randint(0, 10, n).astype(np.int64))
    model.train()

    def step():
        idx = torch.from_numpy(rng.randint(0, n, batch))
        x = augment(data_x[idx].float() / 255.0)
        loss = F.cross_entropy(model(x), data_y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the step

    for _ in range(2):
        step()
    return step


def torch_images_per_second(arch: str, batch: int, steps: int, image_size: int = 32) -> float:
    """Training images/s of `arch` at `batch` after two warm-up steps."""
    step = make_torch_step(arch, batch, image_size)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", default="A,F")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads -> {os.cpu_count()}")
    for arch in args.archs.split(","):
        print(f"arch {arch}: torch {torch_images_per_second(arch, args.batch, args.steps):8.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
