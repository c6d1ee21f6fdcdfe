"""ImageNet (ILSVRC-2012) from its folder as distributed vs JPEG quality: ResNet-50 with the standard recipe, raw + 9
qualities x 1 seed (`grid.arch` also takes alexnet and caffenet). Set data.root to the folder holding
train/<wnid>/*.JPEG and val/*.JPEG with LOC_val_solution.csv or val_labels.txt (`helmjax.data.ilsvrc`).

What a level means at this scale: ImageNet's originals are already JPEG (of many sizes and qualities), so the
reference ("raw") is the originals decoded, resized (shorter side 256, centre crop 256x256) and stored losslessly in
its level store; each level compresses that stored 256x256 image with Pillow's JPEG at quality q (the files a user
would store); training takes random-resized 224x224 crops of it and a flip, evaluation the centre 224x224. The 50,000
validation images are the test set; the best epoch is picked on 1% of train held out.
"""

import ml_collections

from experiments._common import PAPER_QUALITIES, imagenet_train, jpeg_quantizer


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "imagenet_q_sweep"
    c.data = ml_collections.ConfigDict(dict(name="ilsvrc", root="", image_size=256, labels_file=None, split_seed=0))
    c.quantizer = jpeg_quantizer("pillow_jpeg")
    # No dropout key: each architecture keeps its own (none in the ResNets, 0.5 in AlexNet and CaffeNet).
    c.model = ml_collections.ConfigDict(dict(family="imagenet", width=1.0))
    c.train = imagenet_train(batch_size=256, epochs=90, crop_size=224)
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=["resnet50"], seed=[0]))
    c.tolerance = 0.02
    return c
