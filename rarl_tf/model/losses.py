"""The hybrid objective of the paper: classification loss (eq. 9-10), delayed top-n reward
(eq. 5-6) and REINFORCE (eq. 8) with a learned baseline (Mnih et al. 2014).

Every function returns one value per example; the caller averages over the *global* batch
(`tf.nn.compute_average_loss`) so that tf.distribute replicas sum to the single-device update.
"""

from __future__ import annotations

import tensorflow as tf


def classification_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Squared error between softmax(a) and y / |y|_1 (eq. 9-10).

    Args:
      logits: [B, C] category-wise max-pooled scores a.
      labels: [B, C] multi-hot ground truth.

    Returns:
      [B] sum over classes of (p - p_hat)^2. An image with no label has p_hat = 0, not 0/0, so
      its loss (sum of p^2) stays finite.
    """
    labels = tf.cast(labels, logits.dtype)
    target = labels / tf.maximum(tf.reduce_sum(labels, axis=-1, keepdims=True), 1.0)
    return tf.reduce_sum(tf.square(tf.nn.softmax(logits, axis=-1) - target), axis=-1)


def top_n_reward(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """r_T = |top-n(a) ∩ g| / n with n = |g| (eq. 5).

    Args:
      logits: [B, C] scores.
      labels: [B, C] multi-hot ground truth g.

    Returns:
      [B] reward in [0, 1]; 0 for an image without labels (the caller masks those out).
      Ties in the scores are broken towards the lower class index.
    """
    labels = tf.cast(labels, tf.float32)
    n = tf.reduce_sum(labels, axis=-1, keepdims=True)
    # rank[c] = position of class c in the descending order of scores.
    order = tf.argsort(logits, axis=-1, direction="DESCENDING", stable=True)
    ranks = tf.argsort(order, axis=-1, stable=True)
    in_top_n = tf.cast(tf.cast(ranks, tf.float32) < n, tf.float32)
    hits = tf.reduce_sum(in_top_n * labels, axis=-1)
    return hits / tf.maximum(tf.squeeze(n, -1), 1.0)


def reinforce_terms(log_probs: tf.Tensor, baselines: tf.Tensor, reward: tf.Tensor,
                    valid: tf.Tensor, discount: float = 1.0) -> tuple[tf.Tensor, tf.Tensor]:
    """REINFORCE surrogate and baseline regression for the T location decisions.

    The episode's return is R = gamma^(T-1) r_T (eq. 6 with the reward only at t = T); every
    decision l_1..l_T is credited with it, less the baseline predicted at that step.

    Args:
      log_probs: [B, T] log pi(l_t); its gradient reaches the location head's mean only.
      baselines: [B, T] b_t, computed from a stop-gradient copy of the state.
      reward: [B] r_T.
      valid: [B] 1 for images whose reward is defined (at least one label), else 0.
      discount: gamma (paper: 1).

    Returns:
      ([B] surrogate loss -sum_t log pi(l_t) (R - b_t), [B] sum_t (R - b_t)^2).
    """
    num_steps = log_probs.shape[-1]
    ret = tf.stop_gradient(reward * (discount ** (num_steps - 1)))[:, None]
    advantage = tf.stop_gradient(ret - baselines)
    surrogate = -tf.reduce_sum(log_probs * advantage, axis=-1) * valid
    baseline_mse = tf.reduce_sum(tf.square(ret - baselines), axis=-1) * valid
    return surrogate, baseline_mse
