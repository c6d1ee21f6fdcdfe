"""ImageNet (ILSVRC-2012) from tfds `imagenet2012` vs JPEG quality: `imagenet_q_sweep` (its docstring says what a
level means at this scale) with the data read through `tfds.data_source` instead of the folder. Prepare it once as
array_record from the manual download (the ILSVRC tars in DIR/downloads/manual), no TensorFlow at run time:
`tfds build imagenet2012 --file_format=array_record --manual_dir=...`, then `--set data.tfds_data_dir=DIR`.
"""

import ml_collections

from experiments import imagenet_q_sweep


def get_config() -> ml_collections.ConfigDict:
    c = imagenet_q_sweep.get_config()
    c.name = "imagenet_tfds_q_sweep"
    c.data = ml_collections.ConfigDict(dict(name="tfds_images", dataset="imagenet2012", tfds_data_dir=None,
                                            image_size=256, train_split="train", test_split="validation",
                                            split_seed=0))
    return c
