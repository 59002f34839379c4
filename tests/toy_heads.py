"""Two location heads added in this one module and its registrations, nothing else: the
walk-through of docs/design.md ("Adding a location head"), trained, evaluated and exported by
tests/export/test_toy_head.py. Importing this module registers them: `--loc_head=toy_central`
and `--loc_head=toy_pull` are then choices of the config, and the model builds them.

* `toy_central` (a normal head): the paper's dense mean, scaled into the view's central part.
* `toy_pull` (a cells head): a saliency of each cell's features, less a pull towards the view's
  centre, `pull` |p_g|^2 (the state is not read: a saliency map).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from rarl_tf.model.location_heads import CellHead, NormalHead, register_head


@dataclasses.dataclass(frozen=True)
class CentralSettings:
    """The config section of `toy_central`."""

    scale: float = 0.5  # the mean's largest distance from the view's centre


@register_head("toy_central", CentralSettings)
class ToyCentralHead(NormalHead):
    """mean = scale * tanh(W s_t + b): centres within the central `scale` of the view."""

    def __init__(self, scale: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.toy_mean = keras.layers.Dense(2, activation="tanh", name="toy_mean")

    def build(self, state_shape, channels=None):
        self.toy_mean.build((None, state_shape[-1]))
        self.built = True

    def mean(self, state):
        return self.scale * self.toy_mean(state)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@dataclasses.dataclass(frozen=True)
class PullSettings:
    """The config section of `toy_pull`."""

    width: int = 0  # unused (a cells head's width: `--loc_hidden`)
    pull: float = 4.0  # the log-weight lost per unit of squared distance from the centre


@register_head("toy_pull", PullSettings)
class ToyPullHead(CellHead):
    """u_g = w . F_g + b - pull |p_g|^2."""

    def __init__(self, pull: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        self.pull = float(pull)
        self.toy_saliency = keras.layers.Dense(1, name="toy_saliency")

    def build(self, state_shape, channels=None):
        self.toy_saliency.build((None, channels))
        self.built = True

    def cell_terms(self, grid):
        return self.toy_saliency(tf.reshape(grid, [-1, self.grid**2, grid.shape[-1]]))

    def cell_logits(self, state, cells):
        distance2 = tf.reduce_sum(tf.square(self.positions(cells.dtype)), -1)
        # [E, G*G] + [1, G*G]: a broadcast of the first dimension, which the GPU delegate takes.
        return tf.squeeze(cells, -1) - self.pull * tf.reshape(distance2, [1, -1])

    def get_config(self):
        return {**super().get_config(), "pull": self.pull}
