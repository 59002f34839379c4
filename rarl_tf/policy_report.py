"""Does the learned location policy earn its place? Measurements on a trained RARL model.

For the policy (its mean, as at evaluation) and for uniform random centres *with the same
weights* (`with_locations`):
  - mAP, one view, on the first `max_images` test images;
  - object discovery per step and over the union of the T steps (`discovery.py`): "centre
    inside" (l_t inside a digit's box) and IoU >= 0.5 (some region of the step);
  - the mean distance between consecutive locations (view frame [-1, 1]).
For the policy while sampling, as in training:
  - the share of images whose reward varies across K sampled trajectories (paper's top-n reward
    and the model's own), i.e. where placement can matter to REINFORCE at all;
  - the batch signal-to-noise of the REINFORCE gradient of the location head: ||E g|| over the
    RMS deviation of a training-size batch's gradient g from that mean.

Objects (digit boxes) exist for `cluttered_digits` only; other datasets get no discovery rows.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from rarl_tf import evaluation
from rarl_tf.config import ExperimentConfig
from rarl_tf.data import pipeline
from rarl_tf.discovery import discovery_rates
from rarl_tf.model import losses


def digit_test_batches(config: ExperimentConfig, max_images: int, batch_size: int = 64
                       ) -> tf.data.Dataset:
    """cluttered_digits' test split: (images [B, N, N, 3], labels [B, C], boxes [B, n, 4]) with
    boxes padded by rows of -1 (y1, x1, y2, x2 normalised to the image)."""
    from rarl_tf.data.splits import split_name
    from rarl_tf.data.tfds_sources import cluttered_digits_builder

    dataset = config.data.dataset
    builder = cluttered_digits_builder(dataset.partition("/")[2] or "default",
                                       config.data.data_dir)
    examples = builder.as_dataset(split=split_name(dataset, "eval"))
    return examples.take(max_images).map(
        lambda ex: (pipeline.resize(ex["image"], config.model.image_size), ex["labels"],
                    ex["objects"]["bbox"])).padded_batch(
        batch_size, padded_shapes=([None, None, 3], [None], [None, 4]),
        padding_values=(0.0, 0.0, -1.0))


@contextlib.contextmanager
def with_locations(model: keras.Model, locations: str):
    """Temporarily places the agent's regions by `locations` ("policy" or "random"), weights
    unchanged. Functions traced inside see the change; trace new ones after leaving."""
    saved = model.agent.policy.locations
    model.agent.policy.locations = locations
    try:
        yield model
    finally:
        model.agent.policy.locations = saved


def attended(model: keras.Model, batches: tf.data.Dataset) -> dict:
    """One view, locations at the policy's mean (or random under `with_locations`):
    {"probs" [N, C], "labels" [N, C], "boxes" [N, T, k, 4], "locations" [N, T, 2],
    "objects": list of [n, 4]}."""

    @tf.function(reduce_retracing=True)
    def forward(images):
        out = model(images, training=False)
        return out["probs"], out["boxes"][:, 0], out["locations"][:, 0]

    collected = {"probs": [], "labels": [], "boxes": [], "locations": [], "objects": []}
    for images, labels, objects in batches:
        probs, boxes, locations = (x.numpy() for x in forward(images))
        for key, value in (("probs", probs), ("labels", labels.numpy()), ("boxes", boxes),
                           ("locations", locations)):
            collected[key].append(value)
        collected["objects"] += [o[o[:, 0] >= 0] for o in objects.numpy()]
    return {k: v if k == "objects" else np.concatenate(v) for k, v in collected.items()}


def placement_scores(found: dict, eval_config) -> dict:
    """mAP, discovery per step and over the union of steps, consecutive-step distance."""
    ignore = np.zeros_like(found["labels"], bool)
    metrics = evaluation.compute_metrics(found["probs"], found["labels"], ignore, eval_config)
    boxes, objects = found["boxes"], found["objects"]
    steps = [discovery_rates(list(boxes[:, t]), objects) for t in range(boxes.shape[1])]
    union = discovery_rates([b.reshape(-1, 4) for b in boxes], objects)
    distance = np.linalg.norm(np.diff(found["locations"], axis=1), axis=-1).mean(axis=0)
    return {"mAP": metrics["mAP"], "CF1": metrics["CF1"], "OF1": metrics["OF1"],
            "step_centre_inside": [s["centre_inside"] for s in steps],
            "step_iou50": [s["iou50"] for s in steps],
            "union_centre_inside": union["centre_inside"], "union_iou50": union["iou50"],
            "step_distance": distance.tolist(), "objects": union["objects"],
            "images": int(len(found["probs"]))}


def sampled_terms(model: keras.Model, images: tf.Tensor, labels: tf.Tensor, trajectories: int):
    """Training-time terms of K sampled trajectories per image (batch-norm in inference mode):
    (model.compute_terms dict, top-n rewards [B, K], the model's rewards [B, K])."""
    out = model(images, training=False, sample=True, trajectories=trajectories)
    labels = tf.cast(labels, tf.float32)
    top_n = losses.top_n_reward(out["view_logits"], labels[:, None])
    own = losses.reward(model.reward, out["view_logits"], labels[:, None])
    return model.compute_terms(out, labels), top_n, own


def reward_variation(model: keras.Model, batches: tf.data.Dataset, samples: int) -> dict:
    """How often the reward depends on where the agent looks, over `samples` trajectories."""
    top_n, own = [], []
    for images, labels, _ in batches:
        _, r_top, r_own = sampled_terms(model, images, labels, samples)
        top_n.append(r_top.numpy())
        own.append(r_own.numpy())
    top_n, own = np.concatenate(top_n), np.concatenate(own)
    return {"samples": samples,
            "top_n_varies": float(np.mean(top_n.max(1) > top_n.min(1))),
            "top_n_always_1": float(np.mean(top_n.min(1) >= 1.0)),
            "reward": model.reward,
            "reward_varies": float(np.mean(own.max(1) - own.min(1) > 1e-6)),
            "reward_within_image_std": float(np.mean(own.std(1)))}


def gradient_snr(model: keras.Model, batches: tf.data.Dataset) -> dict | None:
    """Signal-to-noise of the REINFORCE gradient of the location head over batches as trained
    (the model's own K trajectories and advantage); None without a learned policy."""
    agent = model.agent
    variables = [v for layer in (agent.loc_hidden_layer, agent.loc_head, agent.loc_cell,
                                 agent.loc_state, agent.loc_score)
                 if layer is not None for v in layer.trainable_variables]
    if not variables or agent.policy.locations != "policy":
        return None
    grads = []
    for images, labels, _ in batches:
        with tf.GradientTape() as tape:
            terms, _, _ = sampled_terms(model, images, labels, model.trajectories)
            surrogate = tf.reduce_mean(terms["reinforce_loss"])
        grads.append(np.concatenate([g.numpy().ravel()
                                     for g in tape.gradient(surrogate, variables)]))
    grads = np.stack(grads)
    mean = grads.mean(axis=0)
    noise = np.sqrt(np.mean(np.sum((grads - mean) ** 2, axis=1)))
    return {"batches": len(grads), "batch_size": int(images.shape[0]),
            "snr": float(np.linalg.norm(mean) / max(noise, 1e-12))}


def policy_report(model: keras.Model, config: ExperimentConfig, max_images: int = 512,
                  samples: int = 8, batch_size: int = 32) -> dict:
    """Everything in the module docstring, as one JSON-ready dict."""
    batches = digit_test_batches(config, max_images, batch_size)
    rows = {}
    for name in ("policy", "random"):
        keras.utils.set_random_seed(config.train.seed)
        with with_locations(model, name if model.agent.policy.locations == "policy"
                            else "random"):
            rows[name] = placement_scores(attended(model, batches), config.eval)
    keras.utils.set_random_seed(config.train.seed)
    return {"model": {"locations": model.agent.policy.locations,
                      "trajectories": model.trajectories, "reward": model.reward},
            "images": rows["policy"]["images"], **rows,
            "learned_minus_random_mAP": rows["policy"]["mAP"] - rows["random"]["mAP"],
            "reward_variation": reward_variation(model, batches, samples),
            "gradient": gradient_snr(model, batches)}


def markdown(report: dict) -> str:
    """The report as a markdown table (percent, distances in the [-1, 1] view frame)."""
    rows = ["| placement | mAP | centre inside, per step | centre inside, union | "
            "IoU >= 0.5, union | consecutive distance |", "|---|---|---|---|---|---|"]
    for name in ("policy", "random"):
        r = report[name]
        steps = " / ".join(f"{100 * v:.1f}" for v in r["step_centre_inside"])
        dist = " / ".join(f"{v:.2f}" for v in r["step_distance"])
        rows.append(f"| {name} | {100 * r['mAP']:.2f} | {steps} | "
                    f"{100 * r['union_centre_inside']:.1f} | {100 * r['union_iou50']:.1f} | "
                    f"{dist} |")
    v, g = report["reward_variation"], report["gradient"]
    rows.append("")
    rows.append(f"Learned − random mAP: {100 * report['learned_minus_random_mAP']:+.2f}. "
                f"Over {v['samples']} sampled trajectories, the top-n reward varies on "
                f"{100 * v['top_n_varies']:.0f} % of images (always 1 on "
                f"{100 * v['top_n_always_1']:.0f} %); the model's reward ({v['reward']}) varies "
                f"on {100 * v['reward_varies']:.0f} %."
                + (f" Policy-gradient batch SNR {g['snr']:.2f} ({g['batches']} batches of "
                   f"{g['batch_size']})." if g else ""))
    return "\n".join(rows)


def comparison_markdown(reports: dict) -> str:
    """One row per named report (e.g. runs that differ by one setting), percent."""
    rows = ["| run | mAP | same weights, random centres | learned − random | centre inside per "
            "step (mean) | union: centre inside / IoU >= 0.5 | consecutive distance (mean) | "
            "policy-gradient SNR |", "|---|---|---|---|---|---|---|---|"]
    for name, r in reports.items():
        p, g = r["policy"], r["gradient"]
        snr = "-" if g is None else f"{g['snr']:.2f}"
        rows.append(
            f"| {name} | {100 * p['mAP']:.1f} | {100 * r['random']['mAP']:.1f} | "
            f"{100 * r['learned_minus_random_mAP']:+.1f} | "
            f"{100 * np.mean(p['step_centre_inside']):.1f} | "
            f"{100 * p['union_centre_inside']:.1f} / {100 * p['union_iou50']:.1f} | "
            f"{np.mean(p['step_distance']):.2f} | {snr} |")
    return "\n".join(rows)
