import numpy as np
import tensorflow as tf

from rarl_tf.model import losses


def test_reward_is_the_top_n_overlap():
    logits = tf.constant(
        [
            [5.0, 4.0, 3.0, 2.0],  # g = {0, 2}: top-2 = {0, 1} -> 1/2
            [1.0, 2.0, 3.0, 4.0],  # g = {3}: top-1 = {3} -> 1
            [9.0, 1.0, 1.0, 1.0],  # g = {1, 2, 3}: top-3 = {0, 1, 2} -> 2/3
            [1.0, 1.0, 1.0, 1.0],
        ]
    )  # g = {} -> 0 (undefined, masked by caller)
    labels = tf.constant([[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 1], [0, 0, 0, 0]], tf.float32)
    np.testing.assert_allclose(
        losses.top_n_reward(logits, labels).numpy(), [0.5, 1.0, 2 / 3, 0.0], atol=1e-6
    )


def test_classification_loss_matches_eq_9_and_is_finite_without_labels():
    logits = tf.constant([[0.0, 0.0], [2.0, 0.0]])
    labels = tf.constant([[1.0, 1.0], [0.0, 0.0]])
    loss = losses.classification_loss(logits, labels).numpy()
    p = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    np.testing.assert_allclose(loss, [0.0, (p**2).sum()], atol=1e-6)
    assert np.all(np.isfinite(loss))


def test_reinforce_terms_weight_log_probs_by_return_less_baseline():
    log_probs = tf.Variable([[[-1.0, -2.0]]])  # B = 1, K = 1, T = 2
    baselines = tf.constant([[[0.25, 0.5]]])
    returns = tf.constant([[[0.5, 1.0]]])
    with tf.GradientTape() as tape:
        surrogate, baseline_mse = losses.reinforce_terms(
            log_probs, baselines, returns, tf.constant([1.0])
        )
    np.testing.assert_allclose(surrogate.numpy(), [-(-1.0 * 0.25 + -2.0 * 0.5)], atol=1e-6)
    np.testing.assert_allclose(baseline_mse.numpy(), [0.25**2 + 0.5**2], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(surrogate, log_probs).numpy(), [[[-0.25, -0.5]]])
    unlabeled, _ = losses.reinforce_terms(log_probs, baselines, returns, tf.constant([0.0]))
    assert unlabeled.numpy()[0] == 0.0


def test_final_reward_returns_follow_eq_6():
    # One image, T = 3, C = 3, true label 2, found only at step 3.
    step_logits = tf.constant([[[3.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0]]])
    labels = tf.constant([[0.0, 0.0, 1.0]])
    rewards = losses.step_rewards("top_n", "final", step_logits, labels).numpy()
    np.testing.assert_allclose(rewards, [[0.0, 0.0, 1.0]])  # r_T = R_T, nothing before
    returns = losses.step_returns(tf.constant([[0.0, 0.0, 2.0]]), discount=0.9).numpy()
    np.testing.assert_allclose(returns, [[2.0 * 0.81, 2.0 * 0.9, 2.0]], rtol=1e-6)


