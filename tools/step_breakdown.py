"""Where a RARL training step's time goes: each part of the step timed as a sub-graph of its own.

Every part runs forward and backward (its gradient with respect to its own weights and to the
tensors it reads, as in the real step) on the inputs one sampled forward pass of the model gives
it: the same boxes, regions, embeddings and states the step computes. The parts, in data-flow
order:

  backbone    the backbone on the batch (batch-norm in training mode)
  crops       the crops of one step: iteration 0's views and T x K x k regions per image
  embedding   the region embedding (max over the grid, dense)
  lstm        T LSTM steps of the k regions of each episode
  heads       the class head on every region, the location policy (sample, log-probability,
              the spatial head's grid of cells, the policy's own GRU state) and the baseline
  loss        the hybrid loss, its rewards and REINFORCE terms
  optimizer   Adam's update of every weight

The parts are timed apart, so their sum is not the step's time: the step runs some of them side
by side on several cores and pays for what joins them. Used by `tools/benchmark.py`; it runs the
agent's parts through their public methods (`crop`, `embed_regions`, `start`, `lstm_step`,
`view_cells`, `next_seed`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rarl_tf.model.agent import repeat_rows
from rarl_tf.model.views import FULL_VIEW

PARTS = ("backbone", "crops", "embedding", "lstm", "heads", "loss", "optimizer")


def _forward_backward(fn, sources):
    """A tf.function computing fn() and the gradient of the sum of its outputs by `sources`."""

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch([s for s in sources if not isinstance(s, keras.Variable)])
            total = tf.add_n([tf.reduce_sum(y) for y in tf.nest.flatten(fn())])
        return tape.gradient(total, sources)

    return lambda: [g.numpy() for g in run() if g is not None]


def _step_inputs(model, images):
    """What the parts read, from one sampled forward pass: features, per-step boxes [E * k, 4]
    and locations [E, 2], the pair views [B, 4], the regions [E * k, s, s, F] and their
    embeddings [E, k, D] of every step, and the model's outputs."""
    agent, k = model.agent, model.agent.num_anchors
    features = model.backbone(images, training=True)
    out = model(images, training=True, sample=True, trajectories=model.trajectories)
    steps = range(agent.num_steps)
    boxes = [tf.reshape(out["boxes"][:, :, t], [-1, 4]) for t in steps]
    locations = [tf.reshape(out["locations"][:, :, t], [-1, 2]) for t in steps]
    pair_views = tf.reshape(FULL_VIEW[None] + tf.zeros([images.shape[0], 1, 1]), [-1, 4])
    regions = [agent.crop(features, b) for b in boxes]
    embedded = [tf.reshape(agent.embed_regions(r), [-1, k, agent.embed_dim]) for r in regions]
    return dict(
        features=features,
        out=out,
        boxes=boxes,
        locations=locations,
        pair_views=pair_views,
        regions=regions,
        embedded=embedded,
    )


def _lstm_states(agent, x, trajectories):
    """The T steps' region states h_r [E, k, H] and episode states [E, H], chained as in
    `RecurrentAttention.call`."""
    state = [repeat_rows(s, trajectories) for s in agent.start(x["features"], x["pair_views"])]
    region_states, episode_states = [], []
    for embedded, location in zip(x["embedded"], x["locations"]):
        episode_states.append(state[0])
        h_r, c_r = agent.lstm_step(embedded, location, state)
        region_states.append(h_r)
        state = [tf.reduce_mean(h_r, axis=1), tf.reduce_mean(c_r, axis=1)]
    return region_states, episode_states


def _placements(agent, states, locations, cells):
    """log pi(l_t) and b_t of every step, from the episode states [E, H] and locations [E, 2]
    of a forward pass, the policy's own state (if any) updated between steps as the agent
    does (`RecurrentAttention.call`)."""
    policy = agent.policy
    memory = policy.remember(
        policy.initial_memory(states[0]), tf.zeros_like(locations[0]), states[0]
    )
    placed = []
    for t, state in enumerate(states):
        placed.append(
            policy(
                state,
                cells=cells,
                visited=locations[:t],
                sample=True,
                seed=agent.next_seed(True),
                memory=memory,
            )[2:]
        )
        if t + 1 < len(states):
            memory = policy.remember(memory, locations[t], states[t + 1])
    return placed


def train_breakdown(model, images, labels, timed) -> dict[str, float]:
    """Seconds per training step of each of PARTS, and `step` (the whole train_step).

    Args:
      model: a compiled `RARLModel` whose optimizer is built.
      images: [B, H, W, 3]; labels: [B, C] multi-hot.
      timed: fn -> median seconds of fn() (or any measure of fn: it is stored as returned).
    """
    agent, trajectories = model.agent, model.trajectories
    x = _step_inputs(model, images)
    h_r, h = _lstm_states(agent, x, trajectories)
    h_r = [tf.stop_gradient(s) for s in h_r]
    h = [tf.stop_gradient(s) for s in h]

    def heads():
        cells = agent.view_cells(x["features"], x["pair_views"])
        cells = None if cells is None else repeat_rows(cells, trajectories)
        scores = [agent.cls_head(tf.reshape(s, [-1, s.shape[-1]])) for s in h_r]
        return scores, _placements(agent, h, x["locations"], cells)

    out = {key: tf.stop_gradient(v) for key, v in x["out"].items()}
    backbone_vars = model.backbone.trainable_variables
    head_vars = agent.cls_head.trainable_variables + agent.policy.trainable_variables
    parts = {
        "backbone": _forward_backward(lambda: model.backbone(images, training=True), backbone_vars),
        "crops": _forward_backward(
            lambda: (
                [agent.crop(x["features"], b) for b in x["boxes"]]
                + [agent.crop(x["features"], x["pair_views"])]
            ),
            [x["features"]],
        ),
        "embedding": _forward_backward(
            lambda: [agent.embed_regions(r) for r in x["regions"]],
            agent.embed.trainable_variables + x["regions"],
        ),
        "lstm": _forward_backward(
            lambda: _lstm_states(agent, x, trajectories)[0],
            (agent.cell.trainable_variables if agent.cell else []) + x["embedded"],
        ),
        "heads": _forward_backward(heads, head_vars + h_r + h),
        "loss": _forward_backward(
            lambda: model.compute_terms(out, labels)["loss"],
            [out["view_logits"], out["region_logits"], out["log_probs"], out["baselines"]],
        ),
    }
    result = {name: timed(fn) for name, fn in parts.items()}
    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    update = tf.function(
        lambda: model.optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    )
    result["optimizer"] = timed(lambda: update())
    step = tf.function(model.train_step)
    result["step"] = timed(lambda: float(step((images, labels))["loss"]))
    return result
