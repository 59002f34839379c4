"""Does the learned location policy earn its place? Measurements on a trained RARL model.

For the policy (its mode, as at evaluation), for test-time interventions on the state its head
reads (zero, another image's, the batch's mean, the first state held), with the hand-coded
inhibition of return switched off (or on), and for random centres (uniform, and with
inhibition of return) *with the same weights* (`PLACEMENTS`: `altered_policy` for the
policy's settings, a `PolicyOverride` passed to the model for the interventions):
  - mAP, one view, on the first `max_images` test images;
  - object discovery per step and over the union of the T steps (`discovery.py`): "centre
    inside" (l_t inside a digit's box) and IoU >= 0.5 (some region of the step);
  - the mean distance between consecutive locations (view frame [-1, 1]);
  - for the interventions, the share of (image, step) whose visited grid cell is the policy's.
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

from rarl_tf.config.experiment import ExperimentConfig
from rarl_tf.data import pipeline
from rarl_tf.evaluation import metrics, scoring
from rarl_tf.evaluation.discovery import discovery_rates
from rarl_tf.model import losses
from rarl_tf.model.overrides import PolicyOverride


def digit_test_batches(
    config: ExperimentConfig, max_images: int, batch_size: int = 64
) -> tf.data.Dataset:
    """cluttered_digits' test split: (images [B, N, N, 3], labels [B, C], boxes [B, n, 4],
    classes [B, n]) with boxes padded by rows of -1 (y1, x1, y2, x2 normalised to the image)
    and classes by -1."""
    from rarl_tf.data.splits import split_name
    from rarl_tf.data.tfds_sources import cluttered_digits_builder

    dataset = config.data.dataset
    builder = cluttered_digits_builder(dataset.partition("/")[2] or "default", config.data.data_dir)
    examples = builder.as_dataset(split=split_name(dataset, "eval"))
    return (
        examples.take(max_images)
        .map(
            lambda ex: (
                pipeline.resize(ex["image"], config.model.image_size),
                ex["labels"],
                ex["objects"]["bbox"],
                ex["objects"]["label"],
            )
        )
        .padded_batch(
            batch_size,
            padded_shapes=([None, None, 3], [None], [None, 4], [None]),
            padding_values=(0.0, 0.0, -1.0, tf.constant(-1, tf.int64)),
        )
    )


# Test-time placements of the same weights: name -> (what changes, what it tests). What changes
# is `LocationPolicy` settings (`locations`, `inhibition_radius`; `altered_policy`) and the
# fields of a `PolicyOverride` (`state`, `strength`, `placements`: "oracle" for
# `oracle_locations`). "rho" stands for the report's inhibition radius.
PLACEMENTS = {
    "policy": ({}, "the learned policy, its real state"),
    "zero_state": ({"state": "zero"}, "the head reads a zero state"),
    "other_image_state": ({"state": "other_image"}, "the head reads another image's state"),
    "batch_mean_state": ({"state": "batch_mean"}, "the head reads the batch's mean state"),
    "first_state_held": ({"state": "first"}, "the head reads its first state at every step"),
    "inhibition_off": ({"inhibition_radius": 0.0}, "hand-coded inhibition of return off"),
    "inhibition_on": (
        {"inhibition_radius": "rho", "strength": 1.0},
        "hand-coded inhibition of return on",
    ),
    "random": ({"locations": "random"}, "uniform random centres"),
    "random_inhibited": (
        {"locations": "random_inhibited", "inhibition_radius": "rho", "strength": 1.0},
        "random centres with inhibition of return",
    ),
    # The ceiling of placement: centres on ground-truth digits, a digit of a class not yet
    # visited while one is left (`oracle_locations`).
    "oracle": ({"placements": "oracle"}, "centres on digits of distinct classes (ground truth)"),
}
# Paired differences reported with bootstrap intervals: (row a, row b), mAP of a minus b.
DIFFERENCES = (
    ("policy", "batch_mean_state"),
    ("policy", "zero_state"),
    ("policy", "other_image_state"),
    ("policy", "first_state_held"),
    ("policy", "inhibition_off"),
    ("policy", "random"),
    ("policy", "random_inhibited"),
    ("oracle", "policy"),
)
# Rows whose chosen cells are compared with the policy's ("visited cells kept").
STATE_ROWS = (
    "zero_state",
    "other_image_state",
    "batch_mean_state",
    "first_state_held",
    "inhibition_off",
    "inhibition_on",
)


@contextlib.contextmanager
def altered_policy(model: keras.Model, **attributes):
    """Temporarily sets the agent's `LocationPolicy` settings (`locations`,
    `inhibition_radius`), weights unchanged. Functions traced inside see the change; trace new
    ones after leaving."""
    policy = model.agent.policy
    saved = {name: getattr(policy, name) for name in attributes}
    for name, value in attributes.items():
        setattr(policy, name, value)
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(policy, name, value)


def placements_for(model: keras.Model, rho: float) -> dict:
    """The `PLACEMENTS` that apply to `model`, with "rho" filled in: {name: attributes}.
    A model that draws random centres gets the random rows only; interventions on the state
    need a learned head; inhibition rows need cells (a spatial or query head)."""
    policy = model.agent.policy
    learned = policy.locations == "policy" and not policy.uniform
    chosen = {}
    for name, (attributes, _) in PLACEMENTS.items():
        random_row = attributes.get("locations", "policy") != "policy"
        inhibition_row = name.startswith("inhibition")
        if not learned and not random_row and name != "oracle":
            continue
        if inhibition_row and (
            not policy.reads_cells or (name == "inhibition_off") != policy.inhibits()
        ):
            continue
        chosen[name] = {k: rho if v == "rho" else v for k, v in attributes.items()}
    return chosen


def oracle_locations(boxes: np.ndarray, classes: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """Centres [B, T, 2] (view frame, whole view) of ground-truth digits: at each step a digit
    of a class not yet visited while one is left, else one not yet visited, drawn at random
    (`boxes` [B, n, 4] and `classes` [B, n] padded by -1)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros([len(boxes), steps, 2], np.float32)
    for b, (image_boxes, image_classes) in enumerate(zip(boxes, classes)):
        real = np.flatnonzero(image_classes >= 0)
        order, seen, used = rng.permutation(real), set(), []
        for _ in range(steps):
            fresh = [i for i in order if i not in used and image_classes[i] not in seen]
            left = fresh or [i for i in order if i not in used] or list(order)
            used.append(left[0])
            seen.add(image_classes[left[0]])
        box = image_boxes[used]
        centres[b] = (box[:, :2] + box[:, 2:]) - 1.0  # 2 * centre - 1
    return centres


