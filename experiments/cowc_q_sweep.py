"""COWC (Cars Overhead With Context, Mundhenk et al. 2016) car / no-car patches vs JPEG quality: AlexNet, the standard
recipe scaled to the set, raw + 9 qualities x 1 seed. Set data.root to a folder of class subfolders.

helmjax does not download COWC. Make the folder from the public release's detection patch set
(`datasets/patch_sets/detection/`: COWC_Detection_<site>.tbz for Toronto_ISPRS, Selwyn_LINZ, Potsdam_ISPRS,
Vaihingen_ISPRS, Columbus_CSUAV_AFRL and Utah_AGRC). Each archive unpacks to <site>/train/ and <site>/test/, the class
in each patch's name: car.* (a car at the centre) and neg.* (none, hard negatives included), the labels
COWC_{train,test}_list_detection.txt also give (1, 0). Sort them into the loader's split layout, keeping the release's
train/test split (run where the archives were unpacked; the folder is ../cowc, classes car and no_car):

    for s in train test; do mkdir -p ../cowc/$s/car ../cowc/$s/no_car
      find */$s -name 'car.*' -exec cp -t ../cowc/$s/car {} +
      find */$s -name 'neg.*' -exec cp -t ../cowc/$s/no_car {} +
    done

Patches are stored at 64x64 (`data.image_size`; 64x64 as the COWC-M release's pre-extracted patches at 15 cm per
pixel, kept exactly; larger patches are resized to it, `data.image_size=None` keeps their own size). Training
shifts and flips them rather than taking random-resized crops, since the label says whether a car is at the centre.
"""

import ml_collections

from experiments._common import PAPER_QUALITIES, imagenet_train, jpeg_quantizer


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "cowc_q_sweep"
    c.data = ml_collections.ConfigDict(dict(name="image_folder", root="", image_size=64, test_fraction=0.2, seed=0,
                                            split_seed=0))
    c.quantizer = jpeg_quantizer("pillow_jpeg")
    c.model = ml_collections.ConfigDict(dict(family="imagenet", width=1.0, dropout=0.5))
    c.train = imagenet_train(batch_size=128, epochs=30, crop_size=0)
    # AlexNet's rate (0.01 per 256 images: it has no normalisation layers) and weight decay; a shorter warm-up for the
    # fewer epochs; shift and flip, which keep the centre's car in view.
    c.train.update(lr=0.01 * 128 / 256, weight_decay=5e-4, warmup_epochs=2.0, augment_mode="", shift_fraction=0.1,
                   val_fraction=0.05)
    c.grid = ml_collections.ConfigDict(dict(level=["raw"] + PAPER_QUALITIES, arch=["alexnet"], seed=[0]))
    c.tolerance = 0.02
    return c
