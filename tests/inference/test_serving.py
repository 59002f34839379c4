"""The serving outputs written once (`rarl_tf.inference.outputs`), and the evaluation
protocol's top-k / threshold as the one default of prediction, export and metrics."""

import inspect

import numpy as np
import tensorflow as tf

from conftest import tiny_model_config
from rarl_tf.config.experiment import EvalConfig
from rarl_tf.evaluation import metrics
from rarl_tf.export import saved_model, tflite
from rarl_tf.inference import outputs, prediction
from rarl_tf.model.factory import build_model
from rarl_tf.model.views import FULL_VIEW


def test_outputs_take_the_one_view_and_map_locations_to_the_image():
    probs = np.array([[0.7, 0.2, 0.1]], np.float32)
    boxes = np.arange(1 * 2 * 2 * 3 * 4, dtype=np.float32).reshape(1, 2, 2, 3, 4)  # [B, V, T, k, 4]
    locations = np.array([[[[-1.0, 1.0], [0.0, 0.5]], [[9.0, 9.0], [9.0, 9.0]]]], np.float32)
    out = outputs.from_model(
        {
            "probs": tf.constant(probs),
            "boxes": tf.constant(boxes),
            "locations": tf.constant(locations),
        }
    )
    assert list(out) == ["probs", "boxes", "centres"]
    np.testing.assert_array_equal(out["probs"].numpy(), probs)
    np.testing.assert_array_equal(out["boxes"].numpy(), boxes[:, 0])
    # [-1, 1] view frame -> [0, 1] image: -1 -> 0, 0 -> 0.5, 1 -> 1.
    np.testing.assert_array_equal(out["centres"].numpy(), [[[0.0, 1.0], [0.5, 0.75]]])


def test_exported_names_map_both_ways():
    named = {"probs": 1, "boxes": 2, "centres": 3}
    exported = outputs.to_exported(named)
    assert exported == {"scores": 1, "boxes": 2, "centres": 3}
    assert outputs.from_exported(exported) == named
    # Outputs that have no Python name of their own (the SavedModel's top-k) pass unchanged.
    assert outputs.from_exported({"scores": 1, "top_names": 4}) == {"probs": 1, "top_names": 4}


def test_predict_is_the_models_whole_view_forward_pass():
    model = build_model(tiny_model_config(), 10, seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    raw = model(images, training=False, views=FULL_VIEW)
    got = prediction.keras_predict(model, images)
    assert got["probs"].shape == (2, 10) and got["boxes"].shape == (2, 2, 9, 4)
    assert got["centres"].shape == (2, 2, 2)
    np.testing.assert_allclose(got["probs"], raw["probs"].numpy(), atol=1e-6)
    np.testing.assert_allclose(got["centres"], (raw["locations"][:, 0].numpy() + 1) / 2, atol=1e-6)
    assert np.all((got["centres"] >= 0) & (got["centres"] <= 1))
    # The TFLite path's function returns the same values under the exported names.
    exported = tflite.keras_inference_function(model, 40)(images[:1])
    assert set(exported) == {"scores", "boxes", "centres"}
    np.testing.assert_allclose(exported["scores"].numpy(), got["probs"][:1], atol=1e-5)


def test_labels_path_is_the_models_path_with_labels_txt():
    # The file itself is written by rarl_tf.export.tflite: tests/export/test_export_tflite.py.
    assert outputs.labels_path("out/rarl.tflite") == "out/rarl.labels.txt"
    assert outputs.labels_path("a.b/model.tflite") == "a.b/model.labels.txt"


def test_top_k_and_threshold_default_to_the_evaluation_protocol():
    protocol = EvalConfig()
    for function in (
        metrics.top_k_predictions,
        metrics.multilabel_prf,
        saved_model.build_serving_module,
        saved_model.export,
    ):
        parameters = inspect.signature(function).parameters
        assert parameters["top_k"].default == protocol.top_k, function
        assert parameters["threshold"].default == protocol.threshold, function
    scores = np.array([[0.5, 0.3, 0.15, 0.05]])
    assert metrics.top_k_predictions(scores).tolist() == [[True, True, True, False]]
