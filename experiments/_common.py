"""Shared defaults of the experiments: the paper's training recipe (Friedland et al., CIFAR-10)."""

import ml_collections

PAPER_QUALITIES = [1, 5, 10, 15, 20, 25, 50, 75, 100]


def paper_train() -> ml_collections.ConfigDict:
    """SGD with Nesterov momentum 0.9, lr 0.01 with Keras decay 1e-6 per step, batch 128, 200 epochs,
    shift 10% + horizontal flip; the best epoch is chosen on a validation split carved from train."""
    return ml_collections.ConfigDict(dict(
        optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True, lr_decay=1e-6, rho=0.95,
        batch_size=128, eval_batch_size=1000, epochs=200, augment=True, shift_fraction=0.1, standardize=False,
        max_steps_per_epoch=0, val_fraction=0.1))


def jpeg_quantizer(name: str = "pillow_jpeg") -> ml_collections.ConfigDict:
    """JPEG at quality q, 4:2:0 chroma subsampling (libjpeg's default), on train and test."""
    return ml_collections.ConfigDict(dict(name=name, subsampling="4:2:0", apply_to="both"))
