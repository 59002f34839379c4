"""The VOC recipes train two steps on fake data and export to TFLite and SavedModel (the COCO
recipes are the same runs on other data).

The recipe's flagfile as `rarl_tf.train` reads it, shrunk to a tiny N (a small backbone, narrow
layers, T = 2) so a run takes seconds; everything the recipe chooses for the location policy
(head, inhibition of return, K, reward, grid, the policy's own Adam rate) is kept. The COCO
recipes are checked to be the VOC ones on other data. The VGG16 form (N = 64, the recipe's
T = 5) is slow-marked.
"""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from ai_edge_litert.interpreter import Interpreter

from conftest import ROOT, TINY_SIZES
from fake_tfds import as_dataset_fn
from rarl_tf.config.flags import experiment_config_from_flagfile
from rarl_tf.export import saved_model, tflite
from rarl_tf.inference.prediction import keras_predict
from rarl_tf.model import optimizer as optimizer_lib
from rarl_tf.model_folder import load_trained
from rarl_tf.training import callbacks, trainer

RECIPES = ("voc.flags", "voc_paper.flags", "coco.flags", "coco_paper.flags")
# N = 40: 32 px training crops; anchors the recipe's fractions of N (80/160/320 of 512);
# T = 2 steps (the graph, traced and converted, grows with T; what is smoke-tested does not).
TINY = dict(TINY_SIZES, anchor_sizes=(6.25, 12.5, 25.0))
VGG16 = dict(backbone_weights="none", image_size=64, crop_margin=8, anchor_sizes=(10.0, 20.0, 40.0))


def _tiny_config(recipe: str, model_changes: dict):
    config = experiment_config_from_flagfile(os.path.join(ROOT, recipe))
    model = dataclasses.replace(config.model, **model_changes)
    if model.loc_hidden:  # the cell width, narrowed with the rest
        model = dataclasses.replace(model, loc_hidden=8, policy_units=8)
    return dataclasses.replace(
        config,
        model=model,
        data=dataclasses.replace(config.data, download=True, shuffle_buffer=8),
        train=dataclasses.replace(
            config.train, batch_size=2, epochs=1, steps_per_epoch=2, checkpoint_every_steps=1
        ),
        eval=dataclasses.replace(config.eval, batch_size=2),
    )


def _train_and_export(recipe: str, model_changes: dict, tmp_path):
    config = _tiny_config(recipe, model_changes)
    model_dir = str(tmp_path / "run")
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(8)):
        model, saved = trainer.train(config, model_dir, verbose=0)
    assert callbacks.global_step(model) == 2
    scaled = isinstance(model.optimizer, optimizer_lib.PolicyRateAdam)
    assert scaled == (config.train.policy_learning_rate > 0)
    num_classes = len(saved.class_names)
    side = config.model.image_size
    image = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)
    pixels = image.astype(np.float32)
    model, _ = load_trained(model_dir)
    want = keras_predict(model, pixels)["probs"]

    path = tmp_path / "model.tflite"
    tflite.export(model_dir, str(path), "none")
    runner = Interpreter(model_path=str(path)).get_signature_runner(tflite.SIGNATURE)
    np.testing.assert_allclose(runner(pixels=pixels)["scores"], want, atol=1e-4)

    version = saved_model.export(model_dir, str(tmp_path / "serving"))
    served = tf.saved_model.load(version).signatures["predict_pixels"]
    scores = served(pixels=tf.constant(image))["scores"].numpy()
    assert scores.shape == (1, num_classes)
    np.testing.assert_allclose(scores, want, atol=1e-4)


# The COCO recipes build the VOC recipes' models and train them the same way on other data:
# only the dataset and the size of the policy's own rate differ (checked below), so their tiny
# runs would repeat the VOC ones step for step. COCO's data through training and evaluation is
# tests/data/test_datasets.py's; the VGG16 form below runs all four.
AS_VOC = {"coco.flags": "voc.flags", "coco_paper.flags": "voc_paper.flags"}


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in AS_VOC])
def test_recipe_trains_two_steps_and_exports(recipe, tmp_path):
    _train_and_export(recipe, TINY, tmp_path)


@pytest.mark.parametrize("coco, voc", AS_VOC.items())
def test_coco_recipes_differ_from_their_voc_recipes_in_data_only(coco, voc):
    ours, theirs = _tiny_config(coco, TINY), _tiny_config(voc, TINY)
    assert ours.data.dataset == "coco2014"
    assert ours.data == dataclasses.replace(theirs.data, dataset="coco2014")
    assert (ours.model, ours.eval, ours.class_names) == (
        theirs.model,
        theirs.eval,
        theirs.class_names,
    )
    # The same optimizer: the policy's own rate set in both or neither.
    rate = theirs.train.policy_learning_rate
    assert (ours.train.policy_learning_rate > 0) == (rate > 0)
    assert dataclasses.replace(ours.train, policy_learning_rate=rate) == theirs.train


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_with_vgg16_trains_two_steps_and_exports(recipe, tmp_path):
    _train_and_export(recipe, VGG16, tmp_path)
