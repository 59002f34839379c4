"""A `ModelConfig` from a training flagfile (digits.flags, voc.flags).

For checks of the exported graph of a recipe on a model with random weights (no training, no
download): `build_model(model_config_from_flagfile("voc.flags"), 20, backbone_weights="none",
crop_mode="matmul")`.
"""

from __future__ import annotations

import dataclasses

from rarl_tf.config.experiment import ModelConfig
from rarl_tf.config.flags import experiment_config_from_flagfile


def model_config_from_flagfile(path: str, **changes) -> ModelConfig:
    """The flagfile's ModelConfig, parsed as `rarl_tf.train` parses it (other fields at their
    defaults), then `changes`."""
    return dataclasses.replace(experiment_config_from_flagfile(path).model, **changes)
