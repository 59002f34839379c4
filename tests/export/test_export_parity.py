"""Export parity on real inputs (issue 31): the float32 TFLite export against the Keras model
on 200 cluttered_digits test canvases for each recipe shape and each location head, at 1e-4;
the float16 and int8 exports against Keras on the CPU at the tolerances and mAP drops stated
below. Random weights (seed 0): no trained model is needed for the export to be the model's
function, and no download. The exports run on LiteRT's CPU interpreter (XNNPACK)."""

import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from sklearn.metrics import average_precision_score

from canvases import labelled_canvases
from conftest import QUERY_HEAD, ROOT, TINY_SIZES, tiny_model_config
from rarl_tf.export import recipes, tflite
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model.factory import build_model

CANVASES = 200
# voc.flags's model at a small N on the small backbone (stride 4: a 16 x 16 map at N = 64, as
# the digits recipe; anchors scaled from 80/160/320 at N = 512).
SMALL = {key: TINY_SIZES[key] for key in ("backbone", "backbone_weights")} | dict(
    backbone_widths=(8, 16, 32), image_size=64, crop_margin=8, anchor_sizes=(10.0, 20.0, 40.0)
)


def recipe(name: str, **changes):
    return recipes.model_config_from_flagfile(os.path.join(ROOT, name), **changes)


def shapes() -> dict:
    """The recipe shapes and location heads, each a ModelConfig."""
    return {
        "digits": recipe("digits.flags"),  # the spatial head with inhibition, region max pool
        "voc_small": recipe("voc.flags", **SMALL),  # the same head, flatten, crop 7, 20 classes
        "voc_paper_small": recipe("voc_paper.flags", **SMALL),  # the paper's dense head
        "query_head": tiny_model_config(**QUERY_HEAD, loc_hidden=8, policy_units=6),
    }


def test_the_shapes_cover_every_recipe():
    # digits_large.flags and coco.flags (and their 640 forms at their own N) export the same
    # model as digits.flags and voc.flags: only data and training flags differ.
    assert recipe("digits_large.flags") == recipe("digits.flags")
    assert recipe("coco.flags", **SMALL) == recipe("voc.flags", **SMALL)
    assert recipe("coco_paper.flags", **SMALL) == recipe("voc_paper.flags", **SMALL)
    heads = {config.loc_head for config in shapes().values()}
    assert heads == {"dense", "spatial", "query"}


def exported_outputs(content: bytes, images) -> dict:
    """The export's outputs on `images` ([1, N, N, 3] each), one call per image, stacked."""
    runner = Interpreter(model_content=content).get_signature_runner(tflite.SIGNATURE)
    outs = [runner(pixels=image) for image in images]
    return {name: np.concatenate([o[name] for o in outs]) for name in outs[0]}


def seeded_model(config, classes: int = 10):
    """The model of `config` with the weights of seed 0, whatever ran before in the process
    (build_model's seed alone leaves Keras's global generator to the initialisers)."""
    keras.utils.set_random_seed(0)
    return build_model(config, classes, seed=0, backbone_weights="none")


def keras_outputs(model, images) -> dict:
    """The Keras model's outputs on `images`, in batches of 50."""
    parts = [
        keras_predict(model, np.concatenate(images[i : i + 50])) for i in range(0, len(images), 50)
    ]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def canvases_for(config):
    images, labels = labelled_canvases(CANVASES, config.image_size)
    return images, labels


def mean_ap(scores, labels) -> float:
    present = np.flatnonzero(labels.sum(0) > 0)
    return float(np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in present]))


