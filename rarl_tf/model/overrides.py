"""Test-time interventions on the location policy, applied from outside it.

The policy report (`rarl_tf.evaluation.policy_report`) asks what the learned policy does with
the same weights when the state its head reads is replaced, when the inhibition of return is
forced on, or when placements are given (an oracle). Such a question is a `PolicyOverride`
handed to the model's call (`RARLModel.call(..., override=...)` -> the agent -> the policy at
each step); the layers keep no test-time switch, and nothing of it is saved.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

# What may replace the state the head reads.
INTERVENTIONS = ("zero", "other_image", "batch_mean", "first")


@dataclasses.dataclass(frozen=True)
class PolicyOverride:
    """What replaces the policy's own at test time (each None: the policy's own).

    Args:
      state: "zero", "other_image" (the previous episode's in the batch), "batch_mean" or
        "first" (the state of the first placement, held): what the head reads instead of its
        state.
      strength: the inhibition of return's strength instead of the (annealed) weight's.
      placements: [E, T, 2] locations (view frame) used instead of the policy's.
    """

    state: str | None = None
    strength: float | None = None
    placements: Any = None

    def __post_init__(self):
        if self.state is not None and self.state not in INTERVENTIONS:
            raise ValueError(f"state={self.state!r}; expected one of {INTERVENTIONS}")

    def head_state(self, state: tf.Tensor, first: tf.Tensor) -> tf.Tensor:
        """The state [E, S] the head reads under this override."""
        if self.state is None:
            return state
        if self.state == "zero":
            return tf.zeros_like(state)
        if self.state == "other_image":
            return tf.roll(state, 1, axis=0)
        if self.state == "batch_mean":
            return tf.zeros_like(state) + tf.reduce_mean(state, 0, keepdims=True)
        return first

    def inhibition_strength(self, own):
        """The inhibition's strength to use, given the policy's own."""
        return own if self.strength is None else self.strength

    def placement(self, step: int, dtype) -> tf.Tensor | None:
        """The forced location [E, 2] of step `step` (0-based), or None."""
        if self.placements is None:
            return None
        return tf.cast(self.placements[:, step], dtype)
