"""The location policy pi(l_{t+1} | s_t) of the paper ("Action"), and the REINFORCE baseline.

Given the episode state h_t [E, H], the policy places the next location l_{t+1} [E, 2] in the
view frame [-1, 1] (y, x). What it draws from is its location head (`loc_head`, a class of
`location_heads.py` registered by name: the paper's dense Normal, the spatial and query
mixtures over the view's cells, or one added later); the policy adds what every head shares:

* the state the head reads (`policy_state`): the trunk LSTM's h_t ("lstm", the paper), a GRU
  state of the policy's own, s_t = GRU([pos(l_t), h_t], s_(t-1)), that REINFORCE trains ("own":
  where the agent has looked is its memory, not a rule's), or nothing ("none": a saliency map,
  for the ablation);
* the inhibition of return of a cells head: `inhibition_radius` rho > 0 multiplies a cell's
  weight by prod_s (1 - exp(-|p_g - l_s|^2 / (2 rho^2))) over the locations l_s already used,
  so the agent does not look again where it has looked;
* `locations="random"` (the paper's Table 3): l uniform in the view, nothing to learn;
  `locations="random_inhibited"`: random centres with the same inhibition of return (uniform
  over the cells weighted by the inhibition, jittered within a cell), nothing to learn.

Sampling (training) draws from the head's distribution; otherwise its mode is used (the mean of
the Normal, the most likely cell's position for the mixture); the exported graph takes the
head's export form of the mode. The baseline b_t(h_t) of Mnih et al. (2014) predicts the
return, for variance reduction only. Test-time interventions (the policy report's) come from
outside, as a `PolicyOverride` passed to the call (`overrides.py`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rarl_tf.config import compat
from rarl_tf.config.experiment import LOCATIONS, POLICY_STATES, ModelConfig, check_choices
from rarl_tf.config.location_heads import settings_from_flags
from rarl_tf.model.location_heads import (
    POSITION_WIDTH,
    cell_positions,
    make_head,
    position_features,
)

# Argument defaults are the config's (the paper's), kept in one place: config/experiment.py.
_M = ModelConfig()


def _int32_seed(seed: tf.Tensor) -> tf.Tensor:
    """A SeedGenerator's int64 [2] seed as the int32 the stateless ops take (as Keras casts it:
    XLA needs int32)."""
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


def gru_step(cell: keras.layers.GRUCell, inputs: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
    """`keras.layers.GRUCell` (reset_after, sigmoid / tanh) on inputs [E, I] from state [E, U]:
    the new state [E, U]. Each gate has products of its own (weight slices, constants once
    exported), not one product split three ways: the TFLite GPU delegate refuses the strided
    slices of a [1, 3U] runtime tensor that GRUCell's call makes."""
    units = cell.units
    bias = cell.bias if cell.use_bias else tf.zeros([2, 3 * units], inputs.dtype)

    def gate(i):
        part = slice(i * units, (i + 1) * units)
        return (
            tf.matmul(inputs, cell.kernel[:, part]) + bias[0, part],
            tf.matmul(state, cell.recurrent_kernel[:, part]) + bias[1, part],
        )

    (x_z, h_z), (x_r, h_r), (x_h, h_h) = gate(0), gate(1), gate(2)
    z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
    return z * state + (1.0 - z) * tf.tanh(x_h + r * h_h)


DEFAULT_HEAD = {"type": _M.loc_head, **settings_from_flags(_M.loc_head, _M.loc_hidden)}


