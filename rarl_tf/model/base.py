"""What RARL and the global-pooling baseline share: a backbone, per-example loss terms averaged
into running metrics, and the custom `train_step` / `test_step` around them.

A subclass builds its head, names its `TRACKED` terms and writes `loss_terms`:

    images [B, H, W, 3] -> loss_terms -> {"loss": [B], other terms [B]}
      train_step: mean over the GLOBAL batch (tf.distribute replicas sum to one device's
      update), gradient, Adam; every term's running mean is a metric.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from rarl_tf.config.experiment import ModelConfig
from rarl_tf.model import backbone as backbone_lib

# Registers PolicyRateAdam: `keras.saving.load_model` rebuilds a model.keras's optimizer too.
from rarl_tf.model import optimizer as _optimizer  # noqa: F401

# Argument defaults are the config's (the paper's), kept in one place: config/experiment.py.
_M = ModelConfig()


class MultiLabelModel(keras.Model):
    """A backbone and the training loop of a multi-label classifier.

    Args:
      num_classes: C.
      backbone: "vgg16" (conv5_3) or "small_vgg".
      backbone_weights: "imagenet", "none" or a `.weights.h5` path (vgg16 only).
      backbone_widths: channel widths of small_vgg's blocks.
    """

    # The per-example terms whose running means are the model's metrics ("loss" first).
    TRACKED: tuple[str, ...] = ("loss",)

    def __init__(
        self,
        num_classes: int,
        backbone: str = _M.backbone,
        backbone_weights: str | None = _M.backbone_weights,
        backbone_widths: Sequence[int] = _M.backbone_widths,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        # `backbone` is the layer (its weights' path in every saved file), so its name is kept
        # as `backbone_name`.
        self.backbone_name = backbone
        self.backbone_weights = backbone_weights
        self.backbone_widths = tuple(int(w) for w in backbone_widths)
        self.backbone = backbone_lib.build_backbone(
            backbone, backbone_weights, self.backbone_widths
        )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.TRACKED}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def loss_terms(self, images, labels, training: bool) -> dict:
        """Per-example terms [B] of `TRACKED`, "loss" the one minimised."""
        raise NotImplementedError

    def _update_trackers(self, terms):
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        images, labels = data[0], data[1]
        with tf.GradientTape() as tape:
            terms = self.loss_terms(images, labels, training=True)
            # Divide by the global batch so replicas' gradients sum to one device's update.
            loss = self.optimizer.scale_loss(tf.nn.compute_average_loss(terms["loss"]))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update_trackers(terms)

    def test_step(self, data):
        return self._update_trackers(self.loss_terms(data[0], data[1], training=False))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "backbone": self.backbone_name,
            "backbone_weights": self.backbone_weights,
            "backbone_widths": list(self.backbone_widths),
            "name": self.name,
        }
