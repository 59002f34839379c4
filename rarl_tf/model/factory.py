"""Builds an `RARLModel` from a `ModelConfig` (`model_folder.load_trained` loads a trained one)."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np

from rarl_tf.config.experiment import ModelConfig
from rarl_tf.model.agent import RecurrentAttention
from rarl_tf.model.global_pool import GlobalPoolingClassifier
from rarl_tf.model.policy import LocationPolicy
from rarl_tf.model.rarl import RARLModel


def _arguments(layer_class, config: ModelConfig) -> dict:
    """The config fields that `layer_class.__init__` takes, or the `__init__` of a project class
    it derives from (which receives them through **kwargs), by name: a new field reaches the
    layer that declares an argument of its name, with no list of fields to keep here. Keras's
    own base classes are left out, so a field named like one of their arguments (`name`,
    `dtype`, ...) does not reach every layer."""
    names = {
        name
        for base in layer_class.__mro__
        if "__init__" in vars(base) and base.__module__.startswith("rarl_tf.")
        for name in inspect.signature(base.__init__).parameters
    }
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}


def build_model(
    config: ModelConfig,
    num_classes: int,
    seed: int | None = 0,
    crop_mode: str = "crop_and_resize",
    backbone_weights: str | None = None,
) -> RARLModel | GlobalPoolingClassifier:
    """The model `config.architecture` names, built on a dummy batch so its variables exist.

    Args:
      config: the model configuration; each field goes to the model or agent argument of its
        name.
      num_classes: C.
      seed: seed of the location sampler.
      crop_mode: "crop_and_resize" or "matmul" (see `crop.py`).
      backbone_weights: overrides `config.backbone_weights` (e.g. "none" before loading a
        trained model's own weights, so nothing is downloaded).
    """
    weights = config.backbone_weights if backbone_weights is None else backbone_weights
    side = config.image_size - config.crop_margin
    model_class = GlobalPoolingClassifier if config.architecture == "global" else RARLModel
    kwargs = {**_arguments(model_class, config), "backbone_weights": weights}
    if model_class is RARLModel:
        kwargs["agent_kwargs"] = {
            **_arguments(RecurrentAttention, config),
            "policy": _arguments(LocationPolicy, config),
            "crop_mode": crop_mode,
            "seed": seed,
        }
    else:
        kwargs["crop_mode"] = crop_mode
    model = model_class(num_classes=num_classes, **kwargs)
    model(np.zeros((1, side, side, 3), np.float32))
    return model
