"""The stored resolution of a large-scale data set: the shorter side resized to `size`, then the centre `size` x `size`
kept, as ImageNet-style pipelines store and evaluate images (a level compresses the image at this resolution, and
training crops from it). Pillow's bicubic filter (antialiased when shrinking); an image already `size` x `size` keeps
its exact pixels."""

import numpy as np
from PIL import Image


def shorter_side_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): shorter side to `size` (aspect kept, rounded), centre crop."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top:top + size, left:left + size]
