"""Backbones: image pixels -> the feature map f_I the agent crops from.

* `vgg16`: VGG16 up to conv5_3 (stride 16, 512 channels), the paper's backbone, through
  `keras.applications.VGG16`; `weights` is "imagenet" (downloaded by Keras), None, or a path to a
  `.weights.h5` file of the full RARL model's backbone or of a VGG16 without top.
* `small_vgg`: a VGG-style net with batch norm for the embedded `cluttered_digits` default,
  trained from scratch (stride 4, 128 channels).

Both take float pixels in [0, 255], RGB, shape [B, H, W, 3], and do their own preprocessing so an
exported model can be fed raw pixels.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rarl_tf.config.experiment import BACKBONES

# ImageNet channel means of the Caffe VGG16 weights (keras.applications.vgg16.preprocess_input).
_VGG_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="rarl_tf")
class CaffePreprocess(keras.layers.Layer):
    """RGB [0, 255] -> BGR minus the ImageNet mean, as the Caffe VGG16 weights expect.

    Written with split/concat instead of a reversed slice so TFLite's GPU delegate accepts it.
    """

    def call(self, images):
        r, g, b = tf.split(tf.cast(images, self.compute_dtype), 3, axis=-1)
        return tf.concat(
            [b - _VGG_MEAN_BGR[0], g - _VGG_MEAN_BGR[1], r - _VGG_MEAN_BGR[2]], axis=-1
        )


def vgg16_conv5_3(weights: str | None = "imagenet") -> keras.Model:
    """VGG16 up to conv5_3: [B, H, W, 3] pixels -> [B, H/16, W/16, 512]."""
    keras_weights = weights if weights in ("imagenet", None) else None
    vgg = keras.applications.VGG16(
        include_top=False, weights=keras_weights, input_shape=(None, None, 3)
    )
    if weights not in ("imagenet", None):
        vgg.load_weights(weights)
    inputs = keras.Input((None, None, 3), name="pixels")
    trunk = keras.Model(vgg.input, vgg.get_layer("block5_conv3").output, name="vgg16_trunk")
    return keras.Model(inputs, trunk(CaffePreprocess()(inputs)), name="vgg16_conv5_3")


def small_vgg(widths: tuple[int, ...]) -> keras.Model:
    """Conv-BN-ReLU blocks, 2x2 max pooling between them.

    [B, H, W, 3] -> [B, H/4, W/4, widths[-1]].
    """
    inputs = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    for i, width in enumerate(widths):
        for _ in range(1 if i < len(widths) - 1 else 2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            # synchronized: under tf.distribute the batch statistics are those of the global
            # batch, so N replicas train exactly like one device with the same global batch.
            x = keras.layers.BatchNormalization(synchronized=True)(x)
            x = keras.layers.ReLU()(x)
        if i < len(widths) - 1:
            x = keras.layers.MaxPool2D()(x)
    return keras.Model(inputs, x, name="small_vgg")


def build_backbone(name: str, weights: str | None, widths: tuple[int, ...]) -> keras.Model:
    """Builds a backbone by name ("vgg16" or "small_vgg"); weights "none" means None; widths
    are small_vgg's block widths (the config's `backbone_widths`)."""
    weights = None if weights in (None, "none") else weights
    if name == "vgg16":
        return vgg16_conv5_3(weights)
    if name == "small_vgg":
        if weights is not None:
            raise ValueError(
                f"backbone small_vgg is trained from scratch; got backbone_weights="
                f"{weights!r}, expected none"
            )
        return small_vgg(widths)
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
