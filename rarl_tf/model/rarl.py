"""RARLModel: backbone -> recurrent attention -> category-wise max pooling, with the hybrid loss
in a custom `train_step`.

Shapes, for a batch of B images of H x W pixels seen through V views, T iterations, k anchors and
C classes:

    images [B, H, W, 3] (float pixels in [0, 255], RGB)
      -> backbone -> features [B, h, w, F]
      -> RecurrentAttention -> region_logits [B, V, T, k, C]
      -> max over (T, k) -> view_logits [B, V, C]      (eq. 3, category-wise max pooling)
      -> softmax, mean over V -> probs [B, C]           (eq. 10; views averaged as in the paper)
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from rarl_tf.model import backbone as backbone_lib
from rarl_tf.model import losses
from rarl_tf.model.agent import RecurrentAttention
from rarl_tf.model.views import FULL_VIEW


@keras.saving.register_keras_serializable(package="rarl_tf")
class RARLModel(keras.Model):
    """Recurrent Attention Reinforcement Learning for multi-label recognition.

    Args:
      num_classes: C.
      backbone: "vgg16" (conv5_3) or "small_vgg".
      backbone_weights: "imagenet", "none" or a `.weights.h5` path (vgg16 only).
      backbone_widths: channel widths of small_vgg's blocks.
      discount: gamma of eq. 6 (paper: 1).
      reinforce_weight: weight of the REINFORCE surrogate in the hybrid loss.
      baseline_weight: weight of the baseline's squared error.
      sample_locations: sample l_t from the policy in `train_step` (REINFORCE needs it);
        False uses the policy's mean, which makes a training step deterministic (tests).
      **agent_kwargs: `RecurrentAttention` arguments (anchor_sizes, aspect_ratios, num_steps,
        crop_size, embed_dim, lstm_units, loc_std, crop_mode, seed).
    """

    def __init__(self, num_classes: int, backbone: str = "vgg16",
                 backbone_weights: str | None = "imagenet",
                 backbone_widths: Sequence[int] = (32, 64, 128), discount: float = 1.0,
                 reinforce_weight: float = 1.0, baseline_weight: float = 1.0,
                 sample_locations: bool = True, agent_kwargs: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone
        self.backbone_weights = backbone_weights
        self.backbone_widths = tuple(int(w) for w in backbone_widths)
        self.discount = float(discount)
        self.reinforce_weight = float(reinforce_weight)
        self.baseline_weight = float(baseline_weight)
        self.sample_locations = bool(sample_locations)
        self.agent_kwargs = dict(agent_kwargs or {})
        self.backbone = backbone_lib.build_backbone(backbone, backbone_weights,
                                                    self.backbone_widths)
        self.agent = RecurrentAttention(num_classes, name="agent", **self.agent_kwargs)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ("loss", "cls_loss", "reward", "reinforce_loss", "baseline_loss")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False, views=None, sample=None):
        """Forward pass.

        Args:
          images: [B, H, W, 3] pixels in [0, 255].
          training: batch-norm mode; also the default for `sample`.
          views: [V, 4] view boxes on the map (see `views.py`); default the whole image.
          sample: sample locations from the policy instead of taking its mean.

        Returns:
          The agent's outputs (see `RecurrentAttention.call`) plus
            view_logits [B, V, C]: a per view;
            logits [B, C]: a of the first view (training uses one view);
            probs [B, C]: softmax(a) averaged over the views.
        """
        images = tf.cast(images, self.compute_dtype)
        views = FULL_VIEW if views is None else views
        sample = training if sample is None else sample
        features = self.backbone(images, training=training)
        image_size = (images.shape[1], images.shape[2])
        if image_size[0] is None or image_size[1] is None:
            # Anchor sizes are in pixels, so the image size must be known; take it at run time.
            shape = tf.cast(tf.shape(images)[1:3], tf.float32)
            image_size = (shape[0], shape[1])
        out = self.agent(features, views, image_size=image_size, sample=bool(sample))
        view_logits = tf.reduce_max(out["region_logits"], axis=[2, 3])
        out["view_logits"] = view_logits
        out["logits"] = view_logits[:, 0]
        out["probs"] = tf.reduce_mean(tf.nn.softmax(view_logits, axis=-1), axis=1)
        return out

    def compute_terms(self, out, labels):
        """Per-example loss terms (each [B]) of one forward pass with one view."""
        cls = losses.classification_loss(out["logits"], labels)
        reward = losses.top_n_reward(tf.stop_gradient(out["logits"]), labels)
        valid = tf.cast(tf.reduce_sum(tf.cast(labels, tf.float32), -1) > 0, tf.float32)
        surrogate, baseline_mse = losses.reinforce_terms(
            out["log_probs"][:, 0], out["baselines"][:, 0], reward, valid, self.discount)
        total = cls + self.reinforce_weight * surrogate + self.baseline_weight * baseline_mse
        return {"loss": total, "cls_loss": cls, "reward": reward,
                "reinforce_loss": surrogate, "baseline_loss": baseline_mse}

    def _update_trackers(self, terms):
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        images, labels = data[0], data[1]
        with tf.GradientTape() as tape:
            out = self(images, training=True, sample=self.sample_locations)
            terms = self.compute_terms(out, labels)
            # Divide by the global batch so replicas' gradients sum to one device's update.
            loss = tf.nn.compute_average_loss(terms["loss"])
            loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update_trackers(terms)

    def test_step(self, data):
        images, labels = data[0], data[1]
        out = self(images, training=False)
        return self._update_trackers(self.compute_terms(out, labels))

    def get_config(self):
        return {"num_classes": self.num_classes, "backbone": self.backbone_name,
                "backbone_weights": self.backbone_weights,
                "backbone_widths": list(self.backbone_widths), "discount": self.discount,
                "reinforce_weight": self.reinforce_weight,
                "baseline_weight": self.baseline_weight,
                "sample_locations": self.sample_locations, "agent_kwargs": self.agent_kwargs,
                "name": self.name}
