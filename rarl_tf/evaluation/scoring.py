"""Scoring a dataset with a trained model, and the paper's metrics on the scores.

Shared by training (final report), `rarl_tf.evaluate`, the exporters' accuracy check and tools.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from rarl_tf.config.experiment import EvalConfig, ExperimentConfig
from rarl_tf.data import pipeline
from rarl_tf.data.splits import load_split
from rarl_tf.evaluation import metrics
from rarl_tf.model.views import views_for


def model_scorer(model: keras.Model, views: np.ndarray) -> Callable[[tf.Tensor], np.ndarray]:
    """A function images [B, N, N, 3] -> probabilities [B, C], averaged over `views` [V, 4]."""

    @tf.function(reduce_retracing=True, autograph=False)
    def score(images):
        return model(images, training=False, views=views)["probs"]

    return lambda images: score(images).numpy()


class Scored(NamedTuple):
    """A split's scores, and the images that could not be scored."""

    scores: np.ndarray  # [N, C] float32
    labels: np.ndarray  # [N, C] float32
    ignore: np.ndarray  # [N, C] bool
    skipped: list[str]  # ids (`pipeline.with_ids`) of the images that did not decode


def score_dataset(
    score: Callable[[tf.Tensor], np.ndarray],
    batches: tf.data.Dataset,
    num_images: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Runs `score` over (images, labels, ignore, ids) batches with a progress bar.

    Returns:
      (scores [N, C] float32, labels [N, C] float32, ignore [N, C] bool, ids of the N images).
    """
    bar = keras.utils.Progbar(num_images, unit_name="image")
    scores, labels, ignore, ids = [], [], [], []
    for images, batch_labels, batch_ignore, batch_ids in batches:
        scores.append(score(images))
        labels.append(batch_labels.numpy())
        ignore.append(batch_ignore.numpy())
        ids += [i.decode("utf-8", "replace") for i in batch_ids.numpy()]
        bar.add(len(batch_labels))
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(ignore), ids


def compute_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    ignore: np.ndarray,
    config: EvalConfig,
    class_names: Iterable[str] = (),
) -> dict:
    """mAP, per-class AP and CP/CR/CF1/OP/OR/OF1 under the protocol in `config` (fractions)."""
    ap = metrics.average_precision(scores, labels, ignore=ignore, voc07=config.voc07_ap)
    prf = metrics.multilabel_prf(
        scores, labels, top_k=config.top_k, threshold=config.threshold, ignore=ignore
    )
    names = list(class_names) or [str(i) for i in range(len(ap))]
    result = {
        "mAP": float(np.nanmean(ap)),
        **{k: float(v) for k, v in prf.items()},
        "num_images": int(len(scores)),
        "views": config.views,
        "protocol": {
            "ap": "voc07_11point" if config.voc07_ap else "sklearn_area",
            "top_k": config.top_k,
            "threshold": config.threshold,
            "cf1": "2*CP*CR/(CP+CR)",
        },
        "per_class_ap": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, ap)},
    }
    return result


def evaluate_scores(
    scores_fn: Callable[[tf.Tensor], np.ndarray],
    config: ExperimentConfig,
    examples: tf.data.Dataset | None = None,
) -> Scored:
    """Scores the evaluation split of `config`'s dataset with `scores_fn`; images that do not
    decode (or are over --max_pixels) are left out, and named in `skipped`. `examples`: that
    split where the caller has loaded it already (`splits.Splits.eval`), else it is loaded."""
    if examples is None:
        examples = load_split(config, "eval")
    counter = pipeline.SkipCounter()
    batches = pipeline.eval_batches(
        examples,
        config.model.image_size,
        config.eval.batch_size,
        counter,
        max_pixels=config.data.max_pixels,
        ids=True,
    )
    num = int(examples.cardinality())
    scores, labels, ignore, scored_ids = score_dataset(scores_fn, batches, num if num > 0 else None)
    skipped = []
    # The counter is exact once the split is read to its end, also where its length is unknown
    # (a filtered split): the split is read a second time, ids only (no image decoded), to name
    # the images left out, and only when there are some.
    if counter.undecodable:
        every = [
            i.decode("utf-8", "replace")
            for i in pipeline.with_ids(examples).map(lambda ex: ex["id"]).as_numpy_iterator()
        ]
        scored = set(scored_ids)
        skipped = [i for i in every if i not in scored]
    if skipped:
        shown = ", ".join(skipped[:20]) + (", ..." if len(skipped) > 20 else "")
        print(
            f"warning: {len(skipped)} of {len(skipped) + len(scores)} evaluation images could "
            f"not be decoded (or are over --max_pixels) and were left out: {shown}",
            file=sys.stderr,
            flush=True,
        )
    return Scored(scores, labels, ignore, skipped)


def with_skipped(results: dict, skipped: list[str]) -> dict:
    """`results` (metrics) with how many images were left out and which."""
    return {**results, "skipped_images": len(skipped), "skipped": list(skipped)}


def eval_views(config: ExperimentConfig) -> np.ndarray:
    """The view boxes [V, 4] `config.eval.views` asks for, at the model's N and m."""
    return views_for(config.eval.views, config.model.image_size, config.model.crop_margin)


def evaluate(
    model: keras.Model, config: ExperimentConfig, examples: tf.data.Dataset | None = None
) -> dict:
    """The paper's metrics of `model` on the evaluation split (`examples` if the caller has it
    loaded), with `config.eval`'s views."""
    scores, labels, ignore, skipped = evaluate_scores(
        model_scorer(model, eval_views(config)), config, examples
    )
    return with_skipped(
        compute_metrics(scores, labels, ignore, config.eval, config.class_names), skipped
    )
