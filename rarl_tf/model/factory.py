"""Builds an `RARLModel` from a `ModelConfig` (`model_folder.load_trained` loads a trained one).

Each layer's arguments are named here (`*_FIELDS`): a new config field reaches a layer by being
listed, and a field that no layer reads is one that no list names.
"""

from __future__ import annotations

import numpy as np

from rarl_tf.config.experiment import ModelConfig
from rarl_tf.config.location_heads import settings_from_flags
from rarl_tf.model.global_pool import GlobalPoolingClassifier
from rarl_tf.model.rarl import RARLModel

# Each layer's arguments, named here: the config field of each name feeds the argument of that
# name. A new field reaches a layer by being listed; the head's settings are made apart.
BACKBONE_FIELDS = ("backbone", "backbone_widths")
RARL_FIELDS = ("discount", "trajectories", "reward", "step_reward")
AGENT_FIELDS = (
    "anchor_sizes",
    "aspect_ratios",
    "num_steps",
    "crop_size",
    "embed_dim",
    "lstm_units",
    "region_pool",
    "recurrence",
    "location_input",
    "context_grid",
)
POLICY_FIELDS = (
    "loc_std",
    "locations",
    "loc_grid",
    "inhibition_radius",
    "policy_state",
    "policy_units",
    "inhibition_anneal_epochs",
)


def _fields(config: ModelConfig, names: tuple[str, ...]) -> dict:
    return {name: getattr(config, name) for name in names}


def head_settings(config: ModelConfig) -> dict:
    """The location head's settings, {"type": name, ...} (`LocationPolicy`'s `head`)."""
    return {"type": config.loc_head, **settings_from_flags(config.loc_head, config.loc_hidden)}


def policy_arguments(config: ModelConfig) -> dict:
    """`LocationPolicy`'s arguments (the agent adds its cell width and `train_state`)."""
    return {**_fields(config, POLICY_FIELDS), "head": head_settings(config)}


def agent_arguments(config: ModelConfig) -> dict:
    """`RecurrentAttention`'s arguments from the config (its regions, recurrence, policy)."""
    return {**_fields(config, AGENT_FIELDS), "policy": policy_arguments(config)}


def build_model(
    config: ModelConfig,
    num_classes: int,
    seed: int | None = 0,
    crop_mode: str = "crop_and_resize",
    backbone_weights: str | None = None,
) -> RARLModel | GlobalPoolingClassifier:
    """The model `config.architecture` names, built on a dummy batch so its variables exist.

    Args:
      config: the model configuration.
      num_classes: C.
      seed: seed of the location sampler.
      crop_mode: "crop_and_resize" or "matmul" (see `crop.py`).
      backbone_weights: overrides `config.backbone_weights` (e.g. "none" before loading a
        trained model's own weights, so nothing is downloaded).
    """
    weights = config.backbone_weights if backbone_weights is None else backbone_weights
    side = config.image_size - config.crop_margin
    kwargs = {**_fields(config, BACKBONE_FIELDS), "backbone_weights": weights}
    if config.architecture == "global":
        model = GlobalPoolingClassifier(num_classes=num_classes, crop_mode=crop_mode, **kwargs)
    else:
        agent = {**agent_arguments(config), "crop_mode": crop_mode, "seed": seed}
        model = RARLModel(
            num_classes=num_classes, agent_kwargs=agent, **_fields(config, RARL_FIELDS), **kwargs
        )
    model(np.zeros((1, side, side, 3), np.float32))
    return model