def test_improvement_returns_credit_each_step_with_what_it_added():
    # R_0..R_3 = 0.1, 0.3, 0.4, 2.0: step rewards 0.2, 0.1, 1.6.
    rewards = tf.constant([[0.2, 0.1, 1.6]])
    np.testing.assert_allclose(
        losses.step_returns(rewards, 0.0).numpy(), [[0.2, 0.1, 1.6]], rtol=1e-5
    )
    # gamma = 1: the rewards telescope, G_t = R_T - R_(t-1).
    np.testing.assert_allclose(
        losses.step_returns(rewards, 1.0).numpy(), [[1.9, 1.7, 1.6]], rtol=1e-5
    )
    # From scores: step 1 ranks class 0 first (R_1 = 0), step 2 finds class 2 (R_2 = 1).
    step_logits = tf.constant([[[3.0, 1.0, 0.0], [0.0, 0.0, 5.0]]])
    labels = tf.constant([[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(
        losses.step_rewards("top_n", "improvement", step_logits, labels).numpy(), [[0.0, 1.0]]
    )


def test_prefix_rewards_max_pool_the_steps_so_far():
    # One image, T = 2, C = 3, true label 2: step 1 ranks class 0 first, step 2 finds class 2.
    step_logits = tf.constant([[[3.0, 1.0, 0.0], [0.0, 0.0, 5.0]]])
    labels = tf.constant([[0.0, 0.0, 1.0]])
    prefix = losses.prefix_rewards("top_n", step_logits, labels).numpy()
    # R_0: all-zero scores rank class 0 first (ties to the lower index): 0.
    np.testing.assert_allclose(prefix, [[0.0, 0.0, 1.0]])
    pooled = losses.prefix_rewards("log_likelihood", step_logits, labels).numpy()[0, -1]
    np.testing.assert_allclose(pooled, tf.nn.log_softmax([3.0, 1.0, 5.0]).numpy()[2], rtol=1e-6)


def test_leave_one_out_advantages_sum_to_zero_over_an_images_trajectories():
    rng = np.random.default_rng(0)
    returns = tf.constant(rng.uniform(size=(3, 4, 5)), tf.float32)  # B = 3, K = 4, T = 5
    baselines = tf.constant(rng.uniform(size=(3, 4, 5)), tf.float32)
    adv = losses.advantages(returns, baselines).numpy()
    np.testing.assert_allclose(adv.sum(axis=1), 0.0, atol=1e-5)
    # Each is its own return less the mean of the other three; the learned baseline is unused.
    r = returns.numpy()
    np.testing.assert_allclose(adv[:, 0], r[:, 0] - r[:, 1:].mean(axis=1), atol=1e-6)
    # One trajectory per image: the learned baseline.
    one = losses.advantages(returns[:, :1], baselines[:, :1]).numpy()
    np.testing.assert_allclose(one, (returns - baselines).numpy()[:, :1], atol=1e-6)


def test_log_likelihood_reward_is_the_mean_log_probability_of_the_true_labels():
    logits = tf.constant([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    labels = tf.constant([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    log_p = np.log(np.exp([2.0, 0.0, 1.0]) / np.exp([2.0, 0.0, 1.0]).sum())
    expected = [(log_p[0] + log_p[2]) / 2, 0.0]
    np.testing.assert_allclose(
        losses.reward("log_likelihood", logits, labels).numpy(), expected, rtol=1e-6
    )
    # Unlike top-n it still rises once the true labels rank first (no saturation).
    sharper = losses.log_likelihood_reward(
        logits * tf.constant([[1.0], [1.0]]) + tf.constant([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),
        labels,
    )
    assert sharper.numpy()[0] > expected[0]
    np.testing.assert_allclose(losses.top_n_reward(logits, labels).numpy()[0], 1.0)


def test_the_learned_baseline_is_not_trained_when_the_leave_one_out_baseline_replaces_it():
    returns = tf.constant([[[1.0, 0.5]], [[0.0, 0.2]]])  # [B=2, K=1, T=2]
    baselines = tf.constant([[[0.5, 0.5]], [[0.5, 0.5]]])
    log_probs = tf.zeros_like(returns)
    _, one = losses.reinforce_terms(log_probs, baselines, returns, tf.ones([2]))
    np.testing.assert_allclose(one.numpy(), [0.25, 0.25 + 0.09], atol=1e-6)
    # K = 2 trajectories of each image: the advantage is leave-one-out, b_t has no loss.
    two = tf.concat([returns, returns + 1.0], axis=1)
    _, mse = losses.reinforce_terms(
        tf.zeros_like(two), tf.concat([baselines] * 2, 1), two, tf.ones([2])
    )
    np.testing.assert_array_equal(mse.numpy(), [0.0, 0.0])
