"""voc2007 and coco2014 through tensorflow-datasets, on mock data (nothing is downloaded)."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import tiny_model_config
from fake_tfds import as_dataset_fn
from rarl_tf.config.experiment import DataConfig, EvalConfig, ExperimentConfig, TrainConfig
from rarl_tf.data import pipeline, tfds_sources
from rarl_tf.data.sources import get_source
from rarl_tf.data.voc_dir import VOC_CLASSES
from rarl_tf.evaluation import scoring
from rarl_tf.training import trainer


def test_class_lists():
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor"
    assert VOC_CLASSES == tuple(tfds.builder("voc/2007").info.features["objects"]["label"].names)
    assert len(tfds_sources.COCO_CLASSES) == 80 == len(set(tfds_sources.COCO_CLASSES))
    assert tfds_sources.COCO_CLASSES[:3] == ("person", "bicycle", "car")
    assert get_source("voc2007").train_split == "train+validation"
    assert get_source("coco2014").eval_split == "validation"


@pytest.mark.parametrize("dataset, num_classes", [("voc2007", 20), ("coco2014", 80)])
def test_examples_have_encoded_images_labels_and_ignore(dataset, num_classes):
    source = get_source(dataset)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(6)):
        examples = source.load(source.eval_split, None, False, 0, download=True)
        decoded = list(pipeline.decode(examples).take(6))
    assert len(decoded) == 6
    for ex in decoded:
        assert ex["image"].dtype == tf.uint8 and ex["image"].shape[-1] == 3
        assert ex["labels"].shape == (num_classes,) and ex["ignore"].shape == (num_classes,)
        assert set(np.unique(ex["labels"].numpy())) <= {0.0, 1.0}
        # Only a labeled class can be ignored.
        assert not np.any(ex["ignore"].numpy() & (ex["labels"].numpy() == 0))


def test_voc_ignore_marks_classes_whose_objects_are_all_difficult():
    # person (14) has an easy object; chair (8) and boat (3) only difficult ones.
    labels, ignore = tfds_sources.voc_labels(
        tf.constant([14, 14, 8, 3], tf.int64), tf.constant([True, False, True, True]), 20
    )
    assert np.flatnonzero(labels.numpy()).tolist() == [3, 8, 14]
    assert np.flatnonzero(ignore.numpy()).tolist() == [3, 8]
    labels, ignore = tfds_sources.voc_labels(tf.zeros([0], tf.int64), tf.zeros([0], tf.bool), 20)
    assert not labels.numpy().any() and not ignore.numpy().any()


def test_missing_dataset_says_how_to_get_it(tmp_path):
    source = get_source("voc2007")
    with pytest.raises(tfds_sources.DatasetNotPrepared) as err:
        source.load("test", str(tmp_path), False, 0)
    message = str(err.value)
    assert "tfds build voc/2007" in message and "--download" in message and "voc_dir" in message


@pytest.mark.parametrize("dataset", ["voc2007", "coco2014"])
def test_train_and_evaluate_on_mock_data(tmp_path, dataset):
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset=dataset, download=True, shuffle_buffer=8),
        train=TrainConfig(
            batch_size=4, epochs=1, steps_per_epoch=2, learning_rate=1e-3, checkpoint_every_steps=1
        ),
        eval=EvalConfig(views=10, batch_size=4),
    )
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(12)):
        model, saved = trainer.train(config, str(tmp_path), verbose=0)
        results = scoring.evaluate(model, saved)
    assert saved.class_names == get_source(dataset).class_names
    stats = json.loads((tmp_path / "data_stats.json").read_text())
    # fake_tfds gives every third COCO image no object: skipped in training, kept in evaluation.
    assert stats == (
        {"labeled": 8, "unlabeled": 4} if dataset == "coco2014" else {"labeled": 12, "unlabeled": 0}
    )
    assert int(model.optimizer.iterations) == 2
    assert results["num_images"] == 12 and results["views"] == 10
    assert list(results["per_class_ap"]) == list(saved.class_names)
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert np.isfinite(results[key]), key


def test_training_skips_and_counts_images_that_do_not_decode(tmp_path, capsys):
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset="voc2007", download=True, shuffle_buffer=1),
        train=TrainConfig(
            batch_size=4, epochs=1, steps_per_epoch=3, learning_rate=1e-3, checkpoint_every_steps=3
        ),
    )
    # shuffle_buffer=1 keeps file order: 3 of the first 12 images are broken, so 12 images
    # for 3 steps of 4 come from the 13th to 15th as well (a second pass).
    with tfds.testing.mock_data(as_dataset_fn=as_dataset_fn(12, undecodable=(1, 5, 11))):
        model, _ = trainer.train(config, str(tmp_path), verbose=0)
    assert int(model.optimizer.iterations) == 3  # the run made all its steps
    out = capsys.readouterr().out
    reported = re.search(r"(\d+) training images could not be decoded and were skipped", out)
    # 3 per pass (images 1, 5, 11); the prefetching pipeline may already have read ahead into
    # the second pass, through none, some or all of its broken images (13, 17, 23): 3 to 6.
    assert reported and 3 <= int(reported.group(1)) <= 6, out
