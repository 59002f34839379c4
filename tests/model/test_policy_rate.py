"""--policy_learning_rate: the location policy's own Adam rate (rarl_tf/model/optimizer.py)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import POLICY_LEVERS, QUERY_HEAD, compiled_tiny_model, tiny_batch
from rarl_tf import model_folder
from rarl_tf.config.experiment import ExperimentConfig, TrainConfig
from rarl_tf.model import optimizer as optimizer_lib
from rarl_tf.training import callbacks

# digits.flags's policy levers (K = 2 at tiny size) under the query head with its own GRU state.
POLICY = dict(POLICY_LEVERS, **QUERY_HEAD, policy_units=8)


def _model(optimizer):
    return compiled_tiny_model(optimizer, **POLICY)


def _batch():
    return tiny_batch(4)


def _deltas(model, step):
    """|change| of every trainable variable over `step()`, by the variable's path."""
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    step()
    return {v.path: np.abs(v.numpy() - before[v.path]) for v in model.trainable_variables}


def test_policy_variables_move_by_the_ratio_asked_under_known_gradients():
    # Adam's first step moves a weight by lr * g / (|g| + eps): lr for |g| = 0.5.
    lr, ratio = 1e-3, 7.0
    model = _model(optimizer_lib.PolicyRateAdam(lr, ratio=ratio))
    policy = {v.path for v in model.agent.policy.trainable_variables}
    assert len(policy) >= 8 and model.optimizer.scaled_count() == len(policy)
    variables = model.trainable_variables
    moved = _deltas(
        model,
        lambda: model.optimizer.apply_gradients([(tf.fill(v.shape, 0.5), v) for v in variables]),
    )
    for path, delta in moved.items():
        np.testing.assert_allclose(
            delta, lr * (ratio if path in policy else 1.0), rtol=1e-4, err_msg=path
        )
    assert any("backbone" in p or p.startswith("conv") for p in moved if p not in policy)


def test_one_training_step_moves_the_policy_by_the_ratio_of_the_rates():
    """With the hybrid loss's own gradients: Adam's first step moves each weight by exactly
    rate * c|g| / (c|g| + eps), c = sqrt(1 - beta_2), at the policy's rate for the policy's
    weights and the other rate for the rest (backbone, trunk, classifier)."""
    config = TrainConfig(learning_rate=1e-3, policy_learning_rate=2e-2)
    assert optimizer_lib.policy_rate_ratio(config) == pytest.approx(20.0)
    model = _model(optimizer_lib.adam(config, config.learning_rate))
    assert isinstance(model.optimizer, optimizer_lib.PolicyRateAdam)
    images, labels = _batch()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.loss_terms(images, labels, training=True)["loss"])
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    moved = _deltas(model, lambda: model.optimizer.apply_gradients(zip(grads, variables)))
    policy = {v.path for v in model.agent.policy.trainable_variables}
    c, eps = np.sqrt(1 - config.beta_2), model.optimizer.epsilon
    strong = {"policy": 0, "other": 0}
    for v, g in zip(variables, grads):
        kind = "policy" if v.path in policy else "other"
        g = np.abs(g.numpy().astype(np.float64))
        rate = 2e-2 if kind == "policy" else 1e-3
        # atol: the float32 rounding of weight - move (weights under 2 in size: ulp <= 2.4e-7).
        np.testing.assert_allclose(
            moved[v.path], rate * c * g / (c * g + eps), rtol=1e-3, atol=2.5e-7, err_msg=v.path
        )
        strong[kind] += int(np.sum(c * g > 100 * eps))
    # Many weights of each kind have a gradient that makes their move the rate itself.
    assert strong["policy"] > 50 and strong["other"] > 500


def test_the_default_is_plain_adam_as_before():
    """No --policy_learning_rate (every recipe but VOC's and COCO's): keras' own Adam, built as
    the trainer built it before the field existed, so those runs train bit for bit as before."""
    t = TrainConfig()
    assert t.policy_learning_rate == 0 and optimizer_lib.policy_rate_ratio(t) == 1.0
    optimizer = optimizer_lib.adam(t, 1e-5)
    assert type(optimizer) is keras.optimizers.Adam
    before = keras.optimizers.Adam(1e-5, beta_1=t.beta_1, beta_2=t.beta_2, global_clipnorm=None)
    # Names count up per optimizer made ("adam", "adam_1"): everything else is the same.
    assert {**optimizer.get_config(), "name": None} == {**before.get_config(), "name": None}
    # A rate equal to --learning_rate is the same single rate.
    same = dataclasses.replace(t, policy_learning_rate=t.learning_rate)
    assert type(optimizer_lib.adam(same, 1e-5)) is keras.optimizers.Adam


def test_a_checkpoint_written_with_plain_adam_resumes_into_the_policy_rate(tmp_path):
    """Runs written before this change checkpointed keras' Adam; the policy-rate optimizer
    restores every slot and the step from it (`StepCheckpoint.attach` asserts that every
    object of the new graph finds its value)."""
    old = _model(keras.optimizers.Adam(1e-3))
    tf.function(old.train_step)(_batch())
    writer = callbacks.StepCheckpoint(str(tmp_path), str(tmp_path), every_steps=1)
    writer.attach(old)
    writer.set_model(old)
    writer._save()
    new = _model(optimizer_lib.PolicyRateAdam(1e-3, ratio=10.0))
    reader = callbacks.StepCheckpoint(str(tmp_path), str(tmp_path), every_steps=1)
    assert reader.attach(new) == 1
    assert len(new.optimizer.variables) == len(old.optimizer.variables)
    for a, b in zip(old.optimizer.variables, new.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for a, b in zip(old.weights, new.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_the_keras_archive_keeps_the_policy_rate(tmp_path):
    model = _model(optimizer_lib.PolicyRateAdam(1e-3, ratio=30.0))
    path = str(tmp_path / "model.keras")
    model_folder.save_keras(model, path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.optimizer, optimizer_lib.PolicyRateAdam)
    assert restored.optimizer.ratio == 30.0


def test_a_negative_policy_rate_is_refused_by_name():
    config = ExperimentConfig(train=TrainConfig(policy_learning_rate=-1e-4))
    with pytest.raises(ValueError, match=r"--policy_learning_rate=-0.0001 is not allowed"):
        config.validate()
