"""Places365 (tfds `places365_small`: 1.8M training images of 365 scene classes at 256x256, the 36.5k validation
images as the test set) vs JPEG quality, with AlexNet as in the paper; the standard recipe, raw + 9 qualities.

What a level means here: tfds stores the small (256x256) release's JPEG files, so the reference ("raw") is those
decoded, kept losslessly in its level store; each level re-compresses that 256x256 image; training takes random-
resized 224x224 crops (evaluation: the centre 224x224). Prepare it once as array_record, no TensorFlow at run time:
`tfds build places365_small --file_format=array_record`, then `--set data.tfds_data_dir=DIR`.
"""

import ml_collections

from experiments._common import PAPER_QUALITIES, imagenet_train, jpeg_quantizer


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "places365_q_sweep"
    c.data = ml_collections.ConfigDict(dict(name="tfds_images", dataset="places365_small", tfds_data_dir=None,
                                            image_size=256, train_split="train", test_split="validation",
                                            split_seed=0))
    c.quantizer = jpeg_quantizer("pillow_jpeg")
    c.model = ml_collections.ConfigDict(dict(family="imagenet", width=1.0, dropout=0.5))
    c.train = imagenet_train(batch_size=256, epochs=60, crop_size=224)
    c.train.update(lr=0.01, weight_decay=5e-4)  # AlexNet's (Krizhevsky et al. 2012)
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=["alexnet"], seed=[0]))
    c.tolerance = 0.02
    return c
