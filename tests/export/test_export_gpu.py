"""The exported graph (rarl_tf/export/gpu_graph.py) passes the GPU delegate's rules whole and
computes the Keras model's outputs: for the embedded default (digits.flags), the VOC recipe and the
model variants the agent offers."""

import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from conftest import ROOT, tiny_model_config
from rarl_tf.export import gpu_rules, recipes, tflite
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model.factory import build_model


def _export_and_compare(config, num_classes=10, images=3):
    # Fixed initial weights (the global Keras seed sets the initialisers), whichever tests ran
    # before in this process: with unseeded weights query_own_state failed once (2026-12-06, not
    # reproduced; a near tie between two cells is the suspected cause).
    keras.utils.set_random_seed(0)
    model = build_model(config, num_classes, seed=0, backbone_weights="none")
    content = tflite.convert_model(model, config.image_size)
    report = gpu_rules.check_model(content)
    runner = Interpreter(model_content=content).get_signature_runner(tflite.SIGNATURE)
    rng = np.random.default_rng(0)
    n = config.image_size
    # An all-black image ties every cell of the spatial head: the export must take the first
    # (tf.argmax's rule), as the Keras model does.
    black = np.zeros((1, n, n, 3), np.float32)
    for pixels in [rng.uniform(0, 255, (1, n, n, 3)).astype(np.float32) for _ in range(images)] + [
        black
    ]:
        got, want = runner(pixels=pixels), keras_predict(model, pixels)
        np.testing.assert_allclose(got["scores"], want["probs"], atol=1e-4)
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)
        np.testing.assert_allclose(got["centres"], want["centres"], atol=1e-4)
    return report


def _assert_whole(report):
    assert report.fallback_lines() == [], "\n".join(report.fallback_lines())
    assert len(report.partitions) == 1
    assert len(report.delegated()) == report.num_ops
    assert report.fully_delegated


def test_embedded_default_runs_whole_on_the_gpu_delegate():
    config = recipes.model_config_from_flagfile(os.path.join(ROOT, "digits.flags"))
    assert config.loc_head == "spatial" and config.inhibition_radius > 0
    report = _export_and_compare(config)
    _assert_whole(report)
    names = report.op_counts()
    assert "ARG_MAX" not in names and "ONE_HOT" not in names and "LOGICAL_AND" not in names


def test_voc_recipe_structure_runs_whole_on_the_gpu_delegate():
    # voc.flags (flatten, crop 7, 512-wide embedding and LSTM, spatial head with inhibition;
    # the paper's dense head is the "paper" variant below) at N = 128 on a 5-block backbone of
    # VGG16's stride (16): the head's op kinds on an 8 x 8 map. VGG16's 14.7 M weights took
    # ~16 s to convert at any N; its own op kinds are the next test's, and the whole recipe
    # with VGG16 at N = 512 is the slow test below.
    config = recipes.model_config_from_flagfile(
        os.path.join(ROOT, "voc.flags"),
        backbone="small_vgg",
        backbone_widths=(8, 16, 32, 64, 64),
        backbone_weights="none",
        image_size=128,
        crop_margin=16,
    )
    assert config.region_pool == "flatten" and config.loc_head == "spatial"
    _assert_whole(_export_and_compare(config, num_classes=20, images=1))


def test_vgg16_backbone_ops_run_whole_on_the_gpu_delegate():
    """VGG16's own layers, up to its first pooling (its preprocessing, convolutions with bias
    and ReLU, max pooling: every op kind of the 13 convolutions), exported as the model is."""
    import tensorflow as tf

    from rarl_tf.model.backbone import CaffePreprocess, vgg16_conv5_3

    keras.utils.set_random_seed(0)
    vgg16 = vgg16_conv5_3(None)
    trunk = vgg16.get_layer("vgg16_trunk")
    block1 = keras.Model(trunk.input, trunk.get_layer("block1_pool").output)
    [preprocess] = [layer for layer in vgg16.layers if isinstance(layer, CaffePreprocess)]

    @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32, name="pixels")])
    def features(pixels):
        return {"features": block1(preprocess(pixels))}

    content = tflite.convert_function(features.get_concrete_function())
    report = gpu_rules.check_model(content)
    _assert_whole(report)
    assert {"SPLIT", "SUB", "CONCATENATION", "CONV_2D", "MAX_POOL_2D"} <= set(report.op_counts())
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    got = Interpreter(model_content=content).get_signature_runner(tflite.SIGNATURE)(pixels=pixels)
    # Measured equal (features up to 62); float32 arithmetic in two runtimes may round apart.
    np.testing.assert_allclose(got["features"], features(pixels)["features"], rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_voc_recipe_at_512_runs_whole_on_the_gpu_delegate():
    config = recipes.model_config_from_flagfile(
        os.path.join(ROOT, "voc.flags"), backbone_weights="none"
    )
    _assert_whole(_export_and_compare(config, num_classes=20, images=1))


@pytest.mark.parametrize(
    "changes",
    [
        dict(),
        dict(loc_head="spatial", loc_grid=5),
        dict(
            loc_head="spatial",
            loc_grid=5,
            inhibition_radius=0.3,
            location_input=True,
            loc_hidden=8,
            region_pool="max",
        ),
        dict(loc_hidden=8, context_grid=True, region_pool="max"),
        dict(recurrence="localisation_only"),
        dict(recurrence="none"),
        dict(crop_size=1),
        dict(
            loc_head="query",
            loc_grid=5,
            loc_hidden=8,
            policy_state="own",
            policy_units=6,
            location_input=True,
            region_pool="max",
        ),
        dict(loc_head="query", loc_grid=5, loc_hidden=8, inhibition_radius=0.3),
        dict(loc_head="spatial", loc_grid=5, policy_state="none", inhibition_radius=0.3),
    ],
    ids=[
        "paper",
        "spatial",
        "digits_levers",
        "context_grid",
        "localisation_only",
        "no_lstm",
        "crop_1",
        "query_own_state",
        "query_inhibited",
        "saliency_inhibition",
    ],
)
def test_model_variants_run_whole_and_equal_keras(changes):
    _assert_whole(_export_and_compare(tiny_model_config(**changes)))


def test_random_locations_are_refused():
    model = build_model(tiny_model_config(locations="random"), 10, backbone_weights="none")
    with pytest.raises(ValueError, match="random"):
        tflite.convert_model(model, 40)
