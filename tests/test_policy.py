"""The location-policy levers (README, "The location policy"): each changes what it says."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_model_config
from rarl_tf.config import ExperimentConfig, ModelConfig, load_config, save_config
from rarl_tf.model.factory import build_model


def _batch(n=4, side=32, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(n, side, side, 3)).astype(np.float32)
    labels = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return images, labels


def test_location_input_widens_the_lstm_input_by_two():
    plain = build_model(tiny_model_config(), 5).agent.cell.kernel.shape
    fed = build_model(tiny_model_config(location_input=True), 5).agent.cell.kernel.shape
    assert fed[0] == plain[0] + 2 == 16 + 2


def test_location_input_changes_the_scores_of_the_same_regions():
    keras.utils.set_random_seed(0)
    model = build_model(tiny_model_config(location_input=True), 5)
    images = _batch()[0]
    before = model(images, training=False)["probs"].numpy()
    kernel = model.agent.cell.kernel
    kernel.assign(tf.concat([kernel[:-2], kernel[-2:] + 1.0], axis=0))  # the l_t rows only
    assert not np.allclose(model(images, training=False)["probs"].numpy(), before)


def test_loc_hidden_adds_a_hidden_layer_to_the_location_head():
    model = build_model(tiny_model_config(loc_hidden=7), 5)
    assert model.agent.loc_hidden_layer.kernel.shape == (16, 7)
    assert model.agent.loc_head.kernel.shape == (7, 2)
    assert build_model(tiny_model_config(), 5).agent.loc_hidden_layer is None


def test_context_grid_embeds_the_whole_view_from_its_flattened_grid():
    model = build_model(tiny_model_config(context_grid=True, region_pool="max"), 5)
    # crop_size 3 x 3 cells x 16 channels of the tiny backbone, flattened.
    assert model.agent.context_embed.kernel.shape == (3 * 3 * 16, 16)
    assert model.agent.embed.kernel.shape == (16, 16)  # regions are still max-pooled


def test_k_trajectories_share_one_backbone_pass_and_train(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(tiny_model_config(trajectories=3, reward="log_likelihood"), 5)
    images, labels = _batch()
    calls = []
    backbone_call = model.backbone.call
    model.backbone.call = lambda *a, **k: calls.append(1) or backbone_call(*a, **k)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    logs = model.train_step((tf.constant(images), tf.constant(labels)))
    assert len(calls) == 1
    # Different samples of the same image: the reward differs between trajectories.
    assert float(logs["reward_spread"]) > 0.0
    assert np.isfinite(float(logs["loss"]))


def test_removed_loss_weights_are_refused_as_flags_and_ignored_in_old_configs(tmp_path):
    from test_cli import TINY, run

    result = run("rarl_tf.train", *TINY, "--reinforce_weight=2", f"--model_dir={tmp_path / 'm'}",
                 data_dir=tmp_path / "tfds")
    assert result.returncode != 0 and "reinforce_weight" in result.stderr
    config = ExperimentConfig(model=tiny_model_config())
    save_config(config, str(tmp_path))
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["model"].update(reinforce_weight=1.0, baseline_weight=1.0)  # a run from before
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert load_config(str(tmp_path)) == config


@pytest.mark.parametrize("field,value,message", [
    ("reward", "bogus", "--reward=bogus is not allowed"),
    ("trajectories", 0, "--trajectories=0 is not allowed"),
    ("loc_hidden", -1, "--loc_hidden=-1 is not allowed"),
])
def test_bad_policy_settings_name_the_flag(field, value, message):
    config = ExperimentConfig(model=dataclasses.replace(ModelConfig(), **{field: value}))
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_spatial_head_points_at_the_cell_whose_features_score_highest():
    model = build_model(tiny_model_config(loc_head="spatial", loc_grid=5, loc_hidden=4), 5)
    agent = model.agent
    assert agent.loc_head is None and agent.loc_cell.kernel.shape == (16, 4)
    # Features: one hot cell at row 1, column 3 of a 5 x 5 map (the grid samples cell centres).
    features = np.zeros((1, 5, 5, 16), np.float32)
    features[0, 1, 3, 0] = 1.0
    agent.loc_cell.kernel.assign(np.eye(16, 4, dtype=np.float32) * 50.0)
    agent.loc_cell.bias.assign(np.zeros(4, np.float32))
    agent.loc_score.kernel.assign(np.ones((4, 1), np.float32))
    cells = agent._cell_scores(tf.constant(features), tf.constant([[0.0, 0.0, 1.0, 1.0]]))
    mean = agent.policy.distribution(tf.zeros([1, 16]), cells, [])[1].numpy()[0]
    np.testing.assert_allclose(mean, [-1.0 + 2 * 1 / 4, -1.0 + 2 * 3 / 4], atol=1e-3)
    # A mirrored view reads the map right to left: the same cell is at -x.
    cells = agent._cell_scores(tf.constant(features), tf.constant([[0.0, 1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(agent.policy.distribution(tf.zeros([1, 16]), cells, [])[1].numpy()[0],
                               [-0.5, -0.5], atol=1e-3)


def test_spatial_head_learns_from_reinforce_only_and_not_through_the_map():
    keras.utils.set_random_seed(0)
    model = build_model(tiny_model_config(loc_head="spatial", loc_grid=4, trajectories=2,
                                          reward="log_likelihood"), 5)
    images, labels = _batch()
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, training=True, views=np.repeat([[0.0, 0.0, 1.0, 1.0]], 2, 0))
        terms = model.compute_terms(out, labels)
        rl, cls = tf.reduce_mean(terms["reinforce_loss"]), tf.reduce_mean(terms["cls_loss"])
    head = model.agent.loc_cell.trainable_variables + model.agent.loc_score.trainable_variables
    assert all(g is not None and float(tf.norm(g)) > 0 for g in tape.gradient(rl, head))
    assert all(g is None for g in tape.gradient(cls, head))
    assert all(g is None for g in tape.gradient(rl, model.backbone.trainable_variables))


def test_inhibition_of_return_sends_the_next_step_to_the_next_best_cell():
    model = build_model(tiny_model_config(loc_head="spatial", loc_grid=5, loc_hidden=4,
                                          inhibition_radius=0.2), 5)
    agent = model.agent
    features = np.zeros((1, 5, 5, 16), np.float32)
    features[0, 1, 3, 0] = 1.0  # the best cell, at (-0.5, 0.5)
    features[0, 4, 0, 0] = 0.8  # the second best, at (1, -1)
    agent.loc_cell.kernel.assign(np.eye(16, 4, dtype=np.float32) * 50.0)
    agent.loc_cell.bias.assign(np.zeros(4, np.float32))
    agent.loc_score.kernel.assign(np.ones((4, 1), np.float32))
    cells = agent._cell_scores(tf.constant(features), tf.constant([[0.0, 0.0, 1.0, 1.0]]))
    state = tf.zeros([1, 16])
    first = agent.policy.distribution(state, cells, [])[1].numpy()[0]
    np.testing.assert_allclose(first, [-0.5, 0.5], atol=1e-3)
    looked = tf.constant([[-0.5, 0.5]])  # the agent looked exactly at the best cell
    second = agent.policy.distribution(state, cells, [looked])[1].numpy()[0]
    np.testing.assert_allclose(second, [1.0, -1.0], atol=1e-3)
    # Without inhibition the agent would look at the same cell again.
    agent.policy.inhibition_radius = 0.0
    np.testing.assert_allclose(agent.policy.distribution(state, cells, [looked])[1], [first], atol=1e-3)


def test_inhibition_needs_the_spatial_head():
    config = ExperimentConfig(model=dataclasses.replace(ModelConfig(), inhibition_radius=0.3))
    with pytest.raises(ValueError, match="--inhibition_radius=0.3 is not allowed"):
        config.validate()
