"""A location head added in one module of its own plus its registration (tests/toy_heads.py)
is a choice of the config, trains, evaluates and is exported equal to Keras: the exported graph
is the model's own forward pass (`RecurrentAttention.steps`) with the head's export form of its
mode, so nothing else needs to know the head (issue 30)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import toy_heads  # noqa: F401  (registers toy_central and toy_pull)
from conftest import compiled_tiny_model, tiny_batch, tiny_model_config
from rarl_tf import model_folder
from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.evaluation import scoring
from rarl_tf.export import gpu_rules, tflite
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model.factory import build_model

HEADS = {
    "toy_central": dict(loc_head="toy_central"),
    "toy_pull": dict(loc_head="toy_pull", loc_grid=5, inhibition_radius=0.3),
}


def _exported_equals_keras(content: bytes, model, image_size: int, head: str) -> None:
    runner = Interpreter(model_content=content).get_signature_runner(tflite.SIGNATURE)
    rng = np.random.default_rng(0)
    for _ in range(3):
        pixels = rng.uniform(0, 255, (1, image_size, image_size, 3)).astype(np.float32)
        got, want = runner(pixels=pixels), keras_predict(model, pixels)
        np.testing.assert_allclose(got["scores"], want["probs"], atol=1e-4)
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)
        np.testing.assert_allclose(got["centres"], want["centres"], atol=1e-4)
        if head == "toy_central":
            # The toy's own arithmetic is in the export: centres in the central half.
            assert np.all(np.abs(got["centres"] - 0.5) <= 0.25 + 1e-6)
        else:
            # The pull (-4 at the nearest off-centre cells) outweighs random-weight logits:
            # the first step looks at the centre cell.
            np.testing.assert_allclose(got["centres"][0, 0], [0.5, 0.5], atol=1e-6)


def test_the_config_offers_registered_heads_only():
    ExperimentConfig(model=tiny_model_config(**HEADS["toy_pull"])).validate()
    with pytest.raises(ValueError, match="--loc_head=toy_unregistered is not allowed"):
        ExperimentConfig(model=tiny_model_config(loc_head="toy_unregistered")).validate()
    # Inhibition of return acts on cells: the registry says which heads have them.
    with pytest.raises(ValueError, match="--inhibition_radius=0.3 is not allowed"):
        ExperimentConfig(
            model=tiny_model_config(loc_head="toy_central", inhibition_radius=0.3)
        ).validate()


def test_a_registered_head_is_exported_and_equals_keras():
    head = "toy_central"
    config = tiny_model_config(**HEADS[head])
    model = build_model(config, 10, seed=0, backbone_weights="none")
    assert model.agent.policy.location_head.head_name == head
    content = tflite.convert_model(model, config.image_size)
    report = gpu_rules.check_model(content)
    assert report.fallback_lines() == [] and len(report.partitions) == 1
    _exported_equals_keras(content, model, config.image_size, head)


def test_a_registered_head_trains_two_steps_evaluates_and_exports_from_its_folder(tmp_path):
    changes = HEADS["toy_pull"]
    model = compiled_tiny_model(keras.optimizers.Adam(1e-2), **changes)
    head = model.agent.policy.location_head
    assert type(head) is toy_heads.ToyPullHead and head.pull == 4.0
    before = head.toy_saliency.kernel.numpy()
    images, labels = tiny_batch(4)
    step = tf.function(model.train_step)
    losses = [float(step((images, labels))["loss"]) for _ in range(2)]
    assert np.all(np.isfinite(losses))
    # REINFORCE moved the toy's own weight.
    assert not np.allclose(head.toy_saliency.kernel.numpy(), before)
    config = ExperimentConfig(model=tiny_model_config(**changes), class_names=tuple("abcde"))
    scores = scoring.model_scorer(model, scoring.eval_views(config))(images)
    ignore = np.zeros(labels.shape, bool)
    metrics = scoring.compute_metrics(scores, labels.numpy(), ignore, config.eval)
    assert 0.0 <= metrics["mAP"] <= 1.0
    # The folder's config.json names the head; the export rebuilds it from there.
    model_folder.save_config(config, str(tmp_path))
    model_folder.save_weights(model, str(tmp_path / model_folder.WEIGHTS_FILE))
    content = tflite.convert(str(tmp_path))
    _exported_equals_keras(content, model, config.model.image_size, "toy_pull")