def attended(
    model: keras.Model,
    batches: tf.data.Dataset,
    oracle_seed: int | None = None,
    override: dict | None = None,
) -> dict:
    """One view, locations at the policy's mode (or random under `altered_policy`; under a
    `PolicyOverride` of the fields `override` gives; at `oracle_locations` with `oracle_seed`):
    {"probs" [N, C], "labels" [N, C], "boxes" [N, T, k, 4], "locations" [N, T, 2], "objects":
    list of [n, 4], "classes": list of [n]}."""

    @tf.function(reduce_retracing=True)
    def forward(images, forced):
        change = PolicyOverride(**(override or {}), placements=forced)
        out = model(images, training=False, override=change)
        return out["probs"], out["boxes"][:, 0], out["locations"][:, 0]

    collected = {k: [] for k in ("probs", "labels", "boxes", "locations", "objects", "classes")}
    for images, labels, objects, classes in batches:
        forced = None
        if oracle_seed is not None:
            steps = model.agent.num_steps
            forced = oracle_locations(objects.numpy(), classes.numpy(), steps, oracle_seed)
            oracle_seed += 1
        probs, boxes, locations = (x.numpy() for x in forward(images, forced))
        for key, value in (
            ("probs", probs),
            ("labels", labels.numpy()),
            ("boxes", boxes),
            ("locations", locations),
        ):
            collected[key].append(value)
        collected["objects"] += [o[o[:, 0] >= 0] for o in objects.numpy()]
        collected["classes"] += [c[c >= 0] for c in classes.numpy()]
    lists = ("objects", "classes")
    return {k: v if k in lists else np.concatenate(v) for k, v in collected.items()}


