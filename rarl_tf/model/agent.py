"""The recurrent attention-aware module T_pi of the paper (eq. 2, "State", "Action").

One iteration t >= 1, for each episode (an image seen through one view):

    l_t ──anchors──> k boxes ──crop──> f_tr [k, s, s, C] ──dense──> e_tr [k, D]
    (h_{t-1}, c_{t-1}) ──LSTM cell, once per region──> h_tr, c_tr   [k, H]
    a_tr = f_cls(h_tr)                                               [k, num_classes]
    h_t = mean_r h_tr, c_t = mean_r c_tr
    l_{t+1} ~ Normal(f_loc(h_t), sigma)          (the mean when not sampling)

Iteration 0 sees the whole view as its one region and only places l_1.

Levers against a policy that does not learn where to look (docs/location_policy.md), each
off by default (the paper): `location_input` appends l_t to every region's LSTM input, as the
glimpse network of Mnih et al. (2014) does, so the agent knows where it has looked;
`context_grid` embeds iteration 0's whole view from its flattened s x s grid by a dense layer
of its own, so the state that places l_1.. keeps where things are in the view even when regions
are max-pooled (`region_pool="max"`); the location policy's own (its head, `loc_grid`,
`inhibition_radius`) are described in `policy.py` and `location_heads.py`.

Ablations (the paper's Tables 3 and 4): `locations="random"` draws l_t uniformly in the view
instead (`policy.py`); `recurrence="localisation_only"` scores regions with an independent
classifier on e_tr (the LSTM only places them, trained by REINFORCE); `recurrence="none"` drops
the LSTM: h_t = mean_r e_tr.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from rarl_tf.config import compat
from rarl_tf.config.experiment import RECURRENCES, REGION_POOLS, ModelConfig, check_choices
from rarl_tf.model import anchors as anchors_lib
from rarl_tf.model import crop as crop_lib
from rarl_tf.model.location_heads import with_episode_rows
from rarl_tf.model.policy import LocationPolicy

CROP_MODES = ("crop_and_resize", "matmul")
# The per-step outputs of `RecurrentAttention.call`, in the order each step yields them.
OUTPUTS = ("region_logits", "boxes", "locations", "means", "log_probs", "baselines")
# The constructor arguments `get_config` returns as the attributes hold them.
_CONFIG_ATTRIBUTES = (
    "num_classes num_steps crop_size embed_dim lstm_units crop_mode region_pool recurrence "
    "location_input context_grid seed"
).split()
# Argument defaults are the config's (the paper's), kept in one place: config/experiment.py.
_M = ModelConfig()


def repeat_rows(x: tf.Tensor, k: int) -> tf.Tensor:
    """[E, ...] -> [E * k, ...], each row k times in a row (a broadcast add, not a gather).
    The trailing dimensions must be static."""
    if k == 1:
        return x
    ones = [1] * (x.shape.rank - 1)
    return tf.reshape(x[:, None] + tf.zeros([1, k, *ones], x.dtype), [-1, *x.shape[1:]])


def _pair_views(views: tf.Tensor, static_batch: int | None, batch) -> tf.Tensor:
    """Every image's views, [B * V, 4]: a constant when views and batch are known when
    tracing (the exported graph: its crops of the whole view then have constant weights,
    which the GPU delegate needs; a computed constant left-hand side of BATCH_MATMUL fails
    its build)."""
    fixed = tf.get_static_value(views)
    if fixed is not None and static_batch is not None:
        return tf.constant(np.tile(fixed, [static_batch, 1]), tf.float32)
    return tf.reshape(views[None] + tf.zeros([batch, 1, 1]), [-1, 4])


def _by_image(outputs: dict, batch, num_views: int) -> dict:
    """Per-step lists of [E, ...] tensors -> [B, V, T, ...] tensors (episode e = b * V + v;
    V counts every episode of an image: views times trajectories)."""
    result = {}
    for key, steps in outputs.items():
        stacked = tf.stack(steps, axis=1)  # [E, T, ...]
        shape = tf.concat([[batch, num_views], tf.shape(stacked)[1:]], axis=0)
        result[key] = tf.reshape(stacked, shape)
    return result


@keras.saving.register_keras_serializable(package="rarl_tf")
class RecurrentAttention(keras.layers.Layer):
    """Places T sequences of k anchor regions on a feature map and scores every region.

    Args:
      num_classes: C, the number of labels.
      anchor_sizes: square roots of the anchor areas, in input pixels (paper: 80, 160, 320).
      aspect_ratios: width / height of the anchors (paper: 2.0, 1.0, 0.5).
      num_steps: T, the number of iterations that score regions (paper: 5).
      crop_size: s, the side of each region's resampled feature grid.
      embed_dim: width of the dense embedding of a region's features.
      lstm_units: width of the LSTM state.
      crop_mode: "crop_and_resize" (training, serving) or "matmul" (TFLite export, XLA).
      region_pool: how the s x s x F region features meet the dense embedding: "flatten" (the
        paper's fully-connected layer over the whole grid, like VGG's fc6) or "max" (max over
        the grid first: translation-invariant inside the region, which a backbone trained from
        scratch on little data needs; see docs/design.md, "Design choices").
      recurrence: "lstm" (the paper), "localisation_only" or "none" (see the module docstring).
      location_input: feed l_t (2 numbers, view frame) into the LSTM with every region.
      context_grid: embed iteration 0's whole view from its flattened s x s grid.
      seed: seed of the location sampler.
      policy: `LocationPolicy` arguments (loc_std, locations, head, loc_grid,
        inhibition_radius, ...; `factory.policy_arguments`); the agent sets its cell width and
        whether REINFORCE trains the state. Given as the agent's own arguments (configurations
        written before 2026-11-27) they land here.
    """

    def __init__(
        self,
        num_classes: int,
        anchor_sizes: Sequence[float] = _M.anchor_sizes,
        aspect_ratios: Sequence[float] = _M.aspect_ratios,
        num_steps: int = _M.num_steps,
        crop_size: int = _M.crop_size,
        embed_dim: int = _M.embed_dim,
        lstm_units: int = _M.lstm_units,
        crop_mode: str = "crop_and_resize",
        region_pool: str = _M.region_pool,
        recurrence: str = _M.recurrence,
        location_input: bool = _M.location_input,
        context_grid: bool = _M.context_grid,
        seed: int | None = None,
        policy: dict | None = None,
        **kwargs,
    ):
        check_choices(
            crop_mode=(crop_mode, CROP_MODES),
            region_pool=(region_pool, REGION_POOLS),
            recurrence=(recurrence, RECURRENCES),
        )
        policy = compat.policy_arguments(policy, kwargs)
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.anchor_sizes = tuple(float(s) for s in anchor_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.num_steps = int(num_steps)
        self.crop_size = int(crop_size)
        self.embed_dim = int(embed_dim)
        self.lstm_units = int(lstm_units)
        self.crop_mode = crop_mode
        self.region_pool = region_pool
        self.recurrence = recurrence
        self.location_input = bool(location_input)
        self.context_grid = bool(context_grid)
        self.seed = seed
        self.policy_arguments = policy
        self.anchor_px = anchors_lib.anchor_shapes(self.anchor_sizes, self.aspect_ratios)
        self.num_anchors = len(self.anchor_px)
        self._make_layers(policy)
        compat.keep_weight_paths(self, self.policy)
        # The agent owns the sampler's state (its path in checkpoints), the policy draws from it.
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _make_layers(self, policy: dict) -> None:
        """The agent's layers and its `LocationPolicy` (built later, in `build`)."""
        self.embed = keras.layers.Dense(self.embed_dim, activation="relu", name="embed")
        self.cell = (
            keras.layers.LSTMCell(self.lstm_units, name="lstm_cell")
            if self.recurrence != "none"
            else None
        )
        self.cls_head = keras.layers.Dense(self.num_classes, name="cls_head")
        self.context_embed = (
            keras.layers.Dense(self.embed_dim, activation="relu", name="context_embed")
            if self.context_grid
            else None
        )
        # With recurrence="localisation_only" the LSTM serves the policy alone, so REINFORCE
        # trains it too (its input is cut from the trunk in `lstm_step` instead).
        self.policy = LocationPolicy(
            **policy,
            cell_width=self.embed_dim,
            train_state=self.recurrence == "localisation_only",
            name="policy",
        )

    def build(self, features_shape, views_shape=None):
        channels = features_shape[-1]
        grid = 1 if self.region_pool == "max" else self.crop_size * self.crop_size
        self.embed.build((None, grid * channels))
        if self.context_embed is not None:
            self.context_embed.build((None, self.crop_size * self.crop_size * channels))
        state = self.embed_dim if self.cell is None else self.lstm_units
        if self.cell is not None:
            self.cell.build((None, self.embed_dim + (2 if self.location_input else 0)))
        self.cls_head.build(
            (None, self.lstm_units if self.recurrence == "lstm" else self.embed_dim)
        )
        self.policy.build((None, state), channels)
        self.built = True

    def crop(self, features, boxes, size=None):
        """Region features [K, s, s, F] of boxes [K, 4] grouped by image: the first K / B read
        image 0, the next K / B image 1, ... (episode e = (b * V + v) * K + j, region e * k + r)."""
        size = size or self.crop_size
        if self.crop_mode == "matmul":
            return crop_lib.crop_regions_matmul(features, boxes, None, size)
        batch = tf.shape(features)[0]
        owners = tf.repeat(tf.range(batch, dtype=tf.int32), tf.shape(boxes)[0] // batch)
        return crop_lib.crop_regions(features, boxes, owners, size)

    def view_cells(self, features, pair_views):
        """The location head's cell terms of each (image, view) pair's G x G grid: [P, G * G, A]
        (None for a head that reads no cells). The map is read through a stop-gradient:
        REINFORCE must not reach the backbone (see `LocationPolicy.call`)."""
        if not self.policy.reads_cells:
            return None
        return self.policy.cell_terms(
            self.crop(tf.stop_gradient(features), pair_views, self.policy.loc_grid)
        )

    def embed_regions(self, regions, context=False):
        """Region features [R, s, s, F] -> embeddings e [R, D] (iteration 0's whole view, marked
        by `context`, through `context_embed` with `context_grid`)."""
        grid = tf.reshape(regions, [-1, self.crop_size * self.crop_size * regions.shape[-1]])
        if context and self.context_embed is not None:
            return self.context_embed(grid)
        if self.region_pool == "max":
            # A max pool over the whole s x s grid: reduce_max's value, with a gradient that
            # routes to the arg-max alone (reduce_max's splits ties, through five full-size
            # elementwise ops; the embedding's time in tools/step_breakdown.py about halved).
            pooled = tf.nn.max_pool2d(regions, self.crop_size, self.crop_size, "VALID")
            return self.embed(tf.reshape(pooled, [-1, regions.shape[-1]]))
        return self.embed(grid)

    def lstm_step(self, embedded, location, state):
        """One LSTM step for each of an episode's n regions from the episode's state.

        Args:
          embedded: [E, n, D] region embeddings e_tr.
          location: [E, 2] l_t, an input with `location_input`.
          state: (h, c), [E, H] each: the episode's state, shared by its n regions.

        Returns:
          (h_r, c_r) [E, n, H]: `LSTMCell` on (e_tr, l_t) from (h, c) for every region, with
          the terms every region of an episode shares (W_h h, W_l l_t, the bias) computed once
          per episode instead of n times: the same function with a 1 / n share of the
          recurrent product. Without an LSTM, h_r = c_r = e_tr.
        """
        if self.cell is None:
            return embedded, embedded
        # An LSTM that only places regions learns from REINFORCE alone, which must not reach
        # the embedding and backbone the classifier trains (see `call`).
        if self.recurrence == "localisation_only":
            embedded = tf.stop_gradient(embedded)
        h, c = state
        dim = embedded.shape[-1]
        kernel = self.cell.kernel  # [D (+ 2), 4H]: gates i, f, g, o as keras.layers.LSTMCell
        shared = tf.matmul(h, self.cell.recurrent_kernel) + self.cell.bias  # [E, 4H]
        if self.location_input:
            shared += tf.matmul(tf.cast(location, h.dtype), kernel[dim:])
        rows = tf.matmul(tf.reshape(embedded, [-1, dim]), kernel[:dim])  # [E * n, 4H]
        z = with_episode_rows(
            tf.add, tf.reshape(rows, [-1, embedded.shape[1], shared.shape[-1]]), shared
        )
        i, f, g, o = tf.split(z, 4, axis=-1)
        c_r = tf.sigmoid(f) * c[:, None] + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c_r), c_r

    def call(self, features, views, image_size, sample=False, trajectories=1, override=None):
        """Runs T + 1 iterations on every (image, view) pair, `trajectories` times.

        Args:
          features: [B, h, w, C] feature map f_I.
          views: [V, 4] view boxes (y1, x1, y2, x2) normalised to the map, shared by all images;
            [[0, 0, 1, 1]] is the whole image, x1 > x2 a mirrored view.
          image_size: (height, width) of the input image in pixels, the unit of anchor sizes
            (Python numbers, or scalar tensors when the image size is only known at run time).
          sample: draw l_{t+1} from the policy (training) instead of taking its mean.
          trajectories: K, episodes per (image, view) pair; they differ only where sampled
            locations differ (REINFORCE's K trajectories through one feature map).
          override: a test-time `overrides.PolicyOverride` handed to the policy (or None).

        Returns:
          dict of tensors, with E = B * V * K episodes laid out as [B, V * K, ...] (episode
          e = (b * V + v) * K + j is trajectory j of image b through view v):
            region_logits [B, VK, T, k, C]: a_tr, the region scores;
            boxes [B, VK, T, k, 4]: the regions on the map, normalised (y1, x1, y2, x2);
            locations [B, VK, T, 2]: l_1..l_T as used, in the view frame [-1, 1];
            means [B, VK, T, 2]: the policy's mode: its mean f_loc(h_{t-1}) for the paper's
              Normal;
            log_probs [B, VK, T]: log pi(l_t) of the 2-D location, gradient to the policy only;
            baselines [B, VK, T]: b_t, trained to predict the reward.
        """
        views = tf.convert_to_tensor(views, tf.float32)
        outputs = {key: [] for key in OUTPUTS}
        for step in self.steps(features, views, image_size, sample, trajectories, override):
            for key in OUTPUTS:
                outputs[key].append(step[key])
        return _by_image(outputs, tf.shape(features)[0], views.shape[0] * int(trajectories))

    def steps(
        self, features, views, image_size, sample=False, trajectories=1, override=None, export=False
    ):
        """The iterations t = 1..T of `call`, one at a time: yields a dict of OUTPUTS, [E, ...]
        each (region_logits [E, k, C], boxes [E, k, 4], locations, means [E, 2], log_probs,
        baselines [E]). `call` stacks them by image; the export (rarl_tf/export/gpu_graph.py)
        reads them as they come (one image, one view; `export`: the head's export form of its
        mode), so it runs this very code."""
        views = tf.convert_to_tensor(views, tf.float32)
        batch = tf.shape(features)[0]
        num_trajectories = int(trajectories)
        pair_views = _pair_views(views, features.shape[0], batch)  # [B * V, 4]
        size = tf.cast(tf.reshape(tf.stack([image_size[0], image_size[1]]), [1, 2]), tf.float32)
        shapes = tf.constant(self.anchor_px) / size
        # Iteration 0 and the spatial head's cell terms do not depend on sampled locations:
        # computed once per (image, view) pair and shared by its K trajectories.
        state = [repeat_rows(x, num_trajectories) for x in self.start(features, pair_views)]
        cells = self.view_cells(features, pair_views)
        cells = None if cells is None else repeat_rows(cells, num_trajectories)
        episode_views = repeat_rows(pair_views, num_trajectories)
        visited = []
        memory = self.policy.remember(
            self.policy.initial_memory(state[0]), tf.zeros([tf.shape(state[0])[0], 2]), state[0]
        )
        first = self.policy.head_input(state[0], memory)
        for _ in range(self.num_steps):
            used, mean, log_prob, baseline = self.policy(
                state[0],
                cells=cells,
                visited=list(visited),
                sample=sample,
                seed=self.next_seed(sample),
                memory=memory,
                first=first,
                override=override,
                export=export,
            )
            boxes, logits, state = self._regions(features, used, episode_views, shapes, state)
            memory = self.policy.remember(memory, used, state[0])
            visited.append(used)
            yield dict(zip(OUTPUTS, (logits, boxes, used, mean, log_prob, baseline)))

    def _regions(self, features, used, episode_views, shapes, state):
        """One iteration's k regions around l_t = `used` [E, 2]: their boxes [E, k, 4] on the
        map, their scores a_tr [E, k, C] and the episodes' next state [h_t, c_t] ([E, H] each)."""
        k = self.num_anchors
        boxes = anchors_lib.anchor_boxes(used, episode_views, shapes)  # [E, k, 4]
        embedded = self.embed_regions(self.crop(features, tf.reshape(boxes, [-1, 4])))
        embedded = tf.reshape(embedded, [-1, k, embedded.shape[-1]])  # [E, k, D]
        h_r, c_r = self.lstm_step(embedded, used, state)  # [E, k, H] each
        scored = h_r if self.recurrence == "lstm" else embedded
        logits = self.cls_head(tf.reshape(scored, [-1, scored.shape[-1]]))  # [E * k, C]
        state = [tf.reduce_mean(h_r, axis=1), tf.reduce_mean(c_r, axis=1)]
        return boxes, tf.reshape(logits, [-1, k, self.num_classes]), state

    def start(self, features, pair_views):
        """Iteration 0: each pair's whole view [P, 4] as its one region, from a zero state at
        l = (0, 0); returns its state (h, c), [P, H] each."""
        count = tf.shape(pair_views)[0]
        zeros = tf.zeros([count, self.lstm_units], features.dtype)
        embedded = self.embed_regions(self.crop(features, pair_views), context=True)
        h, c = self.lstm_step(embedded[:, None], tf.zeros([count, 2]), (zeros, zeros))
        # A squeeze, not h[:, 0]: the GPU delegate refuses shrinking strided slices.
        return tf.squeeze(h, 1), tf.squeeze(c, 1)

    def next_seed(self, sample):
        """A seed from the agent's generator where the policy draws (a sample, or random
        centres); None otherwise."""
        return self.seed_generator.next() if sample or self.policy.uniform else None

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in _CONFIG_ATTRIBUTES})
        config.update(
            anchor_sizes=list(self.anchor_sizes),
            aspect_ratios=list(self.aspect_ratios),
            policy=dict(self.policy_arguments),
        )
        return config
