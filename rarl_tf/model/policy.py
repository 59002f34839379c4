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
* `loc_head="query"`: the same mixture, with u_g = q(s_t) . k_g: the state is a query
  against cell keys k_g = relu(W_f F_g + W_p pos(p_g)) that carry their position (Fourier
  features), so the state can say "there, not near where I looked" rather than add one term
  shared by every cell;
* `locations="random"` (the paper's Table 3): l uniform in the view, nothing to learn;
  `locations="random_inhibited"`: random centres with the same inhibition of return (uniform
  over the cells weighted by the inhibition, jittered within a cell), nothing to learn.

What the head reads as its state s_t (`policy_state`): the trunk LSTM's h_t ("lstm", the
paper), a GRU state of the policy's own, s_t = GRU([pos(l_t), h_t], s_(t-1)), that REINFORCE
trains ("own": where the agent has looked is its memory, not a rule's), or nothing ("none": a
saliency map, for the ablation).

Sampling (training) draws from the policy; otherwise the policy's mode is used (the mean of the
Normal, the most likely cell's position for the mixture). The baseline b_t(h_t) of Mnih et al.
(2014) predicts the return, for variance reduction only.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from rarl_tf.config.experiment import (
    LOC_HEADS,
    LOCATIONS,
    POLICY_STATES,
    ModelConfig,
    check_choices,
)

tfd = tfp.distributions
# Argument defaults are the config's (the paper's), kept in one place: config/experiment.py.
_M = ModelConfig()


def _int32_seed(seed: tf.Tensor) -> tf.Tensor:
    """A SeedGenerator's int64 [2] seed as the int32 the stateless ops take (as Keras casts it:
    XLA needs int32)."""
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


INTERVENTIONS = ("zero", "other_image", "batch_mean", "first")
# Frequencies (in half-turns over the [-1, 1] frame) of the position features: the coarsest
# tells the view's halves apart, the finest cells about a quarter of the view apart.
POSITION_FREQUENCIES = (1.0, 2.0, 4.0)


def position_features(points: tf.Tensor) -> tf.Tensor:
    """Fourier features of positions [..., 2] (view frame): [..., 4 * len(frequencies)]."""
    angles = tf.concat([points * (3.141592653589793 * f) for f in POSITION_FREQUENCIES], -1)
    return tf.concat([tf.sin(angles), tf.cos(angles)], -1)


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