def visited_cells(locations: np.ndarray, grid: int) -> np.ndarray:
    """The G x G grid cell nearest each location [..., 2] (view frame): [...] cell indices."""
    index = np.clip(np.rint((np.asarray(locations) + 1.0) / 2.0 * (grid - 1)), 0, grid - 1)
    return (index[..., 0] * grid + index[..., 1]).astype(np.int64)


def cells_kept(found: dict, reference: dict, grid: int) -> dict:
    """Share of (image, step) whose cell is the reference's, overall and per step; and as sets
    (order ignored): the share of the reference's distinct cells of an image also visited."""
    cells, reference_cells = (
        visited_cells(x["locations"], grid) for x in (found, reference)
    )  # fmt: skip
    same = cells == reference_cells
    as_sets = [len(set(a) & set(b)) / len(set(b)) for a, b in zip(cells, reference_cells)]
    return {
        "cells_kept": float(same.mean()),
        "step_cells_kept": same.mean(axis=0).tolist(),
        "cells_kept_as_sets": float(np.mean(as_sets)),
    }


def classes_found(found: dict) -> dict:
    """Per image, the share of its classes with a digit that holds some step's centre (one
    view, the whole image): mean, and the share of images with every class found."""
    shares = []
    for locations, boxes, classes in zip(found["locations"], found["objects"], found["classes"]):
        if not len(classes):
            continue
        centres = (locations[:, None] + 1.0) / 2.0  # [T, 1, 2] in the image
        inside = np.all((centres >= boxes[None, :, :2]) & (centres <= boxes[None, :, 2:]), -1)
        shares.append(len(set(classes[inside.any(0)].tolist())) / len(set(classes.tolist())))
    return {
        "classes_found": float(np.mean(shares)),
        "all_classes_found": float(np.mean(np.asarray(shares) >= 1.0)),
    }


def paired_bootstrap(a: dict, b: dict, resamples: int = 1000, seed: int = 0) -> dict:
    """mAP of `a` minus `b` (the same images, `attended` outputs) and its 95 % interval over
    images resampled with replacement (the same resample for both)."""
    labels = a["labels"]

    def mean_ap(scores, rows):
        return float(np.nanmean(metrics.average_precision(scores[rows], labels[rows])))

    everything = np.arange(len(labels))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, len(labels), len(labels))
        draws.append(mean_ap(a["probs"], rows) - mean_ap(b["probs"], rows))
    low, high = np.percentile(draws, [2.5, 97.5])
    difference = mean_ap(a["probs"], everything) - mean_ap(b["probs"], everything)
    return {"difference": difference, "low": float(low), "high": float(high)}


