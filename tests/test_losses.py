import numpy as np
import tensorflow as tf

from rarl_tf.model import losses


def test_reward_is_the_top_n_overlap():
    logits = tf.constant([[5.0, 4.0, 3.0, 2.0],    # g = {0, 2}: top-2 = {0, 1} -> 1/2
                          [1.0, 2.0, 3.0, 4.0],    # g = {3}: top-1 = {3} -> 1
                          [9.0, 1.0, 1.0, 1.0],    # g = {1, 2, 3}: top-3 = {0, 1, 2} -> 2/3
                          [1.0, 1.0, 1.0, 1.0]])   # g = {} -> 0 (undefined, masked by caller)
    labels = tf.constant([[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 1], [0, 0, 0, 0]], tf.float32)
    np.testing.assert_allclose(losses.top_n_reward(logits, labels).numpy(), [0.5, 1.0, 2 / 3, 0.0],
                               atol=1e-6)


def test_classification_loss_matches_eq_9_and_is_finite_without_labels():
    logits = tf.constant([[0.0, 0.0], [2.0, 0.0]])
    labels = tf.constant([[1.0, 1.0], [0.0, 0.0]])
    loss = losses.classification_loss(logits, labels).numpy()
    p = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    np.testing.assert_allclose(loss, [0.0, (p ** 2).sum()], atol=1e-6)
    assert np.all(np.isfinite(loss))


def test_reinforce_terms_weight_log_probs_by_the_advantage():
    log_probs = tf.Variable([[-1.0, -2.0]])
    baselines = tf.constant([[0.25, 0.5]])
    with tf.GradientTape() as tape:
        surrogate, baseline_mse = losses.reinforce_terms(log_probs, baselines, tf.constant([1.0]),
                                                         tf.constant([1.0]), discount=0.5)
    # R = 0.5^(T-1) * 1 = 0.5; advantages 0.25 and 0.
    np.testing.assert_allclose(surrogate.numpy(), [-(-1.0 * 0.25 + -2.0 * 0.0)], atol=1e-6)
    np.testing.assert_allclose(baseline_mse.numpy(), [0.25 ** 2], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(surrogate, log_probs).numpy(), [[-0.25, 0.0]])
