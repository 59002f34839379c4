"""Shared test set-up: quiet TensorFlow, the repository's paths, a tiny model config.

The repository root and tests/ are on sys.path through pyproject.toml's pytest `pythonpath`, so
tests in the sub-folders import `conftest`, `fake_tfds` and the project alike.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from rarl_tf.config.experiment import ModelConfig  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Files the tests read: config snapshots, weight files of older runs.
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def tiny_model_config(**changes) -> ModelConfig:
    """A model small enough to train a few steps in seconds on 2 CPU cores."""
    values = dict(
        backbone="small_vgg",
        backbone_weights="none",
        backbone_widths=(8, 16),
        image_size=40,
        crop_margin=8,
        anchor_sizes=(8.0, 16.0, 32.0),
        aspect_ratios=(2.0, 1.0, 0.5),
        crop_size=3,
        embed_dim=16,
        lstm_units=16,
        num_steps=2,
    )
    values.update(changes)
    return ModelConfig(**values)


@pytest.fixture
def tiny_config():
    return tiny_model_config()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A model_dir as `rarl_tf.train` leaves it (config.json + weights), for a tiny random model."""
    from rarl_tf.config.experiment import DataConfig, ExperimentConfig
    from rarl_tf.model.factory import WEIGHTS_FILE, build_model
    from rarl_tf.model_folder import save_config

    model_dir = tmp_path_factory.mktemp("tiny_model")
    config = ExperimentConfig(
        model=tiny_model_config(),
        data=DataConfig(dataset="cluttered_digits/small"),
        class_names=tuple(str(d) for d in range(10)),
    )
    save_config(config, str(model_dir))
    build_model(config.model, 10, seed=0).save_weights(str(model_dir / WEIGHTS_FILE))
    return model_dir
