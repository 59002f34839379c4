"""The hybrid objective of the paper: classification loss (eq. 9-10), delayed top-n reward
(eq. 5-6) and REINFORCE (eq. 8) with a learned baseline (Mnih et al. 2014).

Every function returns one value per example; the caller averages over the *global* batch
(`tf.nn.compute_average_loss`) so that tf.distribute replicas sum to the single-device update.
"""

from __future__ import annotations

import tensorflow as tf

from rarl_tf.config.experiment import REWARDS, STEP_REWARDS


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
      logits: [..., C] scores.
      labels: [..., C] multi-hot ground truth g.

    Returns:
      [...] reward in [0, 1]; 0 for an image without labels (the caller masks those out).
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


def log_likelihood_reward(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """r_T = sum_c (y_c / |y|_1) log softmax(a)_c: the log-likelihood of the true labels.

    Unlike eq. 5 it does not saturate once the true labels rank first: a glimpse that makes a
    true label more certain still earns more. A departure from the paper (`--reward`).

    Args:
      logits: [..., C] scores; labels: [..., C] multi-hot.

    Returns:
      [...] reward <= 0 (nats); 0 for an image without labels (masked out by the caller).
    """
    labels = tf.cast(labels, logits.dtype)
    target = labels / tf.maximum(tf.reduce_sum(labels, axis=-1, keepdims=True), 1.0)
    return tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def reward(kind: str, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The delayed reward r_T named by `kind` (one of REWARDS), [...] from [..., C]."""
    if kind == "top_n":
        return top_n_reward(logits, labels)
    if kind == "log_likelihood":
        return log_likelihood_reward(logits, labels)
    raise ValueError(f"reward={kind!r}; expected one of {REWARDS}")


def step_rewards(
    kind: str, step_reward: str, step_logits: tf.Tensor, labels: tf.Tensor
) -> tf.Tensor:
    """r_1..r_T of the T decisions: [..., T].

    Args:
      kind: the reward (`REWARDS`) of a set of scores.
      step_reward: "final", the paper's delayed reward: r_T = R_T, the reward of the scores
        max-pooled over every step, and r_t = 0 before; or "improvement", r_t = R_t - R_{t-1}
        with R_t the reward of the scores max-pooled over steps 1..t (`prefix_rewards`): what
        step t added (the terms telescope: sum_t r_t = R_T - R_0).
      step_logits: [..., T, C] scores of each step (max over its k regions).
      labels: multi-hot [..., C], broadcastable against one step's scores.
    """
    if step_reward == "final":
        final = reward(kind, tf.reduce_max(step_logits, axis=-2), labels)
        return tf.concat([tf.zeros_like(step_logits[..., 1:, 0]), final[..., None]], -1)
    if step_reward == "improvement":
        prefix = prefix_rewards(kind, step_logits, labels)
        return prefix[..., 1:] - prefix[..., :-1]
    raise ValueError(f"step_reward={step_reward!r}; expected one of {STEP_REWARDS}")


def step_returns(rewards: tf.Tensor, discount: float = 1.0) -> tf.Tensor:
    """G_t = sum_{s >= t} gamma^(s - t) r_s: [..., T] from r_1..r_T [..., T].

    With the "final" reward this is gamma^(T - t) r_T (eq. 6); with "improvement" and
    gamma < 1 a step answers less for the noise its successors add.
    """
    returns, running = [], tf.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + discount * running
        returns.append(running)
    return tf.stack(returns[::-1], axis=-1)


def prefix_rewards(kind: str, step_logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """R_0..R_T: the reward (`kind`) of the scores max-pooled over steps 1..t.

    Args:
      step_logits: [..., T, C] scores of each step (max over its k regions).
      labels: multi-hot [..., C], broadcastable against one step's scores.

    Returns:
      [..., T + 1]; R_0 scores all-zero logits (a constant per image).
    """
    running = tf.zeros_like(step_logits[..., 0, :])
    rewards = [reward(kind, running, labels)]
    for t in range(step_logits.shape[-2]):
        running = step_logits[..., t, :] if t == 0 else tf.maximum(running, step_logits[..., t, :])
        rewards.append(reward(kind, running, labels))
    return tf.stack(rewards, axis=-1)


def advantages(returns: tf.Tensor, baselines: tf.Tensor) -> tf.Tensor:
    """A = R - b, with gradients stopped: [B, K, T] from returns and baselines [B, K, T].

    With one trajectory per image (K = 1) b is the learned baseline b_t(h_t) of Mnih et al.
    (2014). With K > 1 trajectories of the same image, b is the mean return of the other K - 1
    (the leave-one-out baseline of Kool et al. 2019): unbiased, and it removes what the image
    alone decides, leaving the part of the return the locations cause. Over an image's K
    trajectories these advantages sum to zero.
    """
    k = returns.shape[1]
    if k is None or k == 1:
        return tf.stop_gradient(returns - baselines)
    others = (tf.reduce_sum(returns, axis=1, keepdims=True) - returns) / (k - 1)
    return tf.stop_gradient(returns - others)


def reinforce_terms(
    log_probs: tf.Tensor, baselines: tf.Tensor, returns: tf.Tensor, valid: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """REINFORCE surrogate and baseline regression for the T location decisions.

    Decision l_t is credited with its return G_t (`step_returns`), less a baseline
    (`advantages`).

    Args:
      log_probs: [B, K, T] log pi(l_t) of K trajectories per image; its gradient reaches the
        location head's mean only.
      baselines: [B, K, T] b_t, computed from a stop-gradient copy of the state.
      returns: [B, K, T] G_t.
      valid: [B] 1 for images whose reward is defined (at least one label), else 0.

    Returns:
      ([B] surrogate loss -sum_t log pi(l_t) A_t, [B] sum_t (G_t - b_t)^2), each averaged
      over the K trajectories. With K > 1 the leave-one-out baseline replaces b_t, so b_t is
      not trained: its regression is 0 (it would only add an unused term to the loss).
    """
    returns = tf.stop_gradient(returns)
    advantage = advantages(returns, baselines)
    surrogate = -tf.reduce_mean(tf.reduce_sum(log_probs * advantage, axis=-1), axis=1) * valid
    baseline_mse = (
        tf.reduce_mean(tf.reduce_sum(tf.square(returns - baselines), axis=-1), axis=1) * valid
    )
    if returns.shape[1] is not None and returns.shape[1] > 1:
        # At weight 0 rather than left out: b_t still gets a (zero) gradient, so Keras does not
        # warn of variables without one and the optimizer's state keeps its layout.
        baseline_mse = 0.0 * baseline_mse
    return surrogate, baseline_mse