@keras.saving.register_keras_serializable(package="rarl_tf")
class LocationPolicy(keras.layers.Layer):
    """Where the agent looks next, and the REINFORCE baseline.

    Args:
      loc_std: sigma of every Normal, in the [-1, 1] view frame (paper: 0.11).
      locations: "policy" (learned), "random" (uniform centres; no REINFORCE term) or
        "random_inhibited" (random centres with the inhibition of return).
      head: the location head, {"type": a registered name ("dense", "spatial", "query", ...),
        its settings ...} (`rarl_tf.config.location_heads`); default the paper's dense head.
      loc_grid: G, the side of the view's grid of cells (cells heads, inhibition of return).
      inhibition_radius: rho of the inhibition of return (0: none).
      cell_width: the agent's region-embedding width, a cells head's default width.
      train_state: let REINFORCE's gradient into the state h_t (only where the state serves the
        policy alone: the paper's "localisation only" ablation).
      policy_state: "lstm" (read h_t), "own" (a GRU state of the policy's, `remember`) or
        "none" (no state).
      policy_units: width of the "own" state.
      inhibition_anneal_epochs: > 0 gives the inhibition a strength (a non-trainable weight,
        1 at first) that training anneals to 0 (`training.callbacks.InhibitionAnneal`); the trained
        model's weights keep the strength it reached.
      **kwargs: Keras's; `loc_head` and `loc_hidden` of configurations written before the heads
        were classes (`compat.head_arguments`).
    """

    def __init__(
        self,
        loc_std: float = _M.loc_std,
        locations: str = _M.locations,
        head: dict | None = None,
        loc_grid: int = _M.loc_grid,
        inhibition_radius: float = _M.inhibition_radius,
        cell_width: int = _M.embed_dim,
        train_state: bool = False,
        policy_state: str = _M.policy_state,
        policy_units: int = _M.policy_units,
        inhibition_anneal_epochs: float = _M.inhibition_anneal_epochs,
        **kwargs,
    ):
        head = compat.head_arguments(head, kwargs) or dict(DEFAULT_HEAD)
        super().__init__(**kwargs)
        check_choices(locations=(locations, LOCATIONS), policy_state=(policy_state, POLICY_STATES))
        self.loc_std = float(loc_std)
        self.locations = locations
        self.head_settings = dict(head)
        self.loc_grid = int(loc_grid)
        self.inhibition_radius = float(inhibition_radius)
        self.cell_width = int(cell_width)
        self.train_state = bool(train_state)
        self.policy_state = policy_state
        self.policy_units = int(policy_units)
        self.inhibition_anneal_epochs = float(inhibition_anneal_epochs)
        self.inhibition_strength = None  # the annealed strength's weight (`build`)
        learned = locations == "policy"
        # Made before the GRU and the baseline: a layer's initial weights are drawn from the
        # seed's sequence in the order layers are made (the pinned training steps).
        self.location_head = make_head(head, self.loc_grid, self.cell_width) if learned else None
        self.loc_memory = (
            keras.layers.GRUCell(self.policy_units, name="loc_memory")
            if learned and policy_state == "own"
            else None
        )
        self.baseline_head = keras.layers.Dense(1, name="baseline_head")
        compat.keep_head_paths(self, self.location_head)

    @property
    def loc_head(self) -> str:
        """The head's registered name (the config's `loc_head`)."""
        return self.head_settings["type"]

    @property
    def uniform(self) -> bool:
        """Whether locations are drawn at random: `locations="random"` or "random_inhibited",
        or a model built with random centres (no head) switched to "policy"
        (`policy_report.altered_policy`)."""
        return self.locations != "policy" or self.location_head is None

    @property
    def reads_cells(self) -> bool:
        """Whether the head scores the view's cells (`cell_terms`, inhibition of return)."""
        return self.location_head is not None and self.location_head.reads_cells

    def build(self, state_shape, channels: int | None = None):
        """state_shape: [E, H] of h_t; channels: F, the feature map's depth (cells heads)."""
        state = state_shape[-1]
        self.baseline_head.build((None, state))
        if self.loc_memory is not None:
            self.loc_memory.build((None, POSITION_WIDTH + state))
            state = self.policy_units
        if self.location_head is not None:
            self.location_head.build((None, state), channels)
        if self.inhibition_anneal_epochs > 0:
            self.inhibition_strength = self.add_weight(
                shape=(), initializer="ones", trainable=False, name="inhibition_strength"
            )
        self.built = True

    def strength(self, override=None):
        """The inhibition's strength now: an override's, the annealed weight, or 1."""
        own = 1.0 if self.inhibition_strength is None else self.inhibition_strength
        return own if override is None else override.inhibition_strength(own)

    def inhibits(self, override=None) -> bool:
        """Whether the inhibition of return acts now (eagerly: radius and strength > 0)."""
        strength = self.strength(override)
        return self.inhibition_radius > 0 and float(keras.ops.convert_to_numpy(strength)) > 0

    def cell_terms(self, grid: tf.Tensor) -> tf.Tensor | None:
        """The head's per-view cell terms [P, G * G, A] from the view's grid [P, G, G, F];
        None for a head that reads no cells."""
        return self.location_head.cell_terms(grid) if self.reads_cells else None

    def initial_memory(self, h: tf.Tensor):
        """The policy's own state before iteration 0 ([E, U] zeros; None without one)."""
        if self.loc_memory is None:
            return None
        return tf.zeros([tf.shape(h)[0], self.policy_units], h.dtype)

    def remember(self, memory, location, h):
        """s_t = GRU([pos(l_t), h_t], s_(t-1)) [E, U] (memory unchanged without an own state).
        The trunk's h_t enters through a stop-gradient: REINFORCE trains this state only."""
        if self.loc_memory is None:
            return memory
        inputs = tf.concat([position_features(tf.cast(location, h.dtype)), tf.stop_gradient(h)], -1)
        return gru_step(self.loc_memory, inputs, memory)

    def cell_positions(self, dtype=tf.float32) -> tf.Tensor:
        """[G * G, 2]: the positions of the view's cells (`location_heads.cell_positions`)."""
        return cell_positions(self.loc_grid, dtype)

    def cell_logits(self, state, cells, visited=(), override=None):
        """The head's log-weights of the G x G cells with the inhibition of the `visited`
        locations ([E, 2] each): [E, G * G]."""
        logits = self.location_head.cell_logits(state, cells)
        return logits + self.inhibition(logits.dtype, visited, override)

    def inhibition(self, dtype, visited, override=None):
        """sum_s log(1 - exp(-|p_g - l_s|^2 / (2 rho^2))) over `visited` ([E, 2] each): the
        inhibition of return's term of the cells' log-weights, [E, G * G] (0 without)."""
        total = tf.zeros([1, self.loc_grid**2], dtype)
        if self.inhibition_radius > 0:
            positions = self.cell_positions(dtype)
            strength = tf.cast(self.strength(override), dtype)
            for location in visited:
                distance2 = tf.reduce_sum(tf.square(positions[None] - location[:, None]), -1)
                near = tf.exp(-distance2 / (2.0 * self.inhibition_radius**2))
                # log(1 - near): the weight is multiplied by (1 - near), exactly 0 at l_s
                # (at full strength; an annealed strength s multiplies it by 1 - s * near).
                total += tf.math.log(1.0 - strength * near + 1e-20)
        return total

    def head_outputs(self, state, cells=None, visited=(), override=None):
        """The head's parameters of pi: its Normal mean [E, 2], or its cell logits [E, G * G]
        with the inhibition of return."""
        if self.reads_cells:
            return self.cell_logits(state, cells, visited, override)
        return self.location_head.outputs(state)

    def distribution(self, state, cells=None, visited=(), override=None):
        """pi(l | state) and its mode [E, 2], as the head defines them."""
        outputs = self.head_outputs(state, cells, visited, override)
        head = self.location_head
        return head.distribution(outputs, self.loc_std), head.mode(outputs)

    def head_input(self, h, memory=None):
        """The state the head reads: h_t, the policy's own s_t, or zeros (`policy_state`)."""
        if self.policy_state == "own" and memory is not None:
            return memory
        # The policy reads a stop-gradient copy of the trunk's state: REINFORCE trains the
        # location head only. Its gradient, (l - mu) / sigma^2 ~ 9 per unit of advantage,
        # dwarfs that of the softmax-MSE loss and drowned the classifier when let into the
        # LSTM and backbone (measured on cluttered_digits; see docs/design.md, "Design choices").
        state = h if self.train_state else tf.stop_gradient(h)
        return tf.zeros_like(state) if self.policy_state == "none" else state

    def call(self, h, cells=None, visited=(), sample=False, seed=None, memory=None, first=None,
             override=None, export=False):  # fmt: skip
        """The next location from state h [E, H].

        Args:
          h: [E, H] the episode state h_t.
          cells: the head's `cell_terms` [E, G * G, A] of each episode's view (cells heads).
          visited: the locations used so far, [E, 2] each (inhibition of return).
          sample: draw from the policy (training) instead of taking its mode.
          seed: [2] int stateless seed of the draw (the agent's seed generator).
          memory: the policy's own state s_t [E, U] (`remember`), if it has one.
          first: the head's input at the first placement (an override may hold it).
          override: a test-time `overrides.PolicyOverride` (or None): placements, the state the
            head reads or the inhibition's strength replaced; never saved.
          export: the exported graph's placement: the head's `export_mode`, no distribution
            (its log-probability is 0).

        Returns:
          (used [E, 2] clipped to the view, mode of the policy [E, 2], log pi(used) [E],
          baseline b_t [E]).
        """
        baseline = tf.squeeze(self.baseline_head(tf.stop_gradient(h)), -1)
        zeros = tf.zeros([tf.shape(h)[0]], h.dtype)
        forced = None if override is None else override.placement(len(visited), h.dtype)
        if forced is not None:
            return forced, forced, zeros, baseline
        if self.uniform:
            # Table 3's baseline (and it with inhibition of return): nothing to learn, so no
            # REINFORCE term.
            loc = self._random_centres(h, visited, seed, override)
            return loc, tf.zeros_like(loc), zeros, baseline
        state = self.head_input(h, memory)
        if override is not None:
            state = override.head_state(state, first)
        outputs = self.head_outputs(state, cells, visited, override)
        head = self.location_head
        if export:
            mode = head.export_mode(outputs)
            return tf.clip_by_value(mode, -1.0, 1.0), mode, zeros, baseline
        mode = head.mode(outputs)
        # No gradient through the sample: REINFORCE reaches the policy through log_prob only,
        # never through the sampled location or the crop it feeds.
        drawn = head.sample(outputs, self.loc_std, _int32_seed(seed)) if sample else mode
        loc = tf.stop_gradient(drawn)
        log_prob = head.distribution(outputs, self.loc_std).log_prob(loc)
        return tf.clip_by_value(loc, -1.0, 1.0), mode, log_prob, baseline

    def _random_centres(self, h, visited, seed, override=None):
        """Uniform centres [E, 2] in the view; with `random_inhibited`, a cell drawn with the
        inhibition's weights, jittered uniformly within its spacing (uniform when nothing is
        inhibited)."""
        count, seed = tf.shape(h)[0], _int32_seed(seed)
        jitter = tf.random.stateless_uniform([count, 2], seed, -1.0, 1.0)
        if self.locations != "random_inhibited":
            return jitter
        logits = self.inhibition(h.dtype, visited, override) + tf.zeros([count, 1], h.dtype)
        cell = tf.random.stateless_categorical(logits, 1, seed + 1)[:, 0]
        half_cell = 1.0 / (self.loc_grid - 1)  # cells are 2 / (G - 1) apart
        centre = tf.gather(self.cell_positions(h.dtype), cell)
        return tf.clip_by_value(centre + half_cell * jitter, -1.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            loc_std=self.loc_std,
            locations=self.locations,
            head=dict(self.head_settings),
            loc_grid=self.loc_grid,
            inhibition_radius=self.inhibition_radius,
            cell_width=self.cell_width,
            train_state=self.train_state,
            policy_state=self.policy_state,
            policy_units=self.policy_units,
            inhibition_anneal_epochs=self.inhibition_anneal_epochs,
        )
        return config
