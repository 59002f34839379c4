"""The location-policy levers (docs/location_policy.md): each changes what it says."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import QUERY_HEAD, tiny_model_config
from rarl_tf.config.experiment import ExperimentConfig, ModelConfig
from rarl_tf.model.factory import build_model
from rarl_tf.model.overrides import PolicyOverride
from rarl_tf.model_folder import load_config, save_config


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
    head = model.agent.policy.location_head
    assert head.loc_hidden_layer.kernel.shape == (16, 7)
    assert head.mean_head.kernel.shape == (7, 2)
    assert build_model(tiny_model_config(), 5).agent.policy.location_head.loc_hidden_layer is None


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
    from entry_points import TINY, run

    result = run(
        "rarl_tf.train",
        *TINY,
        "--reinforce_weight=2",
        f"--model_dir={tmp_path / 'm'}",
        data_dir=tmp_path / "tfds",
    )
    assert result.returncode != 0 and "reinforce_weight" in result.stderr
    config = ExperimentConfig(model=tiny_model_config())
    save_config(config, str(tmp_path))
    raw = json.loads((tmp_path / "config.json").read_text())
    # A run from before: its model flat (before 2026-12-06), with the removed keys.
    raw["model"] = json.loads(json.dumps(dataclasses.asdict(config.model)))
    raw["model"].update(reinforce_weight=1.0, baseline_weight=1.0)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert load_config(str(tmp_path)) == config


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("reward", "bogus", "--reward=bogus is not allowed"),
        ("trajectories", 0, "--trajectories=0 is not allowed"),
        ("loc_hidden", -1, "--loc_hidden=-1 is not allowed"),
    ],
)
def test_bad_policy_settings_name_the_flag(field, value, message):
    config = ExperimentConfig(model=dataclasses.replace(ModelConfig(), **{field: value}))
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_spatial_head_points_at_the_cell_whose_features_score_highest():
    model = build_model(tiny_model_config(loc_head="spatial", loc_grid=5, loc_hidden=4), 5)
    agent = model.agent
    head = agent.policy.location_head
    assert not hasattr(head, "mean_head") and head.loc_cell.kernel.shape == (16, 4)
    # Features: one hot cell at row 1, column 3 of a 5 x 5 map (the grid samples cell centres).
    features = np.zeros((1, 5, 5, 16), np.float32)
    features[0, 1, 3, 0] = 1.0
    head.loc_cell.kernel.assign(np.eye(16, 4, dtype=np.float32) * 50.0)
    head.loc_cell.bias.assign(np.zeros(4, np.float32))
    head.loc_score.kernel.assign(np.ones((4, 1), np.float32))
    cells = agent.view_cells(tf.constant(features), tf.constant([[0.0, 0.0, 1.0, 1.0]]))
    mean = agent.policy.distribution(tf.zeros([1, 16]), cells, [])[1].numpy()[0]
    np.testing.assert_allclose(mean, [-1.0 + 2 * 1 / 4, -1.0 + 2 * 3 / 4], atol=1e-3)
    # A mirrored view reads the map right to left: the same cell is at -x.
    cells = agent.view_cells(tf.constant(features), tf.constant([[0.0, 1.0, 1.0, 0.0]]))
    mean = agent.policy.distribution(tf.zeros([1, 16]), cells, [])[1].numpy()[0]
    np.testing.assert_allclose(mean, [-0.5, -0.5], atol=1e-3)


def test_spatial_head_learns_from_reinforce_only_and_not_through_the_map():
    keras.utils.set_random_seed(0)
    model = build_model(
        tiny_model_config(loc_head="spatial", loc_grid=4, trajectories=2, reward="log_likelihood"),
        5,
    )
    images, labels = _batch()
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, training=True, views=np.repeat([[0.0, 0.0, 1.0, 1.0]], 2, 0))
        terms = model.compute_terms(out, labels)
        rl, cls = tf.reduce_mean(terms["reinforce_loss"]), tf.reduce_mean(terms["cls_loss"])
    head = model.agent.policy.location_head.trainable_variables
    assert all(g is not None and float(tf.norm(g)) > 0 for g in tape.gradient(rl, head))
    assert all(g is None for g in tape.gradient(cls, head))
    assert all(g is None for g in tape.gradient(rl, model.backbone.trainable_variables))


def test_inhibition_of_return_sends_the_next_step_to_the_next_best_cell():
    model = build_model(
        tiny_model_config(loc_head="spatial", loc_grid=5, loc_hidden=4, inhibition_radius=0.2), 5
    )
    agent = model.agent
    features = np.zeros((1, 5, 5, 16), np.float32)
    features[0, 1, 3, 0] = 1.0  # the best cell, at (-0.5, 0.5)
    features[0, 4, 0, 0] = 0.8  # the second best, at (1, -1)
    head = agent.policy.location_head
    head.loc_cell.kernel.assign(np.eye(16, 4, dtype=np.float32) * 50.0)
    head.loc_cell.bias.assign(np.zeros(4, np.float32))
    head.loc_score.kernel.assign(np.ones((4, 1), np.float32))
    cells = agent.view_cells(tf.constant(features), tf.constant([[0.0, 0.0, 1.0, 1.0]]))
    state = tf.zeros([1, 16])
    first = agent.policy.distribution(state, cells, [])[1].numpy()[0]
    np.testing.assert_allclose(first, [-0.5, 0.5], atol=1e-3)
    looked = tf.constant([[-0.5, 0.5]])  # the agent looked exactly at the best cell
    second = agent.policy.distribution(state, cells, [looked])[1].numpy()[0]
    np.testing.assert_allclose(second, [1.0, -1.0], atol=1e-3)
    # Without inhibition the agent would look at the same cell again.
    agent.policy.inhibition_radius = 0.0
    np.testing.assert_allclose(
        agent.policy.distribution(state, cells, [looked])[1], [first], atol=1e-3
    )


def test_inhibition_needs_the_spatial_head():
    config = ExperimentConfig(model=dataclasses.replace(ModelConfig(), inhibition_radius=0.3))
    with pytest.raises(ValueError, match="--inhibition_radius=0.3 is not allowed"):
        config.validate()


def _query_model(**changes):
    values = dict(QUERY_HEAD, loc_hidden=8, policy_units=6)
    values.update(changes)
    return build_model(tiny_model_config(**values), 5)


def test_query_head_keys_carry_position_so_the_state_can_prefer_a_place_on_a_blank_map():
    # On a map whose cells all look alike, the spatial head's cells tie (it has no position);
    # the query head's keys carry the cell's position, so two states can point at two places.
    policy = _query_model().agent.policy
    cells = policy.cell_terms(tf.zeros([1, 5, 5, 16]))
    rng = np.random.default_rng(0)
    states = tf.constant(rng.normal(size=(2, 6)) * 5.0, tf.float32)
    logits = policy.cell_logits(states, tf.concat([cells, cells], 0)).numpy()
    assert logits.std(axis=1).min() > 1e-3  # not one value for every cell
    assert logits[0].argmax() != logits[1].argmax()
    spatial = build_model(
        tiny_model_config(loc_head="spatial", loc_grid=5, loc_hidden=8), 5
    ).agent.policy
    flat = spatial.cell_logits(tf.zeros([1, 16]), spatial.cell_terms(tf.zeros([1, 5, 5, 16])))
    assert float(tf.math.reduce_std(flat)) < 1e-6


def test_own_state_remembers_where_it_looked_and_reinforce_trains_it_alone():
    keras.utils.set_random_seed(0)
    model = _query_model(trajectories=2, reward="log_likelihood")
    policy = model.agent.policy
    h = tf.ones([1, 16])
    start = policy.initial_memory(h)
    here = policy.remember(start, tf.constant([[-0.5, 0.5]]), h)
    there = policy.remember(start, tf.constant([[0.5, -0.5]]), h)
    assert float(tf.reduce_max(tf.abs(here - there))) > 1e-4
    images, labels = _batch()
    with tf.GradientTape(persistent=True) as tape:
        out = model(images, training=True, views=np.repeat([[0.0, 0.0, 1.0, 1.0]], 2, 0))
        terms = model.compute_terms(out, labels)
        rl, cls = tf.reduce_mean(terms["reinforce_loss"]), tf.reduce_mean(terms["cls_loss"])
    own = policy.loc_memory.trainable_variables + policy.location_head.loc_query.trainable_variables
    assert all(g is not None and float(tf.norm(g)) > 0 for g in tape.gradient(rl, own))
    assert all(g is None for g in tape.gradient(cls, own))
    trunk = model.agent.cell.trainable_variables + model.backbone.trainable_variables
    assert all(g is None for g in tape.gradient(rl, trunk))


@pytest.mark.parametrize("kind", ["zero", "other_image", "batch_mean", "first"])
def test_interventions_replace_the_state_the_head_reads(kind):
    state = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    first = tf.constant([[7.0, 7.0], [8.0, 8.0], [6.0, 6.0]])
    expected = {
        "zero": np.zeros((3, 2)),
        "other_image": state.numpy()[[2, 0, 1]],
        "batch_mean": np.tile([[3.0, 5.0]], (3, 1)),
        "first": first.numpy(),
    }[kind]
    np.testing.assert_allclose(PolicyOverride(state=kind).head_state(state, first), expected)
    np.testing.assert_allclose(PolicyOverride().head_state(state, first), state)


def test_an_override_changes_the_placements_of_the_model_and_leaves_the_layer_alone():
    model = _query_model(inhibition_radius=0.3)
    images = _batch(n=3)[0]
    own = model(images, training=False)["locations"].numpy()
    zero = model(images, training=False, override=PolicyOverride(state="zero"))["locations"]
    # A zero state's query is its bias, zero before training: every cell ties, and every image
    # looks first at the first cell, (-1, -1); then the inhibition of return sends it elsewhere.
    np.testing.assert_allclose(zero[:, 0, 0], np.full((3, 2), -1.0))
    assert np.all(np.abs(zero[:, 0, 1] - (-1.0)).max(-1) > 0.5)
    # With the inhibition's strength overridden to 0 the tie stays where it was.
    held = PolicyOverride(state="zero", strength=0.0)
    np.testing.assert_allclose(model(images, override=held)["locations"][:, 0], -1.0)
    policy = model.agent.policy
    assert policy.inhibits() and not policy.inhibits(held)
    # Nothing was left on the layer.
    np.testing.assert_allclose(model(images, training=False)["locations"].numpy(), own)
    with pytest.raises(ValueError, match="expected one of"):
        PolicyOverride(state="elsewhere")


def test_random_inhibited_centres_avoid_where_they_looked_and_have_no_reinforce_term():
    model = build_model(
        tiny_model_config(locations="random_inhibited", loc_grid=5, inhibition_radius=0.3), 5
    )
    policy = model.agent.policy
    h = tf.zeros([4000, 16])
    looked = tf.zeros([4000, 2])  # every episode looked at the centre
    seed = tf.constant([3, 4], tf.int64)
    loc, _, log_prob, _ = policy(h, visited=[looked], seed=seed)
    distance = np.linalg.norm(loc.numpy(), axis=-1)
    free, _, _, _ = policy(h, visited=[], seed=seed)
    # Weight (1 - exp(-d^2 / 2 rho^2)): the centre cell 0, its neighbours (d = 0.5) 0.75.
    assert distance.min() > 0.5 - 0.25 * np.sqrt(2) - 1e-6
    near = float(np.mean(distance < 0.4))
    assert near < 0.5 * float(np.mean(np.linalg.norm(free.numpy(), axis=-1) < 0.4))
    assert float(tf.reduce_max(tf.abs(log_prob))) == 0.0


def test_query_and_own_state_round_trip_through_get_config():
    from rarl_tf.model.policy import LocationPolicy

    policy = _query_model().agent.policy
    config = policy.get_config()
    assert config["head"] == {"type": "query", "width": 8} and config["policy_state"] == "own"
    assert config["policy_units"] == 6
    clone = LocationPolicy.from_config(config)
    assert clone.loc_head == "query" and clone.loc_memory is not None
    assert clone.location_head.units == 8


def test_gru_step_is_keras_gru_cell():
    from rarl_tf.model.policy import gru_step

    keras.utils.set_random_seed(1)
    cell = keras.layers.GRUCell(5)
    cell.build((None, 7))
    cell.bias.assign(np.random.default_rng(0).normal(size=cell.bias.shape))
    rng = np.random.default_rng(1)
    inputs = tf.constant(rng.normal(size=(3, 7)), tf.float32)
    state = tf.constant(rng.normal(size=(3, 5)), tf.float32)
    np.testing.assert_allclose(gru_step(cell, inputs, state), cell(inputs, [state])[0], atol=1e-6)


def test_annealed_inhibition_fades_to_nothing_and_the_trained_model_keeps_none(tmp_path):
    from rarl_tf.training.callbacks import InhibitionAnneal

    # The query head whose inhibition of return fades out over the first epoch.
    annealed = tiny_model_config(
        **QUERY_HEAD, loc_hidden=4, inhibition_radius=0.3, inhibition_anneal_epochs=1.0
    )
    model = build_model(annealed, 5)
    policy = model.agent.policy
    assert float(policy.inhibition_strength.numpy()) == 1.0 and policy.inhibits()
    cells = policy.cell_terms(tf.zeros([1, 5, 5, 16]))
    looked = [tf.constant([[0.0, 0.0]])]
    full = policy.inhibition(tf.float32, looked).numpy()
    model.compile(optimizer="adam")
    anneal = InhibitionAnneal(policy.inhibition_strength, 4)
    anneal.set_model(model)
    model.optimizer.iterations.assign(2)
    anneal.on_train_batch_begin(0)
    assert float(policy.inhibition_strength.numpy()) == pytest.approx(0.5)
    half = policy.inhibition(tf.float32, looked).numpy()
    # The visited cell's weight is multiplied by 1 - s: 0 at full strength, 1/2 at s = 1/2.
    assert full.min() < -20 and half.min() == pytest.approx(np.log(0.5), abs=1e-4)
    model.optimizer.iterations.assign(9)
    anneal.on_train_batch_begin(0)
    assert not policy.inhibits()
    state = tf.zeros([1, policy.policy_units])
    np.testing.assert_allclose(
        policy.cell_logits(state, cells, looked), policy.cell_logits(state, cells, []), atol=1e-6
    )
    # The strength is a weight: a model loaded from the trained weights has none left.
    model.save_weights(str(tmp_path / "m.weights.h5"))
    clone = build_model(annealed, 5)
    clone.load_weights(str(tmp_path / "m.weights.h5"))
    assert float(clone.agent.policy.inhibition_strength.numpy()) == 0.0
