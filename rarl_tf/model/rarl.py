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

import keras
import tensorflow as tf

from rarl_tf.config.experiment import REWARDS, STEP_REWARDS, ModelConfig, check_choices
from rarl_tf.model import losses
from rarl_tf.model.agent import RecurrentAttention
from rarl_tf.model.base import MultiLabelModel
from rarl_tf.model.views import FULL_VIEW

# Argument defaults are the config's (the paper's), kept in one place: config/experiment.py.
_M = ModelConfig()


@keras.saving.register_keras_serializable(package="rarl_tf")
class RARLModel(MultiLabelModel):
    """Recurrent Attention Reinforcement Learning for multi-label recognition.

    Args:
      num_classes: C.
      discount: gamma of eq. 6 (paper: 1).
      trajectories: K, location trajectories sampled per training image on its one feature map
        (the backbone runs once); K > 1 uses the leave-one-out baseline (`losses.advantages`),
        K = 1 the paper's single episode with a learned baseline.
      reward: "top_n" (eq. 5) or "log_likelihood" (`experiment.REWARDS`).
      step_reward: "final" (eq. 6: the reward at T only) or "improvement" (step t earns what
        it added to the reward; `losses.step_rewards`).
      sample_locations: sample l_t from the policy in `train_step` (REINFORCE needs it);
        False uses the policy's mean, which makes a training step deterministic (tests).
      agent_kwargs: `RecurrentAttention` arguments (anchor_sizes, aspect_ratios, num_steps,
        crop_size, embed_dim, lstm_units, crop_mode, seed, policy).
      **kwargs: `MultiLabelModel`'s (backbone, backbone_weights, backbone_widths) and Keras's.
    """

    TRACKED = (
        "loss",
        "cls_loss",
        "reward",
        "reinforce_loss",
        "baseline_loss",
        "reward_spread",
        "step_distance",
    )

    def __init__(
        self,
        num_classes: int,
        discount: float = _M.discount,
        trajectories: int = _M.trajectories,
        reward: str = _M.reward,
        step_reward: str = _M.step_reward,
        sample_locations: bool = True,
        agent_kwargs: dict | None = None,
        **kwargs,
    ):
        super().__init__(num_classes, **kwargs)
        self.discount = float(discount)
        self.trajectories = int(trajectories)
        check_choices(reward=(reward, REWARDS), step_reward=(step_reward, STEP_REWARDS))
        self.reward = reward
        self.step_reward = step_reward
        self.sample_locations = bool(sample_locations)
        self.agent_kwargs = dict(agent_kwargs or {})
        self.agent = RecurrentAttention(num_classes, name="agent", **self.agent_kwargs)

    def call(self, images, training=False, views=None, sample=None, trajectories=1, override=None):
        """Forward pass.

        Args:
          images: [B, H, W, 3] pixels in [0, 255].
          training: batch-norm mode; also the default for `sample`.
          views: [V, 4] view boxes on the map (see `views.py`); default the whole image.
          sample: sample locations from the policy instead of taking its mean.
          trajectories: K episodes per (image, view) on the one backbone pass (see
            `RecurrentAttention.call`); the outputs' view axis is then V * K.
          override: a test-time `overrides.PolicyOverride` of the location policy (or None).

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
        out = self.agent(
            features,
            views,
            image_size=image_size,
            sample=bool(sample),
            trajectories=trajectories,
            override=override,
        )
        view_logits = tf.reduce_max(out["region_logits"], axis=[2, 3])
        out["view_logits"] = view_logits
        out["logits"] = view_logits[:, 0]
        out["probs"] = tf.reduce_mean(tf.nn.softmax(view_logits, axis=-1), axis=1)
        return out

    def compute_terms(self, out, labels):
        """Per-example loss terms and diagnostics (each [B]) of one forward pass whose V views
        are K trajectories through the same view (V = 1: one episode per image).

        Besides the loss terms: `reward_spread`, the standard deviation of r_T over an image's
        K trajectories (0 when the reward does not depend on where the agent looks), and
        `step_distance`, the mean distance between consecutive locations (view frame).
        """
        logits = out["view_logits"]  # [B, K, C]
        labels = tf.cast(labels, logits.dtype)[:, None, :]
        cls = tf.reduce_mean(losses.classification_loss(logits, labels), axis=1)
        reward = losses.reward(self.reward, tf.stop_gradient(logits), labels)  # [B, K]: R_T
        step_logits = tf.stop_gradient(tf.reduce_max(out["region_logits"], axis=3))
        rewards = losses.step_rewards(self.reward, self.step_reward, step_logits, labels)
        returns = losses.step_returns(rewards, self.discount)  # [B, K, T]
        valid = tf.cast(tf.reduce_sum(labels[:, 0], -1) > 0, tf.float32)
        surrogate, baseline_mse = losses.reinforce_terms(
            out["log_probs"], out["baselines"], returns, valid
        )
        steps = out["locations"]  # [B, K, T, 2]
        # With T = 1 there is no pair of steps: 0 rather than the NaN mean of nothing.
        distance = tf.norm(
            tf.concat([steps[:, :, 1:] - steps[:, :, :-1], tf.zeros_like(steps[:, :, :1])], axis=2),
            axis=-1,
        )
        return {
            "loss": cls + surrogate + baseline_mse,
            "cls_loss": cls,
            "reward": tf.reduce_mean(reward, axis=1),
            "reinforce_loss": surrogate,
            "baseline_loss": baseline_mse,
            "reward_spread": tf.math.reduce_std(reward, axis=1),
            "step_distance": tf.reduce_mean(tf.reduce_sum(distance, axis=2), axis=1)
            / max(steps.shape[2] - 1, 1),
        }

    def loss_terms(self, images, labels, training: bool) -> dict:
        """`compute_terms` of a training pass (K sampled trajectories per image) or, with
        training False, of the policy's mode through the whole view."""
        if training:
            out = self(
                images, training=True, sample=self.sample_locations, trajectories=self.trajectories
            )
        else:
            out = self(images, training=False)
        return self.compute_terms(out, labels)

    def get_config(self):
        return {
            **super().get_config(),
            "discount": self.discount,
            "trajectories": self.trajectories,
            "reward": self.reward,
            "step_reward": self.step_reward,
            "sample_locations": self.sample_locations,
            "agent_kwargs": self.agent_kwargs,
        }
