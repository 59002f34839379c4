"""Adam with a learning rate of its own for the location policy (`--policy_learning_rate`).

The location head, the policy's own recurrent state and the REINFORCE baseline
(`RecurrentAttention.policy`) start from scratch and learn from REINFORCE alone, while the
backbone starts from ImageNet: at the paper's single rate (1e-5) Adam, whose first steps move a
weight by about the rate whatever its gradient, moves a fresh head very little in a run. One
optimizer serves both rates, so a checkpoint keeps the structure plain Adam gives it (the same
slots, the same variables) and runs written before this class resume into it.
"""

from __future__ import annotations

import keras

from rarl_tf.config.experiment import TrainConfig

# Variables whose path holds this are the policy's (`RecurrentAttention` names its policy layer
# "policy"; weight files already depend on that name).
POLICY_SCOPE = "agent/policy/"


def policy_rate_ratio(train: TrainConfig) -> float:
    """--policy_learning_rate / --learning_rate (1 when the former is 0: one rate for all)."""
    if not train.policy_learning_rate:
        return 1.0
    return train.policy_learning_rate / train.learning_rate


@keras.saving.register_keras_serializable(package="rarl_tf")
class PolicyRateAdam(keras.optimizers.Adam):
    """Adam whose update of the variables under `scope` uses `ratio` times the learning rate
    (the schedule's value at each step, so the policy's rate follows the same schedule).

    Args:
      ratio: the policy's rate over every other variable's.
      scope: a variable is the policy's when its path contains this (`POLICY_SCOPE`).
      **kwargs: `keras.optimizers.Adam`'s.
    """

    def __init__(self, *args, ratio: float = 1.0, scope: str = POLICY_SCOPE, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = float(ratio)
        self.scope = scope
        # A frozenset (not a list): neither Keras nor tf.train tracks it, so checkpoints hold
        # exactly what plain Adam's hold.
        self._scaled = frozenset()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._scaled = frozenset(self._var_key(v) for v in var_list if self.scope in v.path)

    def scaled_count(self) -> int:
        """How many variables get the policy's rate (0 before `build`)."""
        return len(self._scaled)

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._scaled:
            learning_rate = learning_rate * self.ratio
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "scope": self.scope}


def adam(train: TrainConfig, learning_rate) -> keras.optimizers.Adam:
    """The run's optimizer: Adam with `train`'s betas and clipping at `learning_rate` (a number
    or a schedule); `PolicyRateAdam` when --policy_learning_rate asks for a rate of its own,
    plain Adam otherwise (every recipe without it trains as before, bit for bit)."""
    kwargs = dict(beta_1=train.beta_1, beta_2=train.beta_2, global_clipnorm=train.clip_norm or None)
    ratio = policy_rate_ratio(train)
    if ratio == 1.0:
        return keras.optimizers.Adam(learning_rate, **kwargs)
    return PolicyRateAdam(learning_rate, ratio=ratio, **kwargs)
