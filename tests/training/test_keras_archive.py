"""Training writes MODEL_DIR/model.keras, which `keras.saving.load_model` restores."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

import rarl_tf.model.rarl  # noqa: F401  (registers the classes load_model needs)
from conftest import FIXTURES, tiny_model_config, tiny_voc_run
from fake_tfds import as_dataset_fn
from rarl_tf import model_folder
from rarl_tf.config.experiment import EvalConfig
from rarl_tf.model.factory import build_model
from rarl_tf.model_folder import KERAS_FILE
from rarl_tf.training import trainer


def _probs(model, images):
    return model(images, training=False)["probs"].numpy()


@pytest.mark.parametrize(
    "changes",
    [dict(), dict(loc_head="spatial", loc_grid=5, inhibition_radius=0.3, location_input=True)],
)
def test_keras_archive_round_trip(tmp_path, changes):
    model = build_model(tiny_model_config(**changes), 10, backbone_weights="none")
    path = tmp_path / KERAS_FILE
    model_folder.save_keras(model, str(path))
    restored = keras.saving.load_model(str(path))
    images = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(_probs(restored, images), _probs(model, images), atol=1e-6)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_an_imagenet_backbone_is_not_downloaded_on_loading(tmp_path, monkeypatch):
    model = build_model(tiny_model_config(), 10, backbone_weights="none")
    model.backbone_weights = "imagenet"  # as a VOC run records it
    model_folder.save_keras(model, str(tmp_path / KERAS_FILE))
    assert model.backbone_weights == "imagenet"
    restored = keras.saving.load_model(str(tmp_path / KERAS_FILE))
    assert restored.backbone_weights == "none"


def test_training_writes_the_keras_archive(tmp_path):
    config = dataclasses.replace(
        tiny_voc_run(steps_per_epoch=2), eval=EvalConfig(views=1, batch_size=4)
    )
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(8)):
        model, _ = trainer.train(config, str(tmp_path), verbose=0)
    restored = keras.saving.load_model(str(tmp_path / KERAS_FILE))
    images = np.random.default_rng(1).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(_probs(restored, images), _probs(model, images), atol=1e-6)


def test_weights_written_before_the_location_policy_layer_still_load():
    """A tiny spatial-head model's weights as the code of 2026-11-26 wrote them (the location
    layers then belonged to the agent itself), with its probabilities on a fixed batch."""
    data = FIXTURES
    keras.utils.set_random_seed(7)  # other initial weights than the file's
    model = build_model(
        tiny_model_config(loc_head="spatial", loc_grid=5, loc_hidden=4), 5, backbone_weights="none"
    )
    model.load_weights(os.path.join(data, "spatial_agent_2026-11-26.weights.h5"))
    images = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    want = np.load(os.path.join(data, "spatial_agent_2026-11-26_probs.npy"))
    np.testing.assert_allclose(model(images, training=False)["probs"].numpy(), want, atol=1e-6)


def test_a_keras_archive_written_before_the_location_policy_layer_still_loads():
    """The same model saved whole by the code of 2026-11-26: its agent's configuration gives the
    policy's arguments (loc_head, loc_grid, ...) as the agent's own."""
    data = FIXTURES
    model = keras.saving.load_model(os.path.join(data, "spatial_agent_2026-11-26.keras"))
    assert model.agent.policy.loc_head == "spatial" and model.agent.policy.loc_grid == 5
    images = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    want = np.load(os.path.join(data, "spatial_agent_2026-11-26_probs.npy"))
    np.testing.assert_allclose(model(images, training=False)["probs"].numpy(), want, atol=1e-6)
