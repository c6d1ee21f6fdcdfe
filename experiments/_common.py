"""Shared defaults of the experiments: the paper's training recipe (Friedland et al., CIFAR-10)."""

import ml_collections

PAPER_QUALITIES = [1, 5, 10, 15, 20, 25, 50, 75, 100]


def paper_train() -> ml_collections.ConfigDict:
    """SGD with Nesterov momentum 0.9, lr 0.01 with Keras decay 1e-6 per step, batch 128, 200 epochs,
    shift 10% + horizontal flip; the best epoch is chosen on a validation split carved from train."""
    return ml_collections.ConfigDict(dict(
        optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True, lr_decay=1e-6, rho=0.95,
        batch_size=128, eval_batch_size=1000, epochs=200, augment=True, shift_fraction=0.1, standardize=False,
        max_steps_per_epoch=0, micro_batches=0, val_fraction=0.1,
        stack=0))  # runs trained together as one program; 0 = what is fastest here (1 on CPU, 8 on GPU/TPU)


def jpeg_quantizer(name: str = "jax_jpeg") -> ml_collections.ConfigDict:
    """JPEG at quality q, 4:2:0 chroma subsampling (libjpeg's default), on train and test. `jax_jpeg` (the JAX
    codec, on the accelerator) gives exactly Pillow's pixels; file sizes come from Pillow's encoder either way;
    `--set quantizer.name=pillow_jpeg` uses Pillow for the pixels too."""
    return ml_collections.ConfigDict(dict(name=name, subsampling="4:2:0", apply_to="both"))


def audio_paper_train() -> ml_collections.ConfigDict:
    """The paper's audio recipe: Adadelta (lr 1.0, rho 0.95), batch 50, 200 epochs, no augmentation."""
    train = paper_train()
    train.update(optimizer="adadelta", lr=1.0, rho=0.95, lr_decay=0.0, batch_size=50, epochs=200, augment=False)
    return train


def mp3_quantizer() -> ml_collections.ConfigDict:
    """Constant-bitrate MP3 (LAME), decoded by libsndfile, aligned back to the input's rate and length."""
    return ml_collections.ConfigDict(dict(name="mp3", apply_to="both"))


def log_mel(**overrides) -> ml_collections.ConfigDict:
    """The paper's features: 96 mels, n_fft 2048, hop 512, power in dB (96 x 173 for 2 s at 44.1 kHz)."""
    return ml_collections.ConfigDict(dict(dict(name="log_mel", n_mels=96, n_fft=2048, hop_length=512, top_db=80.0),
                                          **overrides))


def imagenet_train(batch_size: int = 256, epochs: int = 90, crop_size: int = 224) -> ml_collections.ConfigDict:
    """The standard large-scale recipe (Goyal et al. 2017; flax's ImageNet example): SGD momentum 0.9, lr 0.1 per
    256 images, 5 warm-up epochs then cosine decay to 0, weight decay 1e-4 on kernels, label smoothing 0.1,
    random-resized crop to `crop_size` and flip for training, the centre crop for evaluation."""
    train = paper_train()
    train.update(optimizer="sgd", lr=0.1 * batch_size / 256, momentum=0.9, nesterov=False, lr_decay=0.0,
                 batch_size=batch_size, eval_batch_size=1000, epochs=epochs, augment=True,
                 lr_schedule="cosine", warmup_epochs=5.0, lr_steps=[], weight_decay=1e-4, label_smoothing=0.1,
                 augment_mode="random_resized_crop", crop_size=crop_size, val_fraction=0.01)
    return train