@keras.saving.register_keras_serializable(package="rarl_tf")
class LocationPolicy(keras.layers.Layer):
    """Where the agent looks next, and the REINFORCE baseline.

    Args:
      loc_std: sigma of every Normal, in the [-1, 1] view frame (paper: 0.11).
      locations: "policy" (learned) or "random" (uniform centres; no REINFORCE term).
      loc_head: "dense" (the paper's f_loc(h_t)), "spatial" (a mixture over grid cells) or
        "query" (the same mixture, the state a query against cell keys that carry position).
      loc_hidden: units of the dense head's hidden ReLU layer (0: none, the paper), and the
        width A of the spatial head's cell terms when > 0.
      loc_grid: G, the side of the spatial head's grid.
      inhibition_radius: rho of the spatial head's inhibition of return (0: none).
      cell_width: A when `loc_hidden` is 0.
      train_state: let REINFORCE's gradient into the state h_t (only where the state serves the
        policy alone: the paper's "localisation only" ablation).
      policy_state: "lstm" (read h_t), "own" (a GRU state of the policy's, `remember`) or
        "none" (no state).
      policy_units: width of the "own" state.
      inhibition_anneal_epochs: > 0 gives the inhibition a strength (a non-trainable weight,
        1 at first) that training anneals to 0 (`training.callbacks.InhibitionAnneal`); the trained
        model's weights keep the strength it reached.
    """

    def __init__(
        self,
        loc_std: float = _M.loc_std,
        locations: str = _M.locations,
        loc_head: str = _M.loc_head,
        loc_hidden: int = _M.loc_hidden,
        loc_grid: int = _M.loc_grid,
        inhibition_radius: float = _M.inhibition_radius,
        cell_width: int = _M.embed_dim,
        train_state: bool = False,
        policy_state: str = _M.policy_state,
        policy_units: int = _M.policy_units,
        inhibition_anneal_epochs: float = _M.inhibition_anneal_epochs,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choices(
            locations=(locations, LOCATIONS),
            loc_head=(loc_head, LOC_HEADS),
            policy_state=(policy_state, POLICY_STATES),
        )
        self.loc_std = float(loc_std)
        self.locations = locations
        self.loc_head = loc_head
        self.loc_hidden = int(loc_hidden)
        self.loc_grid = int(loc_grid)
        self.inhibition_radius = float(inhibition_radius)
        self.cell_width = int(cell_width)
        self.train_state = bool(train_state)
        self.policy_state = policy_state
        self.policy_units = int(policy_units)
        self.inhibition_anneal_epochs = float(inhibition_anneal_epochs)
        self.inhibition_strength = None  # the annealed strength's weight (`build`)
        # A test-time strength that replaces the weight's (tools.policy_report); never saved.
        self.strength_override = None
        learned = locations == "policy"
        self._make_head_layers(loc_head if learned else None)
        self.loc_memory = (
            keras.layers.GRUCell(self.policy_units, name="loc_memory")
            if learned and policy_state == "own"
            else None
        )
        self.baseline_head = keras.layers.Dense(1, name="baseline_head")
        # Test-time interventions on the state the head reads (tools.policy_report), never
        # saved: None, "zero", "other_image", "batch_mean" or "first".
        self.intervention = None
        # Test-time placements [E, T, 2] that replace the policy's (the report's oracle row).
        self.forced = None

    def _make_head_layers(self, head: str | None) -> None:
        """The layers of the learned head `head` ("dense", "spatial" or "query"; None: random
        centres, no head); those of the other heads stay None."""
        dense, query = head == "dense", head == "query"
        spatial = head in ("spatial", "query")
        # f_loc of the dense head, the Normal's mean; tanh keeps it inside the view frame [-1, 1].
        self.mean_head = (
            keras.layers.Dense(2, activation="tanh", name="loc_head") if dense else None
        )
        self.loc_hidden_layer = (
            keras.layers.Dense(self.loc_hidden, activation="relu", name="loc_hidden")
            if dense and self.loc_hidden
            else None
        )
        width = self.loc_hidden or self.cell_width
        self.loc_cell = keras.layers.Dense(width, name="loc_cell") if spatial else None
        self.loc_state = (
            keras.layers.Dense(width, use_bias=False, name="loc_state")
            if spatial and not query
            else None
        )
        self.loc_score = keras.layers.Dense(1, name="loc_score") if spatial and not query else None
        # The query head: cell keys carry their position; the state (its bias: a saliency
        # shared by every step) is the query.
        self.loc_position = (
            keras.layers.Dense(width, use_bias=False, name="loc_position") if query else None
        )
        self.loc_query = keras.layers.Dense(width, name="loc_query") if query else None

    @property
    def uniform(self) -> bool:
        """Whether locations are drawn at random: `locations="random"` or "random_inhibited",
        or a model built with random centres (no head) switched to "policy"
        (`policy_report.altered_policy`)."""
        return self.locations != "policy" or (self.mean_head is None and self.loc_cell is None)

    @property
    def query(self) -> bool:
        return self.loc_query is not None

    @property
    def spatial(self) -> bool:
        """Whether the policy reads the spatial head's cell terms (`cell_terms`)."""
        return self.loc_cell is not None

    def build(self, state_shape, channels: int | None = None):
        """state_shape: [E, H] of h_t; channels: F, the feature map's depth (spatial head)."""
        state = state_shape[-1]
        self.baseline_head.build((None, state))
        if self.loc_memory is not None:
            self.loc_memory.build((None, 4 * len(POSITION_FREQUENCIES) + state))
            state = self.policy_units
        if self.loc_hidden_layer is not None:
            self.loc_hidden_layer.build((None, state))
        if self.mean_head is not None:
            self.mean_head.build((None, self.loc_hidden or state))
        if self.loc_cell is not None:
            self.loc_cell.build((None, channels))
        if self.loc_state is not None:
            self.loc_state.build((None, state))
            self.loc_score.build((None, self.loc_cell.units))
        if self.loc_query is not None:
            self.loc_position.build((None, 4 * len(POSITION_FREQUENCIES)))
            self.loc_query.build((None, state))
        if self.inhibition_anneal_epochs > 0:
            self.inhibition_strength = self.add_weight(
                shape=(), initializer="ones", trainable=False, name="inhibition_strength"
            )
        self.built = True

    def strength(self):
        """The inhibition's strength now: the test-time override, the annealed weight, or 1."""
        if self.strength_override is not None:
            return self.strength_override
        return 1.0 if self.inhibition_strength is None else self.inhibition_strength

    def inhibits(self) -> bool:
        """Whether the inhibition of return acts now (eagerly: radius and strength > 0)."""
        return self.inhibition_radius > 0 and float(keras.ops.convert_to_numpy(self.strength())) > 0

    def cell_terms(self, grid: tf.Tensor) -> tf.Tensor:
        """The spatial head's W_f F_g (query head: plus W_p pos(p_g)): [P, G * G, A] from the
        view's grid [P, G, G, F]."""
        cells = self.loc_grid**2
        terms = self.loc_cell(tf.reshape(grid, [-1, cells, grid.shape[-1]]))
        if self.loc_position is not None:
            position = self.loc_position(position_features(self.cell_positions(terms.dtype)))
            # Added as [P, G*G*A] + [1, G*G*A]: LiteRT's GPU accelerator computed the add of a
            # [G*G, A] constant (first dimension > 1) wrongly in the exported graph.
            width = terms.shape[-1]
            flat = tf.reshape(terms, [-1, cells * width]) + tf.reshape(position, [1, -1])
            terms = tf.reshape(flat, [-1, cells, width])
        return terms

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

    def intervene(self, state, first):
        """The state the head reads, under `self.intervention` (test time only): [E, S]."""
        kind = self.intervention
        if kind is None:
            return state
        if kind == "zero":
            return tf.zeros_like(state)
        if kind == "other_image":
            return tf.roll(state, 1, axis=0)
        if kind == "batch_mean":
            return tf.zeros_like(state) + tf.reduce_mean(state, 0, keepdims=True)
        if kind == "first":
            return first
        raise ValueError(f"intervention={kind!r}; expected one of {INTERVENTIONS}")

    def cell_positions(self, dtype=tf.float32) -> tf.Tensor:
        """[G * G, 2]: cell g = i * G + j samples the view at (-1 + 2i/(G-1), -1 + 2j/(G-1))."""
        side = tf.linspace(-1.0, 1.0, self.loc_grid)
        ys, xs = tf.meshgrid(side, side, indexing="ij")
        return tf.cast(tf.stack([tf.reshape(ys, [-1]), tf.reshape(xs, [-1])], -1), dtype)

    def cell_logits(self, state, cells, visited=()):
        """The log-weights of the G x G cells, v . relu(cells + W_h h) (query head:
        q(s) . relu(cells)), with the inhibition of the `visited` locations ([E, 2] each):
        [E, G * G]."""
        if self.loc_query is not None:
            query = self.loc_query(state)  # [E, A]
            logits = tf.reduce_sum(with_episode_rows(tf.multiply, tf.nn.relu(cells), query), -1)
        elif self.loc_score is not None:
            logits = tf.squeeze(
                self.loc_score(tf.nn.relu(with_episode_rows(tf.add, cells, self.loc_state(state)))),
                -1,
            )
        else:  # random_inhibited: every cell alike but for the inhibition
            logits = tf.zeros([tf.shape(state)[0], self.loc_grid**2], state.dtype)
        return logits + self.inhibition(logits.dtype, visited)

    def inhibition(self, dtype, visited):
        """sum_s log(1 - exp(-|p_g - l_s|^2 / (2 rho^2))) over `visited` ([E, 2] each): the
        inhibition of return's term of the cells' log-weights, [E, G * G] (0 without)."""
        total = tf.zeros([1, self.loc_grid**2], dtype)
        if self.inhibition_radius > 0:
            positions = self.cell_positions(dtype)
            for location in visited:
                distance2 = tf.reduce_sum(tf.square(positions[None] - location[:, None]), -1)
                near = tf.exp(-distance2 / (2.0 * self.inhibition_radius**2))
                # log(1 - near): the weight is multiplied by (1 - near), exactly 0 at l_s
                # (at full strength; an annealed strength s multiplies it by 1 - s * near).
                total += tf.math.log(1.0 - tf.cast(self.strength(), dtype) * near + 1e-20)
        return total

    def distribution(self, state, cells=None, visited=()):
        """pi(l | state) and its mode [E, 2]: a Normal(f_loc(h), sigma) per coordinate (the
        paper), or for the spatial head a mixture over the cells of Normals(p_g, sigma)."""
        if cells is None:
            mean = self.dense_mean(state)
            return tfd.Independent(tfd.Normal(loc=mean, scale=self.loc_std), 1), mean
        logits = self.cell_logits(state, cells, visited)
        positions = self.cell_positions(logits.dtype)
        components = tfd.Independent(
            tfd.Normal(loc=positions[None] + tf.zeros_like(logits)[..., None], scale=self.loc_std),
            1,
        )
        policy = tfd.MixtureSameFamily(tfd.Categorical(logits=logits), components)
        return policy, self.cell_mode(logits)

    def dense_mean(self, state):
        """The dense head's mean f_loc(state) [E, 2] (through `loc_hidden`'s layer if any)."""
        if self.loc_hidden_layer is not None:
            state = self.loc_hidden_layer(state)
        return self.mean_head(state)

    def cell_mode(self, logits):
        """The position [E, 2] of the most likely cell, the first of tied ones (tf.argmax's
        rule), as a one-hot product: no ARG_MAX, ONE_HOT or GATHER in the exported graph."""
        return tf.matmul(first_arg_max(logits), self.cell_positions(logits.dtype))

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

    def call(self, h, cells=None, visited=(), sample=False, seed=None, memory=None, first=None):
        """The next location from state h [E, H].

        Args:
          h: [E, H] the episode state h_t.
          cells: the spatial head's `cell_terms` [E, G * G, A] of each episode's view.
          visited: the locations used so far, [E, 2] each (inhibition of return).
          sample: draw from the policy (training) instead of taking its mode.
          seed: [2] int stateless seed of the draw (the agent's seed generator).
          memory: the policy's own state s_t [E, U] (`remember`), if it has one.
          first: the head's input at the first placement (the "first" intervention).

        Returns:
          (used [E, 2] clipped to the view, mode of the policy [E, 2], log pi(used) [E],
          baseline b_t [E]).
        """
        baseline = tf.squeeze(self.baseline_head(tf.stop_gradient(h)), -1)
        if self.forced is not None:
            loc = tf.cast(self.forced[:, len(visited)], h.dtype)
            return loc, loc, tf.zeros([tf.shape(h)[0]], h.dtype), baseline
        if self.uniform:
            # Table 3's baseline (and it with inhibition of return): nothing to learn, so no
            # REINFORCE term.
            loc = self._random_centres(h, visited, seed)
            zeros = tf.zeros([tf.shape(h)[0]], h.dtype)
            return loc, tf.zeros_like(loc), zeros, baseline
        state = self.intervene(self.head_input(h, memory), first)
        policy, mode = self.distribution(state, cells, visited)
        # No gradient through the sample: REINFORCE reaches the policy through log_prob only,
        # never through the sampled location or the crop it feeds.
        loc = tf.stop_gradient(policy.sample(seed=_int32_seed(seed)) if sample else mode)
        log_prob = policy.log_prob(loc)
        return tf.clip_by_value(loc, -1.0, 1.0), mode, log_prob, baseline

    def _random_centres(self, h, visited, seed):
        """Uniform centres [E, 2] in the view; with `random_inhibited`, a cell drawn with the
        inhibition's weights, jittered uniformly within its spacing (uniform when nothing is
        inhibited)."""
        count, seed = tf.shape(h)[0], _int32_seed(seed)
        jitter = tf.random.stateless_uniform([count, 2], seed, -1.0, 1.0)
        if self.locations != "random_inhibited":
            return jitter
        logits = self.inhibition(h.dtype, visited) + tf.zeros([count, 1], h.dtype)
        cell = tf.random.stateless_categorical(logits, 1, seed + 1)[:, 0]
        half_cell = 1.0 / (self.loc_grid - 1)  # cells are 2 / (G - 1) apart
        centre = tf.gather(self.cell_positions(h.dtype), cell)
        return tf.clip_by_value(centre + half_cell * jitter, -1.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            loc_std=self.loc_std,
            locations=self.locations,
            loc_head=self.loc_head,
            loc_hidden=self.loc_hidden,
            loc_grid=self.loc_grid,
            inhibition_radius=self.inhibition_radius,
            cell_width=self.cell_width,
            train_state=self.train_state,
            policy_state=self.policy_state,
            policy_units=self.policy_units,
            inhibition_anneal_epochs=self.inhibition_anneal_epochs,
        )
        return config
