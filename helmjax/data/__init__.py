"""Datasets: procedural (embedded), CIFAR-10 (npz, JPEG tree, tfds), image and audio folders."""

from helmjax.data.dataset import ArrayDataset

__all__ = ["ArrayDataset"]
