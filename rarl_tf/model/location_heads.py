"""Location heads: what the policy draws the next location l_{t+1} [E, 2] from, given the state
s_t [E, S] it reads. One small Keras layer per head, registered by name (`register_head`), so a
new head is one class and its registration (docs/design.md, "Adding a location head").

Two kinds of head (`rarl_tf.config.location_heads.KINDS`), each a base class here:

* `NormalHead` computes a mean [E, 2] (`mean`); the policy is Normal(mean, sigma) per
  coordinate, its mode the mean. `DenseHead` is the paper's: tanh(W h_t) (with `hidden` > 0 a
  hidden ReLU layer first).
* `CellHead` scores the cells of a G x G grid cropped from the view: `cell_terms(grid)` once
  per view (what does not depend on the state), `cell_logits(state, cells)` per step; the
  policy is the mixture sum_g softmax(u)_g Normal(p_g, sigma), so several objects are several
  modes rather than one mean between them, and its mode is the most likely cell's position. The
  policy adds the inhibition of return to the logits (it acts on cells, whatever scores them).
  `SpatialHead`: u_g = v . relu(W_f F_g + W_h s_t), where the policy looks follows what the map
  shows there; `QueryHead`: u_g = q(s_t) . relu(W_f F_g + W_p pos(p_g)), the state a query
  against keys that carry their position, so it can say "there, not near where I looked".

Each kind gives its distribution, mode and sample, and its export form (`export_mode`): the
mode in ops the TFLite GPU delegate takes, which the exported graph (`rarl_tf.model.agent`'s
`steps` under `RecurrentAttention.exporting`) runs instead of the distribution. A head changes
them only if its placement is not one of these two.

The layers' weight-file paths of the built-in heads are those of the code before the heads were
classes (`config/compat.py`, `AGENT_WEIGHT_PATHS`), so the attribute names below stay as they
were (`mean_head`, `loc_cell`, ...).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from rarl_tf.config import location_heads as head_names

tfd = tfp.distributions

# Frequencies (in half-turns over the [-1, 1] frame) of the position features: the coarsest
# tells the view's halves apart, the finest cells about a quarter of the view apart.
POSITION_FREQUENCIES = (1.0, 2.0, 4.0)
POSITION_WIDTH = 4 * len(POSITION_FREQUENCIES)
HEAD_CLASSES: dict[str, type] = {}


def register_head(name: str, settings: type = head_names.CellHeadSettings):
    """Class decorator: the `LocationHead` subclass becomes `--loc_head=name`, with `settings`
    (a frozen dataclass of its constructor's own arguments) as its config section, and is
    registered with Keras for model archives."""

    def register(cls):
        head_names.register(name, cls.kind, settings)
        HEAD_CLASSES[name] = cls
        cls.head_name = name
        return keras.saving.register_keras_serializable(package="rarl_tf")(cls)

    return register


def make_head(settings: dict, grid: int, cell_width: int) -> "LocationHead":
    """The head `settings["type"]` names, with its other settings; `grid` (G) and `cell_width`
    (the agent's embedding width, a cells head's default width) are the policy's."""
    settings = dict(settings)
    kind = settings.pop("type")
    if kind not in HEAD_CLASSES:
        raise ValueError(f"loc_head={kind!r}; expected one of {tuple(HEAD_CLASSES)}")
    return HEAD_CLASSES[kind](grid=grid, cell_width=cell_width, name="location_head", **settings)


def position_features(points: tf.Tensor) -> tf.Tensor:
    """Fourier features of positions [..., 2] (view frame): [..., POSITION_WIDTH]."""
    angles = tf.concat([points * (3.141592653589793 * f) for f in POSITION_FREQUENCIES], -1)
    return tf.concat([tf.sin(angles), tf.cos(angles)], -1)


def cell_positions(grid: int, dtype=tf.float32) -> tf.Tensor:
    """[G * G, 2]: cell g = i * G + j samples the view at (-1 + 2i/(G-1), -1 + 2j/(G-1))."""
    side = tf.linspace(-1.0, 1.0, grid)
    ys, xs = tf.meshgrid(side, side, indexing="ij")
    return tf.cast(tf.stack([tf.reshape(ys, [-1]), tf.reshape(xs, [-1])], -1), dtype)


def first_arg_max(logits: tf.Tensor) -> tf.Tensor:
    """[E, G] -> the one-hot [E, G] of the FIRST largest entry of each row, as
    tf.one_hot(tf.argmax(.)), in TFLite GPU-delegate ops (the classic delegate lacks ARG_MAX,
    and ONE_HOT on int64).

    The comparison with REDUCE_MAX marks every tied maximum; one product with the constant
    identity - strictly upper triangular [G, G] gives, per cell, its mark minus the count of
    marks before it (one consumer of the CAST, as the delegate requires; no SUB of two halves
    of a SPLIT, which ML Drift can compute wrongly), and relu keeps the first mark only.
    Integer sums: exact in float16 up to 2048 cells. (An all-black image ties every cell.)
    """
    grid = logits.shape[-1]
    top = tf.reduce_max(logits, axis=-1, keepdims=True)
    marked = tf.cast(logits >= top, logits.dtype)
    table = np.eye(grid, dtype=np.float32) - np.triu(np.ones((grid, grid), np.float32), k=1)
    return tf.nn.relu(tf.matmul(marked, tf.constant(table, logits.dtype)))


def with_episode_rows(op, rows: tf.Tensor, per_episode: tf.Tensor) -> tf.Tensor:
    """op(rows [E, n, A], per_episode [E, A] repeated over the n rows) -> [E, n, A].

    With one episode (the exported graph) computed as [n, A] with [1, A], a broadcast the GPU
    delegate takes; in the general form the converter folds the reshape before it into
    [n, A] with [1, 1, A], which the delegate refuses. The same values either way."""
    if rows.shape[0] == 1:
        n, width = rows.shape[1], rows.shape[2]
        return tf.reshape(op(tf.reshape(rows, [n, width]), per_episode), [1, n, width])
    return op(rows, per_episode[:, None])


class LocationHead(keras.layers.Layer):
    """The interface of a location head (subclass `NormalHead` or `CellHead`).

    Args:
      grid: G, the side of the view's grid of cells (the policy's `loc_grid`).
      cell_width: the agent's region-embedding width, a cells head's default width.
    """

    kind = "normal"  # or "cells": which family of `rarl_tf.config.location_heads.KINDS`
    head_name = None  # set by `register_head`

    def __init__(self, grid: int = 7, cell_width: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.grid = int(grid)
        self.cell_width = int(cell_width)

    @property
    def reads_cells(self) -> bool:
        return self.kind == "cells"

    def build(self, state_shape, channels=None):
        """state_shape: [E, S] of the state the head reads; channels: F of the feature map."""
        raise NotImplementedError

    def outputs(self, state, cells=None):
        """The head's parameters of the policy: a Normal mean [E, 2] or cell logits [E, G*G]."""
        raise NotImplementedError

    def distribution(self, outputs, loc_std: float):
        """pi(l) from `outputs` (with the policy's additions, e.g. the inhibition)."""
        raise NotImplementedError

    def mode(self, outputs):
        """The deterministic placement [E, 2] (evaluation)."""
        raise NotImplementedError

    def sample(self, outputs, loc_std: float, seed):
        """A draw [E, 2] from pi (training); `seed`: an int32 [2] stateless seed."""
        return self.distribution(outputs, loc_std).sample(seed=seed)

    def export_mode(self, outputs):
        """The mode as the exported graph computes it: TFLite GPU-delegate builtin ops only."""
        return self.mode(outputs)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid, "cell_width": self.cell_width}


class NormalHead(LocationHead):
    """A head whose policy is Normal(mean(state), sigma) per coordinate; override `mean`."""

    kind = "normal"

    def mean(self, state):
        """[E, 2] in the view frame [-1, 1]."""
        raise NotImplementedError

    def outputs(self, state, cells=None):
        return self.mean(state)

    def distribution(self, outputs, loc_std: float):
        return tfd.Independent(tfd.Normal(loc=outputs, scale=loc_std), 1)

    def mode(self, outputs):
        return outputs


class CellHead(LocationHead):
    """A head that scores the view's G x G cells; override `cell_terms` and `cell_logits`.

    Args:
      width: A, the width of its cell terms (0: `cell_width`).
    """

    kind = "cells"

    def __init__(self, width: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.units = self.width or self.cell_width

    def cell_terms(self, grid):
        """What each cell contributes whatever the state: [P, G * G, A] from the view's
        grid [P, G, G, F] (computed once per view, shared by its steps and trajectories)."""
        raise NotImplementedError

    def cell_logits(self, state, cells):
        """The cells' log-weights [E, G * G] from the state [E, S] and `cell_terms` [E, G*G, A]."""
        raise NotImplementedError

    def positions(self, dtype=tf.float32):
        return cell_positions(self.grid, dtype)

    def outputs(self, state, cells=None):
        return self.cell_logits(state, cells)

    def distribution(self, outputs, loc_std: float):
        positions = self.positions(outputs.dtype)
        components = tfd.Independent(
            tfd.Normal(loc=positions[None] + tf.zeros_like(outputs)[..., None], scale=loc_std), 1
        )
        return tfd.MixtureSameFamily(tfd.Categorical(logits=outputs), components)

    def mode(self, outputs):
        """The position [E, 2] of the most likely cell, the first of tied ones (tf.argmax's
        rule), as a one-hot product: no ARG_MAX, ONE_HOT or GATHER in the exported graph."""
        return tf.matmul(first_arg_max(outputs), self.positions(outputs.dtype))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


@register_head("dense", head_names.DenseHeadSettings)
class DenseHead(NormalHead):
    """The paper's f_loc: mean = tanh(W h_t) (tanh keeps it inside the view frame).

    Args:
      hidden: units of a hidden ReLU layer before it (0: none, the paper).
    """

    def __init__(self, hidden: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.hidden = int(hidden)
        self.mean_head = keras.layers.Dense(2, activation="tanh", name="loc_head")
        self.loc_hidden_layer = (
            keras.layers.Dense(self.hidden, activation="relu", name="loc_hidden")
            if self.hidden
            else None
        )

    def build(self, state_shape, channels=None):
        if self.loc_hidden_layer is not None:
            self.loc_hidden_layer.build((None, state_shape[-1]))
        self.mean_head.build((None, self.hidden or state_shape[-1]))
        self.built = True

    def mean(self, state):
        if self.loc_hidden_layer is not None:
            state = self.loc_hidden_layer(state)
        return self.mean_head(state)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


@register_head("spatial")
class SpatialHead(CellHead):
    """u_g = v . relu(W_f F_g + W_h s_t): each cell weighs itself from its features and the
    state (one term of the state shared by every cell)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loc_cell = keras.layers.Dense(self.units, name="loc_cell")
        self.loc_state = keras.layers.Dense(self.units, use_bias=False, name="loc_state")
        self.loc_score = keras.layers.Dense(1, name="loc_score")

    def build(self, state_shape, channels=None):
        self.loc_cell.build((None, channels))
        self.loc_state.build((None, state_shape[-1]))
        self.loc_score.build((None, self.units))
        self.built = True

    def cell_terms(self, grid):
        return self.loc_cell(tf.reshape(grid, [-1, self.grid**2, grid.shape[-1]]))

    def cell_logits(self, state, cells):
        summed = with_episode_rows(tf.add, cells, self.loc_state(state))
        return tf.squeeze(self.loc_score(tf.nn.relu(summed)), -1)


@register_head("query")
class QueryHead(CellHead):
    """u_g = q(s_t) . relu(W_f F_g + W_p pos(p_g)): the state is a query against cell keys that
    carry their position (Fourier features); the query's bias is a saliency shared by every
    step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loc_cell = keras.layers.Dense(self.units, name="loc_cell")
        self.loc_position = keras.layers.Dense(self.units, use_bias=False, name="loc_position")
        self.loc_query = keras.layers.Dense(self.units, name="loc_query")

    def build(self, state_shape, channels=None):
        # Built in this order (cell, position, query) as before the heads were classes: the
        # initial weights of a seed, hence the pinned training steps, depend on it.
        self.loc_cell.build((None, channels))
        self.loc_position.build((None, POSITION_WIDTH))
        self.loc_query.build((None, state_shape[-1]))
        self.built = True

    def cell_terms(self, grid):
        cells = self.grid**2
        terms = self.loc_cell(tf.reshape(grid, [-1, cells, grid.shape[-1]]))
        position = self.loc_position(position_features(self.positions(terms.dtype)))
        # Added as [P, G*G*A] + [1, G*G*A]: LiteRT's GPU accelerator computed the add of a
        # [G*G, A] constant (first dimension > 1) wrongly in the exported graph.
        flat = tf.reshape(terms, [-1, cells * self.units]) + tf.reshape(position, [1, -1])
        return tf.reshape(flat, [-1, cells, self.units])

    def cell_logits(self, state, cells):
        query = self.loc_query(state)  # [E, A]
        return tf.reduce_sum(with_episode_rows(tf.multiply, tf.nn.relu(cells), query), -1)
