"""Scoring reads the evaluation split once; a second read (ids only) only names what it left out."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_model_config
from rarl_tf.config.experiment import EvalConfig, ExperimentConfig
from rarl_tf.data import pipeline
from rarl_tf.evaluation import scoring


def _split(images: list[bytes]) -> tf.data.Dataset:
    """Examples with unknown cardinality (filtered), as a filtered source would give them."""
    labels = np.eye(3, dtype=np.float32)[np.arange(len(images)) % 3]
    examples = tf.data.Dataset.from_tensor_slices(
        {"image": images, "labels": labels, "ignore": np.zeros_like(labels, bool)}
    )
    return examples.filter(lambda ex: True)


def _png() -> bytes:
    return tf.io.encode_png(tf.zeros([10, 10, 3], tf.uint8)).numpy()


@pytest.mark.parametrize("bad", [[], [2]])
def test_the_split_is_read_again_only_to_name_the_skipped(monkeypatch, bad):
    images = [b"not an image" if i in bad else _png() for i in range(5)]
    assert int(_split(images).cardinality()) < 0
    monkeypatch.setattr(scoring, "load_split", lambda config, split: _split(images))
    reads = []
    with_ids = pipeline.with_ids
    monkeypatch.setattr(pipeline, "with_ids", lambda ex: reads.append(1) or with_ids(ex))
    config = ExperimentConfig(model=tiny_model_config(), eval=EvalConfig(batch_size=2))
    scored = scoring.evaluate_scores(lambda batch: np.zeros((len(batch), 3), np.float32), config)
    assert len(scored.scores) == 5 - len(bad)
    assert scored.skipped == [f"position {i}" for i in bad]
    assert len(reads) == 1 + bool(bad)