def tie_explains(model, image, exported_centres, monkeypatch) -> bool:
    """Whether the export's first placement that differs from Keras's (the model run on this
    one image) is a cell whose Keras log-weight equals the best within 1e-5: a tie, broken
    the other way by rounding. Cells with equal features (a canvas's black background) tie
    exactly in the arithmetic, and each implementation sums them in its own order."""
    policy = model.agent.policy
    logged, original = [], policy.cell_logits

    def spy(*args, **kwargs):
        logits = original(*args, **kwargs)
        logged.append(logits.numpy()[0])
        return logits

    with monkeypatch.context() as patch:
        patch.setattr(policy, "cell_logits", spy)
        keras_centres = keras_predict(model, image)["centres"][0]
    positions = policy.cell_positions().numpy()
    for step, (mine, theirs) in enumerate(zip(exported_centres, keras_centres)):
        if np.abs(mine - theirs).max() > 1e-4 and logged:
            chosen = np.abs(positions - (2.0 * mine - 1.0)).sum(-1).argmin()
            return logged[step].max() - logged[step][chosen] <= 1e-5
    return False


@pytest.mark.parametrize("name", ["digits", "voc_small", "voc_paper_small", "query_head"])
def test_float32_export_equals_keras_on_200_canvases(name, monkeypatch):
    config = shapes()[name]
    model = seeded_model(config, 20 if name.startswith("voc") else 10)
    images, _ = canvases_for(config)
    got = exported_outputs(tflite.convert_model(model, config.image_size), images)
    want = keras_outputs(model, images)
    pairs = (("scores", "probs"), ("boxes", "boxes"), ("centres", "centres"))
    apart = [
        i
        for i in range(len(images))
        if any(np.abs(got[e][i] - want[p][i]).max() > 1e-4 for e, p in pairs)
    ]
    # Seen 2026-12-06 (random weights of seed 0): 5 of 200 digits canvases and 0-1 of the
    # others' apart, each at a step whose best cells tied; a placement that differs for any
    # other reason fails here.
    assert len(apart) <= len(images) // 10, apart
    ties = [i for i in apart if tie_explains(model, images[i], got["centres"][i], monkeypatch)]
    assert ties == apart, f"apart without a tie: {sorted(set(apart) - set(ties))}"
    rest = np.setdiff1d(np.arange(len(images)), apart)
    for exported, python in pairs:
        np.testing.assert_allclose(got[exported][rest], want[python][rest], atol=1e-4)
    np.testing.assert_array_equal(got["scores"].argmax(-1)[rest], want["probs"].argmax(-1)[rest])


# Quantized exports of the digits recipe against Keras: the largest score difference, and the
# mAP of the 200 canvases' labels (random weights: what is measured is the export's error,
# not a model's accuracy). float16 stores weights only; int8 also quantizes activations,
# calibrated on 20 canvases of another seed.
# Measured 2026-12-06 (these weights, these canvases): float16 0.0024 and +0.0012, int8 0.0092
# and +0.026; the limits leave about twice that.
QUANTIZED = {
    "float16": dict(scores=5e-3, map_drop=0.005),
    "int8": dict(scores=0.02, map_drop=0.05),
}


@pytest.mark.parametrize("quantization", sorted(QUANTIZED))
def test_quantized_export_is_keras_within_the_stated_tolerance(quantization):
    config = shapes()["digits"]
    model = seeded_model(config)
    images, labels = canvases_for(config)
    calibration = labelled_canvases(20, config.image_size, seed=1)[0]
    content = tflite.convert_model(model, config.image_size, quantization, calibration)
    got = exported_outputs(content, images)["scores"]
    want = keras_outputs(model, images)["probs"]
    limits = QUANTIZED[quantization]
    diff = float(np.abs(got - want).max())
    drop = mean_ap(want, labels) - mean_ap(got, labels)
    print(f"{quantization}: max |scores - Keras| {diff:.3g}, mAP drop {drop:+.4f}")
    assert diff <= limits["scores"], diff
    assert drop <= limits["map_drop"], drop


def test_a_wrong_export_fails_the_parity_check():
    # The check can fail: the Keras model with its region classifier's weights scaled by 1.5
    # after the export is no longer what was exported.
    config = shapes()["query_head"]
    model = seeded_model(config)
    images, _ = canvases_for(config)
    got = exported_outputs(tflite.convert_model(model, config.image_size), images[:20])
    kernel = model.agent.cls_head.kernel
    kernel.assign(kernel.numpy() * 1.5)
    want = keras_predict(model, np.concatenate(images[:20]))
    assert np.abs(got["scores"] - want["probs"]).max() > 1e-4