def placement_scores(found: dict, eval_config) -> dict:
    """mAP, discovery per step and over the union of steps, consecutive-step distance."""
    ignore = np.zeros_like(found["labels"], bool)
    measured = scoring.compute_metrics(found["probs"], found["labels"], ignore, eval_config)
    boxes, objects = found["boxes"], found["objects"]
    steps = [discovery_rates(list(boxes[:, t]), objects) for t in range(boxes.shape[1])]
    union = discovery_rates([b.reshape(-1, 4) for b in boxes], objects)
    distance = np.linalg.norm(np.diff(found["locations"], axis=1), axis=-1).mean(axis=0)
    return {
        "mAP": measured["mAP"],
        "CF1": measured["CF1"],
        "OF1": measured["OF1"],
        "step_centre_inside": [s["centre_inside"] for s in steps],
        "step_iou50": [s["iou50"] for s in steps],
        "union_centre_inside": union["centre_inside"],
        "union_iou50": union["iou50"],
        "step_distance": distance.tolist(),
        "objects": union["objects"],
        "images": int(len(found["probs"])),
        **classes_found(found),
    }


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
    for images, labels, *_ in batches:
        _, r_top, r_own = sampled_terms(model, images, labels, samples)
        top_n.append(r_top.numpy())
        own.append(r_own.numpy())
    top_n, own = np.concatenate(top_n), np.concatenate(own)
    return {
        "samples": samples,
        "top_n_varies": float(np.mean(top_n.max(1) > top_n.min(1))),
        "top_n_always_1": float(np.mean(top_n.min(1) >= 1.0)),
        "reward": model.reward,
        "reward_varies": float(np.mean(own.max(1) - own.min(1) > 1e-6)),
        "reward_within_image_std": float(np.mean(own.std(1))),
    }


def gradient_snr(model: keras.Model, batches: tf.data.Dataset) -> dict | None:
    """Signal-to-noise of the REINFORCE gradient of the location head over batches as trained
    (the model's own K trajectories and advantage); None without a learned policy."""
    agent = model.agent
    policy = agent.policy
    variables = [
        v
        for layer in (policy.location_head, policy.loc_memory)
        if layer is not None
        for v in layer.trainable_variables
    ]
    if not variables or agent.policy.locations != "policy":
        return None
    grads = []
    for images, labels, *_ in batches:
        with tf.GradientTape() as tape:
            terms, _, _ = sampled_terms(model, images, labels, model.trajectories)
            surrogate = tf.reduce_mean(terms["reinforce_loss"])
        grads.append(
            np.concatenate([g.numpy().ravel() for g in tape.gradient(surrogate, variables)])
        )
    grads = np.stack(grads)
    mean = grads.mean(axis=0)
    noise = np.sqrt(np.mean(np.sum((grads - mean) ** 2, axis=1)))
    return {
        "batches": len(grads),
        "batch_size": int(images.shape[0]),
        "snr": float(np.linalg.norm(mean) / max(noise, 1e-12)),
    }


def placement_rows(model: keras.Model, config: ExperimentConfig, batches, rho: float):
    """`placement_scores` of every placement in `placements_for`, the state rows with their
    `cells_kept` against the policy's cells; and the `DIFFERENCES` that both rows have, with
    `paired_bootstrap` intervals: (rows, differences)."""
    rows, found = {}, {}
    for name, attributes in placements_for(model, rho).items():
        keras.utils.set_random_seed(config.train.seed)
        oracle = attributes.pop("placements", None) is not None
        override = {k: attributes.pop(k) for k in ("state", "strength") if k in attributes}
        with altered_policy(model, **attributes):
            seed = config.train.seed if oracle else None
            found[name] = attended(model, batches, seed, override)
        rows[name] = placement_scores(found[name], config.eval)
        if name in STATE_ROWS and "policy" in found:
            rows[name].update(cells_kept(found[name], found["policy"], model.agent.policy.loc_grid))
    differences = {
        f"{a} - {b}": paired_bootstrap(found[a], found[b], seed=config.train.seed)
        for a, b in DIFFERENCES
        if a in found and b in found
    }
    return rows, differences


