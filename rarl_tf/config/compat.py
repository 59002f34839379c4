"""Dated migrations: what runs written by older code need to load today, in one place.

Each entry says which runs wrote the old form and why loading it the new way is exact. Nothing
here imports TensorFlow or the model: the model and the config reader call these functions.
"""

from __future__ import annotations

from typing import Any

from rarl_tf.config.location_heads import settings_from_flags

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
# agent attribute -> the layer's attribute on the location head (None: the policy's own).
# Keras saves a layer under the first attribute path it walks, in sorted order; these names
# sort before "policy", so the files of runs before 2026-11-27 (and every file since) keep
# their paths. The heads became classes of their own on 2026-12-06 (`location_head`); their
# layers kept their attribute names.
AGENT_WEIGHT_PATHS = {
    "loc_head": "mean_head",
    "loc_hidden_layer": "loc_hidden_layer",
    "loc_cell": "loc_cell",
    "loc_state": "loc_state",
    "loc_score": "loc_score",
    "baseline_head": None,
}
# Layers of the query head that files since 2026-11-29 name as the policy's own
# (agent/policy/loc_position): these sort before "location_head", the head's attribute.
POLICY_WEIGHT_PATHS = ("loc_position", "loc_query")


def model_section(values: dict[str, Any]) -> dict[str, Any]:
    """A flat config.json "model" section with the keys of older runs dropped."""
    return {key: value for key, value in values.items() if key not in REMOVED_MODEL_KEYS}


def flat_model_section(values: dict[str, Any], sections: dict) -> bool:
    """Whether a config.json's "model" holds the fields flat, as files written before
    2026-12-06 do (they read the same once in sections: `experiment.model_sections`), rather
    than in `sections` (each a JSON object; a flat file's "backbone" is a string)."""
    return not any(key in sections and isinstance(v, dict) for key, v in values.items())


def policy_arguments(policy: dict | None, agent_kwargs: dict) -> dict:
    """The policy's arguments, those given as the agent's (older configurations) moved out of
    `agent_kwargs` (which is changed in place) into them."""
    moved = {
        name: agent_kwargs.pop(name) for name in AGENT_POLICY_ARGUMENTS if name in agent_kwargs
    }
    return {**(policy or {}), **moved}


def head_arguments(head: dict | None, policy_kwargs: dict) -> dict | None:
    """The policy's `head` settings; from `loc_head` and `loc_hidden` (popped from
    `policy_kwargs`, changed in place) where a configuration written before 2026-12-06 gives
    them: `loc_hidden` was the dense head's hidden layer and a cells head's width."""
    name = policy_kwargs.pop("loc_head", None)
    hidden = policy_kwargs.pop("loc_hidden", 0)
    if head is not None or name is None:
        return head
    return {"type": name, **settings_from_flags(name, hidden)}


def keep_weight_paths(agent, policy) -> None:
    """Names the policy's layers on `agent` as its weight files do (`AGENT_WEIGHT_PATHS`).

    These attributes exist for the weight files alone; code reads the layers from the policy.
    """
    for agent_name, head_name in AGENT_WEIGHT_PATHS.items():
        owner = policy if head_name is None else policy.location_head
        setattr(agent, agent_name, getattr(owner, head_name or agent_name, None))


def keep_head_paths(policy, head) -> None:
    """Names the query head's layers on `policy` as weight files do (`POLICY_WEIGHT_PATHS`)."""
    for name in POLICY_WEIGHT_PATHS:
        setattr(policy, name, getattr(head, name, None))
