"""Downsampled ImageNet (tfds `imagenet_resized/64x64`: 1.28M training images, the 50k validation images as the
test set, 64x64) vs JPEG quality: the paper's large-scale question on one accelerator in hours (`--plan` says how
many). The 64x64 ResNet (`models.imagenet.resnet64`), the standard recipe, raw + 9 qualities x 1 seed.

What a level means here: the set is stored by tfds as 64x64 PNG, so the reference ("raw") is those pixels, kept
losslessly in its level store; each level compresses them at 64x64, and training takes random-resized 56x56 crops of
the stored image (evaluation: the centre 56x56). Prepare it once as array_record, no TensorFlow at run time:
`tfds build imagenet_resized/64x64 --file_format=array_record`, then `--set data.tfds_data_dir=DIR`.
"""

import ml_collections

from experiments._common import PAPER_QUALITIES, imagenet_train, jpeg_quantizer


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "imagenet64_q_sweep"
    c.data = ml_collections.ConfigDict(dict(name="tfds_images", dataset="imagenet_resized/64x64", tfds_data_dir=None,
                                            image_size=None, train_split="train", test_split="validation",
                                            split_seed=0))
    c.quantizer = jpeg_quantizer("pillow_jpeg")
    c.model = ml_collections.ConfigDict(dict(family="imagenet", width=1.0, dropout=0.0))
    c.train = imagenet_train(batch_size=256, epochs=40, crop_size=56)
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=["resnet64"], seed=[0]))
    c.tolerance = 0.02
    return c
