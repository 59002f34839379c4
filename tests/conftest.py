"""Shared test set-up: quiet TensorFlow, the repo on sys.path, a tiny model config."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402

from rarl_tf.config import ModelConfig  # noqa: E402


def tiny_model_config(**changes) -> ModelConfig:
    """A model small enough to train a few steps in seconds on 2 CPU cores."""
    values = dict(backbone="small_vgg", backbone_weights="none", backbone_widths=(8, 16),
                  image_size=40, crop_margin=8, anchor_sizes=(8.0, 16.0), aspect_ratios=(2.0, 1.0, 0.5),
                  crop_size=3, embed_dim=16, lstm_units=16, num_steps=2)
    values.update(changes)
    return ModelConfig(**values)


@pytest.fixture
def tiny_config():
    return tiny_model_config()
