"""The location policy pi(l_{t+1} | h_t) of the paper ("Action"), and the REINFORCE baseline.

Given the episode state h_t [E, H], the policy places the next location l_{t+1} [E, 2] in the
view frame [-1, 1] (y, x):

* `loc_head="dense"` (the paper): l ~ Normal(f_loc(h_t), sigma) per coordinate, f_loc a dense
  layer with tanh (with `loc_hidden` > 0, a hidden ReLU layer first);
* `loc_head="spatial"`: a mixture over the cells of a G x G grid cropped from the view: cell g,
  at position p_g, weighs itself from its features F_g and the state,
  u_g = v . relu(W_f F_g + W_h h_t), and l ~ sum_g softmax(u)_g Normal(p_g, sigma), so where
  the policy looks follows what the map shows there, and several objects are several modes
  rather than one mean between them. `inhibition_radius` rho > 0 multiplies a cell's weight by
  prod_s (1 - exp(-|p_g - l_s|^2 / (2 rho^2))) over the locations l_s already used, so the agent
  does not look again where it has looked;
* `locations="random"` (the paper's Table 3): l uniform in the view, nothing to learn.

Sampling (training) draws from the policy; otherwise the policy's mode is used (the mean of the
Normal, the most likely cell's position for the mixture). The baseline b_t(h_t) of Mnih et al.
(2014) predicts the return, for variance reduction only.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from rarl_tf.config import LOC_HEADS, LOCATIONS, ModelConfig

tfd = tfp.distributions
# Argument defaults are the config's (the paper's), kept in one place: config.py.
_M = ModelConfig()


def _int32_seed(seed: tf.Tensor) -> tf.Tensor:
    """A SeedGenerator's int64 [2] seed as the int32 the stateless ops take (as Keras casts it:
    XLA needs int32)."""
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


@keras.saving.register_keras_serializable(package="rarl_tf")
class LocationPolicy(keras.layers.Layer):
    """Where the agent looks next, and the REINFORCE baseline.

    Args:
      loc_std: sigma of every Normal, in the [-1, 1] view frame (paper: 0.11).
      locations: "policy" (learned) or "random" (uniform centres; no REINFORCE term).
      loc_head: "dense" (the paper's f_loc(h_t)) or "spatial" (a mixture over grid cells).
      loc_hidden: units of the dense head's hidden ReLU layer (0: none, the paper), and the
        width A of the spatial head's cell terms when > 0.
      loc_grid: G, the side of the spatial head's grid.
      inhibition_radius: rho of the spatial head's inhibition of return (0: none).
      cell_width: A when `loc_hidden` is 0.
      train_state: let REINFORCE's gradient into the state h_t (only where the state serves the
        policy alone: the paper's "localisation only" ablation).
    """

    def __init__(self, loc_std: float = _M.loc_std, locations: str = _M.locations,
                 loc_head: str = _M.loc_head, loc_hidden: int = _M.loc_hidden,
                 loc_grid: int = _M.loc_grid, inhibition_radius: float = _M.inhibition_radius,
                 cell_width: int = _M.embed_dim, train_state: bool = False, **kwargs):
        super().__init__(**kwargs)
        if locations not in LOCATIONS:
            raise ValueError(f"locations={locations!r}; expected one of {LOCATIONS}")
        if loc_head not in LOC_HEADS:
            raise ValueError(f"loc_head={loc_head!r}; expected one of {LOC_HEADS}")
        self.loc_std = float(loc_std)
        self.locations = locations
        self.loc_head_kind = loc_head
        self.loc_hidden = int(loc_hidden)
        self.loc_grid = int(loc_grid)
        self.inhibition_radius = float(inhibition_radius)
        self.cell_width = int(cell_width)
        self.train_state = bool(train_state)
        dense = locations == "policy" and loc_head == "dense"
        spatial = locations == "policy" and loc_head == "spatial"
        # tanh keeps the Normal's mean inside the view frame [-1, 1].
        self.loc_head = (keras.layers.Dense(2, activation="tanh", name="loc_head")
                         if dense else None)
        self.loc_hidden_layer = (keras.layers.Dense(self.loc_hidden, activation="relu",
                                                    name="loc_hidden")
                                 if dense and self.loc_hidden else None)
        width = self.loc_hidden or self.cell_width
        self.loc_cell = keras.layers.Dense(width, name="loc_cell") if spatial else None
        self.loc_state = (keras.layers.Dense(width, use_bias=False, name="loc_state")
                          if spatial else None)
        self.loc_score = keras.layers.Dense(1, name="loc_score") if spatial else None
        self.baseline_head = keras.layers.Dense(1, name="baseline_head")

    @property
    def uniform(self) -> bool:
        """Whether locations are drawn uniformly: `locations="random"`, or a model built with
        random centres (no head) switched to "policy" (`policy_report.with_locations`)."""
        return self.locations == "random" or (self.loc_head is None and self.loc_cell is None)

    @property
    def spatial(self) -> bool:
        """Whether the policy reads the spatial head's cell terms (`cell_terms`)."""
        return self.loc_cell is not None

    def build(self, state_shape, channels: int | None = None):
        """state_shape: [E, H]; channels: F, the feature map's depth (spatial head)."""
        state = state_shape[-1]
        self.baseline_head.build((None, state))
        if self.loc_hidden_layer is not None:
            self.loc_hidden_layer.build((None, state))
        if self.loc_head is not None:
            self.loc_head.build((None, self.loc_hidden or state))
        if self.loc_cell is not None:
            self.loc_cell.build((None, channels))
            self.loc_state.build((None, state))
            self.loc_score.build((None, self.loc_cell.units))
        self.built = True

    def cell_terms(self, grid: tf.Tensor) -> tf.Tensor:
        """The spatial head's W_f F_g: [P, G * G, A] from the view's grid [P, G, G, F]."""
        return self.loc_cell(tf.reshape(grid, [-1, self.loc_grid ** 2, grid.shape[-1]]))

    def cell_positions(self, dtype=tf.float32) -> tf.Tensor:
        """[G * G, 2]: cell g = i * G + j samples the view at (-1 + 2i/(G-1), -1 + 2j/(G-1))."""
        side = tf.linspace(-1.0, 1.0, self.loc_grid)
        ys, xs = tf.meshgrid(side, side, indexing="ij")
        return tf.cast(tf.stack([tf.reshape(ys, [-1]), tf.reshape(xs, [-1])], -1), dtype)

    def cell_logits(self, state, cells, visited=()):
        """The spatial head's log-weights of the G x G cells, v . relu(cells + W_h h), with the
        inhibition of the `visited` locations ([E, 2] each): [E, G * G]."""
        logits = tf.squeeze(self.loc_score(tf.nn.relu(cells + self.loc_state(state)[:, None])),
                            -1)
        if self.inhibition_radius > 0:
            positions = self.cell_positions(logits.dtype)
            for location in visited:
                distance2 = tf.reduce_sum(tf.square(positions[None] - location[:, None]), -1)
                near = tf.exp(-distance2 / (2.0 * self.inhibition_radius ** 2))
                # log(1 - near): the weight is multiplied by (1 - near), exactly 0 at l_s.
                logits += tf.math.log(1.0 - near + 1e-20)
        return logits

    def distribution(self, state, cells=None, visited=()):
        """pi(l | state) and its mode [E, 2]: a Normal(f_loc(h), sigma) per coordinate (the
        paper), or for the spatial head a mixture over the cells of Normals(p_g, sigma)."""
        if cells is None:
            if self.loc_hidden_layer is not None:
                state = self.loc_hidden_layer(state)
            mean = self.loc_head(state)
            return tfd.Independent(tfd.Normal(loc=mean, scale=self.loc_std), 1), mean
        logits = self.cell_logits(state, cells, visited)
        positions = self.cell_positions(logits.dtype)
        components = tfd.Independent(tfd.Normal(
            loc=positions[None] + tf.zeros_like(logits)[..., None], scale=self.loc_std), 1)
        policy = tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components)
        # The most likely cell, as a one-hot product (no gather, for the TFLite GPU delegate).
        best = tf.one_hot(tf.argmax(logits, axis=-1), self.loc_grid ** 2, dtype=logits.dtype)
        return policy, tf.matmul(best, positions)

    def call(self, h, cells=None, visited=(), sample=False, seed=None):
        """The next location from state h [E, H].

        Args:
          h: [E, H] the episode state h_t.
          cells: the spatial head's `cell_terms` [E, G * G, A] of each episode's view.
          visited: the locations used so far, [E, 2] each (inhibition of return).
          sample: draw from the policy (training) instead of taking its mode.
          seed: [2] int stateless seed of the draw (the agent's seed generator).

        Returns:
          (used [E, 2] clipped to the view, mode of the policy [E, 2], log pi(used) [E],
          baseline b_t [E]).
        """
        # The policy reads a stop-gradient copy of the state: REINFORCE trains the location
        # head only. Its gradient, (l - mu) / sigma^2 ~ 9 per unit of advantage, dwarfs that
        # of the softmax-MSE loss and drowned the classifier when let into the LSTM and
        # backbone (measured on cluttered_digits; see README "Design choices").
        policy_input = h if self.train_state else tf.stop_gradient(h)
        baseline = tf.squeeze(self.baseline_head(tf.stop_gradient(h)), -1)
        if self.uniform:
            # Table 3's baseline: centres uniform in the view, in training and inference;
            # nothing to learn, so no REINFORCE term.
            loc = tf.random.stateless_uniform([tf.shape(h)[0], 2], _int32_seed(seed), -1.0, 1.0)
            zeros = tf.zeros([tf.shape(h)[0]], h.dtype)
            return loc, tf.zeros_like(loc), zeros, baseline
        policy, mode = self.distribution(policy_input, cells, visited)
        # No gradient through the sample: REINFORCE reaches the policy through log_prob only,
        # never through the sampled location or the crop it feeds.
        loc = tf.stop_gradient(policy.sample(seed=_int32_seed(seed)) if sample else mode)
        log_prob = policy.log_prob(loc)
        return tf.clip_by_value(loc, -1.0, 1.0), mode, log_prob, baseline

    def get_config(self):
        config = super().get_config()
        config.update(loc_std=self.loc_std, locations=self.locations,
                      loc_head=self.loc_head_kind, loc_hidden=self.loc_hidden,
                      loc_grid=self.loc_grid, inhibition_radius=self.inhibition_radius,
                      cell_width=self.cell_width, train_state=self.train_state)
        return config
