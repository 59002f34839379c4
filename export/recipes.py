"""A `ModelConfig` from a training flagfile (digits.flags, voc.flags), without absl.

For checks of the exported graph of a recipe on a model with random weights (no training, no
download): `build_model(model_config_from_flagfile("voc.flags"), 20, backbone_weights="none",
crop_mode="matmul")`.
"""

from __future__ import annotations

import dataclasses

from rarl_tf.config import ModelConfig


def model_config_from_flagfile(path: str, **changes) -> ModelConfig:
    """The ModelConfig fields the flagfile sets (others keep their defaults), then `changes`."""
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    defaults = ModelConfig()
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("--"):
                continue
            key, _, value = line[2:].partition("=")
            if key.startswith("no") and key[2:] in fields and not value:
                key, value = key[2:], "false"
            if key not in fields:
                continue
            default = getattr(defaults, key)
            if isinstance(default, bool):
                values[key] = value.lower() in ("", "true", "1")
            elif isinstance(default, tuple):
                kind = type(default[0]) if default else float
                values[key] = tuple(kind(v) for v in value.split(","))
            elif isinstance(default, int):
                values[key] = int(value)
            elif isinstance(default, float):
                values[key] = float(value)
            else:
                values[key] = value
    values.update(changes)
    return ModelConfig(**values)
