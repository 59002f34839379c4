"""The global-feature baseline ("VeryDeep"-style): backbone -> global average pooling -> dense.

No attention: each view's part of the feature map is averaged and scored by one dense layer,
trained with the same eq. 9 loss as RARL so the two differ only in the attention.

    images [B, H, W, 3] -> backbone -> features [B, h, w, F]
      -> crop each of the V views on the map (the same crop RARL uses) -> [B * V, h, w, F]
      -> mean over the grid -> [B * V, F] -> dense -> view_logits [B, V, C]
      -> softmax, mean over V -> probs [B, C]
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rarl_tf.model import crop as crop_lib
from rarl_tf.model import losses
from rarl_tf.model.base import MultiLabelModel
from rarl_tf.model.views import FULL_VIEW


@keras.saving.register_keras_serializable(package="rarl_tf")
class GlobalPoolingClassifier(MultiLabelModel):
    """Backbone features averaged over each view, one dense layer, the paper's eq. 9 loss.

    Args:
      num_classes: C.
      crop_mode: "crop_and_resize" or "matmul" (XLA), as `RecurrentAttention`.
      **kwargs: `MultiLabelModel`'s (backbone, backbone_weights, backbone_widths) and Keras's.
    """

    TRACKED = ("loss", "cls_loss")

    def __init__(
        self,
        num_classes: int,
        crop_mode: str = "crop_and_resize",
        **kwargs,
    ):
        super().__init__(num_classes, **kwargs)
        self.crop_mode = crop_mode
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, images, training=False, views=None, sample=None):
        """images [B, H, W, 3] pixels in [0, 255] -> {"view_logits" [B, V, C], "logits" [B, C]
        (first view), "probs" [B, C]}. `sample` is accepted for RARLModel's signature."""
        del sample
        images = tf.cast(images, self.compute_dtype)
        views = tf.convert_to_tensor(FULL_VIEW if views is None else views, tf.float32)
        features = self.backbone(images, training=training)
        batch, num_views = tf.shape(features)[0], views.shape[0]
        boxes = tf.reshape(views[None] + tf.zeros([batch, 1, 1]), [-1, 4])
        # Resampled at the map's own size, so the full view is the map itself (7 x 7 when the
        # size is only known at run time).
        if self.crop_mode == "matmul":
            regions = crop_lib.crop_regions_matmul(features, boxes, None, features.shape[1])
        else:
            owners = tf.repeat(tf.range(batch, dtype=tf.int32), num_views)
            regions = crop_lib.crop_regions(features, boxes, owners, features.shape[1] or 7)
        pooled = tf.reduce_mean(regions, axis=[1, 2])  # [B * V, F]
        view_logits = tf.reshape(self.classifier(pooled), [batch, num_views, self.num_classes])
        return {
            "view_logits": view_logits,
            "logits": view_logits[:, 0],
            "probs": tf.reduce_mean(tf.nn.softmax(view_logits, axis=-1), axis=1),
        }

    def loss_terms(self, images, labels, training: bool) -> dict:
        cls = losses.classification_loss(self(images, training=training)["logits"], labels)
        return {"loss": cls, "cls_loss": cls}

    def get_config(self):
        return {**super().get_config(), "crop_mode": self.crop_mode}
