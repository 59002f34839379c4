"""The exported inference graph, written so that the TFLite GPU delegate takes every op.

`RARLModel.call` is written for training (batches of episodes, views, sampled locations) and
converts to ops the GPU delegate refuses (see `export/gpu_rules.py`): rank-5 tensors, shrinking
strided slices, comparisons that feed LOGICAL_AND, ARG_MAX / ONE_HOT on int64, and batched
matrix products whose right-hand side is not one [1, I, O] matrix. This module computes the same
function for the exported case only (one image, the whole view, the policy's mode), from the
same Keras layers and weights, with:

* nothing of rank 5: per-step region scores are reduced over their k regions as [1, k, C]
  and the steps' maxima concatenated, not stacked to [B, V, T, k, C];
* the bilinear crop as ONE matrix product with the feature map as the [1, h*w, C] right-hand
  side: the weight of sample (i, j) of box r on cell (y, x) is Wy[r, i, y] * Wx[r, j, x]
  (an outer product formed with constant 0/1 expansion matrices, a TILE and a MUL), so
  regions = W [1, K*s*s, h*w] @ F [1, h*w, C]. Boxes known when tracing (the whole view at
  iteration 0, the spatial head's grid) have constant W: their crop is F^T @ W^T, a
  FULLY_CONNECTED with constant weights;
* no validity mask: every crop keeps its boxes inside the map (`crop.inside_map`) and clamps
  its sample positions;
* the spatial head's mode as the one-hot of the FIRST maximum (`first_arg_max`: the Keras
  model's tf.argmax rule, ties included; an all-black image ties every cell) times the cell
  positions;
* every "repeat for the k regions" as a TILE, and no runtime tensor meeting a constant of
  another shape in an elementwise op where the converter can fold a TILE away: the anchor
  boxes are one product with a 0/1 constant, then an ADD of equal shapes. On LiteRT's GPU
  accelerator (ML Drift on WebGPU) `ADD [1, 4] + const [k, 4]` gave k copies of row 0, and
  `DIV [1, 2] / [1, 1]` made Dawn reject every command buffer (garbage outputs), while
  `is_fully_accelerated()` was true.

Scores, boxes and centres equal the Keras model's on the CPU (`tests/export/test_export_gpu.py`) and
on the GPU accelerator run on a software Vulkan device (`tests/inference/test_gpu_runtime.py`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from rarl_tf.inference import outputs
from rarl_tf.model import crop as crop_lib
from rarl_tf.model.policy import position_features
from rarl_tf.model.views import FULL_VIEW


def first_arg_max(logits):
    """[1, G] -> the one-hot [1, G] of the FIRST largest entry, as tf.one_hot(tf.argmax(.)),
    without ARG_MAX (the classic delegate lacks it).

    The comparison with REDUCE_MAX marks every tied maximum; one product with the constant
    identity - strictly upper triangular [G, G] gives, per cell, its mark minus the count of
    marks before it (one consumer of the CAST, as the delegate requires; no SUB of two halves
    of a SPLIT, which ML Drift can compute wrongly), and relu keeps the first mark only.
    Integer sums: exact in float16 up to 2048 cells.
    """
    grid = logits.shape[-1]
    top = tf.reduce_max(logits, axis=-1, keepdims=True)
    marked = tf.cast(logits >= top, tf.float32)
    table = np.eye(grid, dtype=np.float32) - np.triu(np.ones((grid, grid), np.float32), k=1)
    return tf.nn.relu(tf.matmul(marked, tf.constant(table)))


def crop(features, boxes, crop_size: int):
    """`crop.crop_one_image` as [K, s * s, C]."""
    out = crop_lib.crop_one_image(features, boxes, crop_size)
    return tf.reshape(out, [out.shape[0], crop_size * crop_size, out.shape[-1]])


def crop_constant(features, boxes: np.ndarray, crop_size: int):
    """`crop.crop_constant` as [K, s * s, C]."""
    out = crop_lib.crop_constant(features, boxes, crop_size)
    return tf.reshape(out, [out.shape[0], crop_size * crop_size, out.shape[-1]])


class GpuInference:
    """The exported forward pass of a built RARLModel (one image, the whole view, the mode)."""

    def __init__(self, model, image_size: int):
        agent = model.agent
        if agent.policy.locations != "policy":
            raise ValueError(
                f"locations={agent.policy.locations!r}: random centres have no deterministic export"
            )
        self.model, self.agent, self.image_size = model, agent, int(image_size)
        self.k = agent.num_anchors
        shapes = agent.anchor_px / np.float32(self.image_size)  # [k, 2] (height, width)
        half_h, half_w = shapes[:, :1] / 2, shapes[:, 1:] / 2
        # Offsets of (y1, x1, y2, x2) from the centre: cy - h/2 == cy + (-(h/2)) exactly.
        offsets = np.concatenate([-half_h, -half_w, half_h, half_w], axis=1)  # [k, 4]
        self.offsets = tf.constant(offsets.reshape(1, 4 * self.k), tf.float32)
        self.spread = tf.constant(np.tile(np.eye(2, dtype=np.float32), [1, 2 * self.k]))

    def _embed_regions(self, regions, context: bool):
        """regions [R, s*s, C] -> e [R, D] as `RecurrentAttention._embed` embeds them."""
        agent = self.agent
        r, cells, c = regions.shape
        if context and agent.context_embed is not None:
            return agent.context_embed(tf.reshape(regions, [r, cells * c]))
        if agent.region_pool == "max":
            return agent.embed(tf.reshape(tf.reduce_max(regions, axis=1), [r, c]))
        return agent.embed(tf.reshape(regions, [r, cells * c]))

    def _step_lstm(self, embedded, state, location):
        agent = self.agent
        if agent.cell is None:
            return embedded, embedded
        lstm_input = embedded
        if agent.location_input:
            lstm_input = tf.concat([embedded, location], axis=-1)
        h, (h, c) = agent.cell(lstm_input, state)
        return h, c

    def _mode(self, h, cells, visited, memory=None):
        """The policy's mode [1, 2], clipped to the view, as `LocationPolicy.call` with
        sample=False, from the state its head reads (h, or the policy's own `memory`)."""
        agent, policy = self.agent, self.agent.policy
        state = policy.head_input(h, memory)
        if cells is None:
            if policy.loc_hidden_layer is not None:
                state = policy.loc_hidden_layer(state)
            mean = policy.mean_head(state)
        else:
            grid = policy.loc_grid**2
            if policy.query:
                # [G*G, A] * [1, A] (equal ranks), summed over A: q(s) . relu(cells).
                scores = tf.reduce_sum(tf.nn.relu(cells) * policy.loc_query(state), axis=-1)
            else:
                # [G*G, A] + [1, A]: equal ranks (the delegate refuses [G*G, A] + [1, 1, A]).
                scores = policy.loc_score(tf.nn.relu(cells + policy.loc_state(state)))
            logits = tf.reshape(scores, [1, grid])
            with tf.init_scope():  # the (annealed) strength the trained model holds
                inhibits = policy.inhibits()
                strength = float(keras.ops.convert_to_numpy(policy.strength()))
            if inhibits:
                positions = policy.cell_positions(tf.float32)
                for location in visited:
                    delta = positions[None] - tf.reshape(location, [1, 1, 2])
                    distance2 = tf.reduce_sum(tf.square(delta), -1)
                    near = tf.exp(-distance2 / (2.0 * policy.inhibition_radius**2))
                    if strength != 1.0:
                        near = near * strength
                    logits += tf.math.log(1.0 - near + 1e-20)
            with tf.init_scope():
                positions = agent.policy.cell_positions(tf.float32).numpy()
            mean = tf.matmul(first_arg_max(logits), tf.constant(positions))  # [1, 2]
        return tf.clip_by_value(mean, -1.0, 1.0)

    def _cells(self, features):
        """The spatial head's cell terms [G*G, A] of the whole view (None for other heads);
        the query head's position term is a constant of the same shape."""
        policy = self.agent.policy
        if policy.loc_cell is None:
            return None
        grid = crop_constant(features, np.asarray(FULL_VIEW, np.float32), policy.loc_grid)
        cells = policy.loc_cell(tf.reshape(grid, [policy.loc_grid**2, grid.shape[-1]]))
        if policy.loc_position is not None:
            with tf.init_scope():
                position = policy.loc_position(
                    position_features(policy.cell_positions(tf.float32))
                ).numpy()
            # Added as [1, G*G*A] + a constant of that shape: ML Drift computed the elementwise
            # op with a [G*G, A] constant (first dimension > 1) wrongly on the real device.
            cells = tf.reshape(
                tf.reshape(cells, [1, -1]) + tf.constant(position.reshape(1, -1)), cells.shape
            )
        return cells

    def _boxes(self, location):
        """`anchors.anchor_boxes` for the whole (unflipped) view: [k, 4]."""
        centre = (location + 1.0) * 0.5  # [1, 2] (y, x) on the map
        # (y, x) -> (y, x, y, x) for each of the k anchors as one product with a constant 0/1
        # [2, 4k] (exact: one term per column), so the offsets meet a runtime tensor of their
        # own shape [1, 4k]. A TILE to [k, 4] is folded away by the converter into
        # ADD [1, 4] + const [k, 4], which the GPU accelerator computed as k copies of row 0.
        corners = tf.matmul(centre, self.spread) + self.offsets  # [1, 4k]
        return tf.reshape(tf.clip_by_value(corners, 0.0, 1.0), [self.k, 4])

    def __call__(self, pixels):
        agent, k = self.agent, self.k
        features = self.model.backbone(tf.cast(pixels, tf.float32), training=False)
        units = agent.lstm_units if agent.cell is not None else agent.embed_dim
        zeros = tf.zeros([1, units])
        view = np.asarray(FULL_VIEW, np.float32)
        # Iteration 0: the whole view, at l = (0, 0).
        whole = crop_constant(features, view, agent.crop_size)
        h, c = self._step_lstm(
            self._embed_regions(whole, context=True), [zeros, zeros], tf.zeros([1, 2])
        )
        cells = self._cells(features)
        policy = agent.policy
        memory = policy.remember(policy.initial_memory(h), tf.zeros([1, 2]), h)
        logits, boxes, locations, visited = [], [], [], []
        for _ in range(agent.num_steps):
            used = self._mode(h, cells, visited, memory)
            visited.append(used)
            step_boxes = self._boxes(used)
            embedded = self._embed_regions(crop(features, step_boxes, agent.crop_size), False)
            h_r, c_r = self._step_lstm(
                embedded, [tf.tile(h, [k, 1]), tf.tile(c, [k, 1])], tf.tile(used, [k, 1])
            )
            scores = agent.cls_head(h_r if agent.recurrence == "lstm" else embedded)
            logits.append(tf.reshape(scores, [1, k, agent.num_classes]))
            h = tf.reduce_mean(tf.reshape(h_r, [1, k, h_r.shape[-1]]), axis=1)
            c = tf.reduce_mean(tf.reshape(c_r, [1, k, c_r.shape[-1]]), axis=1)
            memory = policy.remember(memory, used, h)
            boxes.append(step_boxes)
            locations.append(used)
        steps = agent.num_steps
        view_logits = tf.reduce_max(tf.concat(logits, axis=1), axis=1)  # [1, C]
        return outputs.to_exported(
            {
                "probs": tf.nn.softmax(view_logits, axis=-1),
                "boxes": tf.reshape(tf.concat(boxes, axis=0), [1, steps, k, 4]),
                "centres": tf.reshape(outputs.centres(tf.concat(locations, axis=0)), [1, steps, 2]),
            }
        )


def inference_function(model, image_size: int):
    """tf.function pixels [1, N, N, 3] -> {"scores", "boxes", "centres"}, GPU-delegate ops."""
    forward = GpuInference(model, image_size)

    @tf.function(
        input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="pixels")]
    )
    def infer(pixels):
        return forward(pixels)

    return infer
