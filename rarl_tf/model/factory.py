"""Builds an `RARLModel` from a `ModelConfig`, and loads a trained one from its model_dir."""

from __future__ import annotations

import os

import numpy as np

from rarl_tf.config import ExperimentConfig, ModelConfig, load_config
from rarl_tf.model.global_pool import GlobalPoolingClassifier
from rarl_tf.model.rarl import RARLModel

WEIGHTS_FILE = "model.weights.h5"
# The whole model (architecture and weights) for `keras.saving.load_model`, written by training.
KERAS_FILE = "model.keras"


def build_model(config: ModelConfig, num_classes: int, seed: int | None = 0,
                crop_mode: str = "crop_and_resize", backbone_weights: str | None = None
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
    if config.architecture == "global":
        model = GlobalPoolingClassifier(num_classes, backbone=config.backbone,
                                        backbone_weights=weights,
                                        backbone_widths=config.backbone_widths,
                                        crop_mode=crop_mode)
        model(np.zeros((1, side, side, 3), np.float32))
        return model
    model = RARLModel(
        num_classes=num_classes, backbone=config.backbone, backbone_weights=weights,
        backbone_widths=config.backbone_widths, discount=config.discount,
        trajectories=config.trajectories, reward=config.reward,
        step_reward=config.step_reward,
        agent_kwargs=dict(anchor_sizes=config.anchor_sizes, aspect_ratios=config.aspect_ratios,
                          num_steps=config.num_steps, crop_size=config.crop_size,
                          region_pool=config.region_pool, locations=config.locations,
                          recurrence=config.recurrence, location_input=config.location_input,
                          loc_hidden=config.loc_hidden, context_grid=config.context_grid,
                          loc_head=config.loc_head, loc_grid=config.loc_grid,
                          inhibition_radius=config.inhibition_radius,
                          embed_dim=config.embed_dim, lstm_units=config.lstm_units,
                          loc_std=config.loc_std, crop_mode=crop_mode, seed=seed))
    model(np.zeros((1, side, side, 3), np.float32))
    return model


def load_trained(model_dir: str, crop_mode: str = "crop_and_resize"
                 ) -> tuple[RARLModel, ExperimentConfig]:
    """The model trained in `model_dir` (its config.json and model.weights.h5)."""
    config = load_config(model_dir)
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: training in {model_dir} has not finished "
                                f"(rerun `python -m rarl_tf.train --model_dir={model_dir}` to resume)")
    model = build_model(config.model, len(config.class_names), seed=config.train.seed,
                        crop_mode=crop_mode, backbone_weights="none")
    model.load_weights(path)
    return model, config

