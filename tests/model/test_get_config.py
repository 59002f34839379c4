"""get_config / from_config round trips of the layers and models (keras-hub's serialisation
check): the rebuilt object has the same configuration, and a model rebuilt from it computes the
same scores with the same weights."""

import numpy as np
import pytest

from conftest import tiny_model_config
from rarl_tf.model.agent import RecurrentAttention
from rarl_tf.model.factory import build_model
from rarl_tf.model.location_heads import DenseHead, QueryHead, SpatialHead
from rarl_tf.model.policy import LocationPolicy


@pytest.mark.parametrize(
    "layer",
    [
        LocationPolicy(
            loc_std=0.2,
            locations="policy",
            head={"type": "spatial", "width": 3},
            loc_grid=5,
            inhibition_radius=0.3,
            cell_width=8,
            train_state=True,
        ),
        LocationPolicy(locations="random"),
        DenseHead(hidden=3, grid=5, cell_width=8),
        SpatialHead(width=4, grid=5, cell_width=8),
        QueryHead(grid=4, cell_width=6),
        RecurrentAttention(
            5,
            anchor_sizes=(8.0, 16.0),
            aspect_ratios=(1.0, 2.0),
            num_steps=2,
            crop_size=3,
            embed_dim=8,
            lstm_units=8,
            region_pool="max",
            recurrence="localisation_only",
            location_input=True,
            loc_head="spatial",
            loc_grid=4,
            inhibition_radius=0.2,
            context_grid=True,
            seed=3,
        ),
    ],
    ids=["spatial_policy", "random_policy", "dense_head", "spatial_head", "query_head", "agent"],
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def test_a_policy_config_written_before_the_heads_were_classes_loads_as_today():
    # loc_hidden was the dense head's hidden layer and a cells head's width.
    old = LocationPolicy(loc_head="spatial", loc_hidden=3, loc_grid=5, cell_width=8, name="p")
    today = LocationPolicy(head={"type": "spatial", "width": 3}, loc_grid=5, cell_width=8, name="p")
    assert old.get_config() == today.get_config()
    assert old.location_head.units == 3
    dense = LocationPolicy(loc_head="dense", loc_hidden=7).get_config()["head"]
    assert dense == {"type": "dense", "hidden": 7}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        dict(loc_head="spatial", loc_grid=5, trajectories=2, reward="log_likelihood"),
        dict(architecture="global"),
    ],
    ids=["paper", "spatial", "global"],
)
def test_model_config_round_trip_computes_the_same_scores(changes):
    model = build_model(tiny_model_config(**changes), 5, backbone_weights="none")
    config = model.get_config()
    again = type(model).from_config(config)
    assert again.get_config() == config
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    again(images[:1])  # builds the variables
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(
        again(images, training=False)["probs"], model(images, training=False)["probs"], atol=1e-6
    )


def test_policy_arguments_given_as_the_agents_own_reach_the_policy():
    """Configurations written before 2026-11-27 give the policy's arguments to the agent."""
    agent = RecurrentAttention(5, loc_head="spatial", loc_grid=4, loc_std=0.2)
    assert agent.get_config()["policy"] == {"loc_head": "spatial", "loc_grid": 4, "loc_std": 0.2}
    assert agent.policy.loc_head == "spatial" and agent.policy.loc_std == 0.2
