"""The one data entry point (`splits.load_split`) and the one VOC difficult rule."""

import numpy as np
import pytest
import tensorflow as tf

from rarl_tf.config.experiment import DataConfig, ExperimentConfig, TrainConfig
from rarl_tf.data import labels as label_rules
from rarl_tf.data import splits, voc_dir
from rarl_tf.data.sources import get_source


def _digits(seed: int = 0) -> ExperimentConfig:
    return ExperimentConfig(
        data=DataConfig(dataset="cluttered_digits/small"), train=TrainConfig(seed=seed)
    )


def _rows(examples: tf.data.Dataset) -> list[tuple[bytes, tuple]]:
    return [(ex["image"].numpy(), tuple(ex["labels"].numpy())) for ex in examples]


def test_load_split_reads_the_datasets_train_and_eval_splits():
    config = _digits()
    train, test = splits.load_split(config, "train"), splits.load_split(config, "eval")
    # cluttered_digits/small: 256 train and 64 test canvases.
    assert int(train.cardinality()) == 256 and int(test.cardinality()) == 64
    assert set(train.element_spec) == {"image", "labels", "ignore"}
    ex = next(iter(test))
    assert ex["image"].dtype == tf.string and ex["image"].shape == ()  # still encoded
    assert ex["labels"].shape == (10,) and ex["labels"].dtype == tf.float32
    assert set(np.unique(ex["labels"].numpy())) <= {0.0, 1.0} and ex["labels"].numpy().sum() >= 1
    assert not ex["ignore"].numpy().any()
    # The same examples, in the same order, as the source's own loader of "test".
    source = get_source("cluttered_digits/small")
    assert _rows(test) == _rows(source.load("test", None, False, 0))
    assert splits.class_names(config) == tuple(str(d) for d in range(10))


def test_shuffled_files_follow_the_configs_seed():
    plain = _rows(splits.load_split(_digits(), "train"))
    shuffled = _rows(splits.load_split(_digits(seed=3), "train", shuffle_files=True))
    again = _rows(splits.load_split(_digits(seed=3), "train", shuffle_files=True))
    assert shuffled == again
    assert sorted(shuffled) == sorted(plain)


def test_split_names_and_bad_splits():
    assert splits.split_name("voc2007", "train") == "train+validation"
    assert splits.split_name("voc_dir", "eval") == "test"
    with pytest.raises(ValueError, match="'validation' is not allowed"):
        splits.load_split(_digits(), "validation")
    with pytest.raises(ValueError, match="--dataset=mnist is not allowed"):
        splits.split_name("mnist", "train")


@pytest.mark.parametrize(
    "objects",
    [
        [],
        [("person", False), ("person", True), ("chair", True), ("boat", True)],
        [("dog", True), ("dog", False), ("cat", True)],
    ],
)
def test_voc_folder_and_tfds_share_the_difficult_rule(objects):
    labels, ignore = voc_dir.labels_and_ignore(objects)
    indices = tf.constant([voc_dir.VOC_CLASSES.index(n) for n, _ in objects], tf.int64)
    difficult = tf.constant([d for _, d in objects], tf.bool)
    want_labels, want_ignore = label_rules.voc_labels(indices, difficult, 20)
    assert labels.dtype == np.float32 and ignore.dtype == bool
    np.testing.assert_array_equal(labels, want_labels.numpy())
    np.testing.assert_array_equal(ignore, want_ignore.numpy())
    names = {n for n, _ in objects}
    easy = {n for n, d in objects if not d}
    assert {voc_dir.VOC_CLASSES[i] for i in np.flatnonzero(labels)} == names
    assert {voc_dir.VOC_CLASSES[i] for i in np.flatnonzero(ignore)} == names - easy
