"""A location head added in this one file reaches the export: the exported graph is the
model's own forward pass (`RecurrentAttention.steps`), so a head written in the policy alone is
exported as it is and equals Keras (issue 31). Two toy heads, each a subclass of the policy
that changes its arithmetic: a dense head that looks within the view's central half, and a
spatial head that prefers central cells."""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from conftest import tiny_model_config
from rarl_tf.export import gpu_rules, tflite
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model import agent as agent_module
from rarl_tf.model.factory import build_model
from rarl_tf.model.policy import LocationPolicy


class CentralDenseHead(LocationPolicy):
    """The dense head's mean, halved: centres within the view's central half."""

    def dense_mean(self, state):
        return 0.5 * super().dense_mean(state)


class CentralCellsHead(LocationPolicy):
    """The spatial head's cell log-weights less 4 |p_g|^2: a pull towards the view's centre."""

    def cell_logits(self, state, cells, visited=()):
        positions = self.cell_positions(tf.float32)
        pull = -4.0 * tf.reshape(tf.reduce_sum(tf.square(positions), -1), [1, -1])
        return super().cell_logits(state, cells, visited) + pull


@pytest.mark.parametrize(
    "head, changes",
    [
        (CentralDenseHead, dict()),
        (CentralCellsHead, dict(loc_head="spatial", loc_grid=5, inhibition_radius=0.3)),
    ],
    ids=["dense", "cells"],
)
def test_a_head_added_in_one_file_is_exported_and_equals_keras(head, changes, monkeypatch):
    monkeypatch.setattr(agent_module, "LocationPolicy", head)
    config = tiny_model_config(**changes)
    model = build_model(config, 10, seed=0, backbone_weights="none")
    assert type(model.agent.policy) is head
    content = tflite.convert_model(model, config.image_size)
    report = gpu_rules.check_model(content)
    assert report.fallback_lines() == [] and len(report.partitions) == 1
    runner = Interpreter(model_content=content).get_signature_runner(tflite.SIGNATURE)
    rng = np.random.default_rng(0)
    n = config.image_size
    for pixels in [rng.uniform(0, 255, (1, n, n, 3)).astype(np.float32) for _ in range(3)]:
        got, want = runner(pixels=pixels), keras_predict(model, pixels)
        np.testing.assert_allclose(got["scores"], want["probs"], atol=1e-4)
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)
        np.testing.assert_allclose(got["centres"], want["centres"], atol=1e-4)
        if head is CentralDenseHead:
            # The toy's own arithmetic is in the export: centres in the central half.
            assert np.all(np.abs(got["centres"] - 0.5) <= 0.25 + 1e-6)
        else:
            # The pull (-4 at the nearest off-centre cells) outweighs random-weight logits:
            # the first step looks at the centre cell.
            np.testing.assert_allclose(got["centres"][0, 0], [0.5, 0.5], atol=1e-6)
