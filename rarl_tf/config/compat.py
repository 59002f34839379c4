"""Dated migrations: what runs written by older code need to load today, in one place.

Each entry says which runs wrote the old form and why loading it the new way is exact. Nothing
here imports TensorFlow or the model: the model and the config reader call these functions.
"""

from __future__ import annotations

from typing import Any

# ModelConfig keys of runs before 2026-11-26. Under Adam they had no effect (each scaled the
# only loss of its head), so such runs load as if they were never set.
REMOVED_MODEL_KEYS = ("reinforce_weight", "baseline_weight")

# `LocationPolicy` arguments that configurations written before 2026-11-27 give as
# `RecurrentAttention`'s own (the policy was then part of the agent).
AGENT_POLICY_ARGUMENTS = (
    "loc_std",
    "locations",
    "loc_head",
    "loc_hidden",
    "loc_grid",
    "inhibition_radius",
)

# Weight-file paths of the policy's layers, which files of every run name as the agent's own:
# agent attribute -> the policy's attribute of today. Keras saves a layer under the first
# attribute path it walks, in sorted order; these names sort before "policy", so the files of
# runs before 2026-11-27 (and every file since) keep their paths.
AGENT_WEIGHT_PATHS = {
    "loc_head": "mean_head",
    "loc_hidden_layer": "loc_hidden_layer",
    "loc_cell": "loc_cell",
    "loc_state": "loc_state",
    "loc_score": "loc_score",
    "baseline_head": "baseline_head",
}


def model_section(values: dict[str, Any]) -> dict[str, Any]:
    """A config.json's "model" section with the keys of older runs dropped."""
    return {key: value for key, value in values.items() if key not in REMOVED_MODEL_KEYS}


def policy_arguments(policy: dict | None, agent_kwargs: dict) -> dict:
    """The policy's arguments, those given as the agent's (older configurations) moved out of
    `agent_kwargs` (which is changed in place) into them."""
    moved = {
        name: agent_kwargs.pop(name) for name in AGENT_POLICY_ARGUMENTS if name in agent_kwargs
    }
    return {**(policy or {}), **moved}


def keep_weight_paths(agent, policy) -> None:
    """Names the policy's layers on `agent` as its weight files do (`AGENT_WEIGHT_PATHS`).

    These attributes exist for the weight files alone; code reads the layers from the policy.
    """
    for agent_name, policy_name in AGENT_WEIGHT_PATHS.items():
        setattr(agent, agent_name, getattr(policy, policy_name))