def policy_report(
    model: keras.Model,
    config: ExperimentConfig,
    max_images: int = 512,
    samples: int = 8,
    batch_size: int = 32,
    rho: float = 0.3,
) -> dict:
    """Everything in the module docstring, as one JSON-ready dict; `rho` is the inhibition
    radius of the rows that add inhibition of return (a model's own where it has one)."""
    batches = digit_test_batches(config, max_images, batch_size)
    rho = model.agent.policy.inhibition_radius or rho
    rows, differences = placement_rows(model, config, batches, rho)
    first = rows.get("policy", rows["random"])
    keras.utils.set_random_seed(config.train.seed)
    return {
        "model": {
            "locations": model.agent.policy.locations,
            "trajectories": model.trajectories,
            "reward": model.reward,
            "loc_head": model.agent.policy.loc_head,
            "policy_state": model.agent.policy.policy_state,
        },
        "images": first["images"],
        "inhibition_radius": rho,
        "placements": rows,
        "differences": differences,
        "policy": first,
        "random": rows["random"],
        "learned_minus_random_mAP": first["mAP"] - rows["random"]["mAP"],
        "learned_minus_random_inhibited_mAP": first["mAP"] - rows["random_inhibited"]["mAP"],
        "reward_variation": reward_variation(model, batches, samples),
        "gradient": gradient_snr(model, batches),
    }


def markdown(report: dict) -> str:
    """The report as markdown tables (percent, distances in the [-1, 1] view frame)."""
    rows = [
        "| placement (same weights) | mAP | classes found per image | centre inside, per step | "
        "centre inside, union | IoU >= 0.5, union | consecutive distance | visited cells kept "
        "(steps / sets) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["placements"].items():
        steps = " / ".join(f"{100 * v:.1f}" for v in r["step_centre_inside"])
        dist = " / ".join(f"{v:.2f}" for v in r["step_distance"])
        kept = (
            f"{100 * r['cells_kept']:.0f} % / {100 * r['cells_kept_as_sets']:.0f} %"
            if "cells_kept" in r
            else "-"
        )
        rows.append(
            f"| {name}: {PLACEMENTS[name][1]} | {100 * r['mAP']:.2f} | "
            f"{100 * r['classes_found']:.1f} | {steps} | "
            f"{100 * r['union_centre_inside']:.1f} | {100 * r['union_iou50']:.1f} | "
            f"{dist} | {kept} |"
        )
    rows += [
        "",
        "| mAP difference (same images) | points | 95 % bootstrap interval |",
        "|---|---|---|",
    ]
    for name, d in report.get("differences", {}).items():
        rows.append(
            f"| {name} | {100 * d['difference']:+.2f} | "
            f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] |"
        )
    v, g = report["reward_variation"], report["gradient"]
    rows.append("")
    rows.append(
        f"Learned − random mAP: {100 * report['learned_minus_random_mAP']:+.2f}; learned "
        f"− random with inhibition (rho {report['inhibition_radius']}): "
        f"{100 * report['learned_minus_random_inhibited_mAP']:+.2f}. "
        f"Over {v['samples']} sampled trajectories, the top-n reward varies on "
        f"{100 * v['top_n_varies']:.0f} % of images (always 1 on "
        f"{100 * v['top_n_always_1']:.0f} %); the model's reward ({v['reward']}) varies "
        f"on {100 * v['reward_varies']:.0f} %."
        + (
            f" Policy-gradient batch SNR {g['snr']:.2f} ({g['batches']} batches of "
            f"{g['batch_size']})."
            if g
            else ""
        )
    )
    return "\n".join(rows)


def comparison_markdown(reports: dict) -> str:
    """One row per named report (e.g. runs that differ by one setting), percent."""
    rows = [
        "| run | mAP | same weights, random centres | learned − random | centre inside per "
        "step (mean) | union: centre inside / IoU >= 0.5 | consecutive distance (mean) | "
        "policy-gradient SNR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        p, g = r["policy"], r["gradient"]
        snr = "-" if g is None else f"{g['snr']:.2f}"
        rows.append(
            f"| {name} | {100 * p['mAP']:.1f} | {100 * r['random']['mAP']:.1f} | "
            f"{100 * r['learned_minus_random_mAP']:+.1f} | "
            f"{100 * np.mean(p['step_centre_inside']):.1f} | "
            f"{100 * p['union_centre_inside']:.1f} / {100 * p['union_iou50']:.1f} | "
            f"{np.mean(p['step_distance']):.2f} | {snr} |"
        )
    return "\n".join(rows)
