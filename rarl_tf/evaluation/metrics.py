"""Multi-label metrics of the paper, pure NumPy: per-class AP / mAP and CP, CR, CF1, OP, OR, OF1.

All values are fractions in [0, 1]. Inputs are scores [N, C] (higher = more confident), labels
[N, C] in {0, 1} and an optional `ignore` [N, C] bool of entries left out of every count (the
VOC devkit's "difficult"-only classes).
"""

from __future__ import annotations

import numpy as np

from rarl_tf.config.experiment import EvalConfig


def _check(scores, labels, ignore):
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [N, C], got shape {scores.shape}")
    if labels.shape != scores.shape:
        raise ValueError(f"labels must have the shape of scores {scores.shape}, got {labels.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if ignore is None:
        ignore = np.zeros(scores.shape, bool)
    ignore = np.asarray(ignore, bool)
    if ignore.shape != scores.shape:
        raise ValueError(f"ignore must have the shape of scores {scores.shape}, got {ignore.shape}")
    return scores, labels > 0, ignore


def _class_ap(scores: np.ndarray, positive: np.ndarray, voc07: bool) -> float:
    """AP of one class; NaN if it has no positive."""
    num_pos = positive.sum()
    if num_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    # One threshold per distinct score, as scikit-learn's precision_recall_curve.
    last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tp = np.cumsum(positive)[last]
    precision = tp / (last + 1)
    recall = tp / num_pos
    if voc07:
        return float(
            np.mean(
                [
                    precision[recall >= t].max() if np.any(recall >= t) else 0.0
                    for t in np.linspace(0, 1, 11)
                ]
            )
        )
    # Area under the step curve: sum of (R_n - R_{n-1}) P_n (sklearn's average_precision_score).
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(scores, labels, ignore=None, voc07: bool = False) -> np.ndarray:
    """Per-class average precision.

    Args:
      scores: [N, C] float.
      labels: [N, C], nonzero = positive.
      ignore: optional [N, C] bool; True entries are removed from that class's ranking.
      voc07: the 11-point interpolated AP of the VOC2007 devkit instead of the area under the
        precision-recall curve as scikit-learn defines it.

    Returns:
      [C] float64; NaN for a class with no (non-ignored) positive. mAP is np.nanmean of it.
    """
    scores, positive, ignore = _check(scores, labels, ignore)
    return np.array(
        [
            _class_ap(scores[~ignore[:, c], c], positive[~ignore[:, c], c], voc07)
            for c in range(scores.shape[1])
        ]
    )


def top_k_predictions(
    scores, top_k: int = EvalConfig.top_k, threshold: float = EvalConfig.threshold
) -> np.ndarray:
    """[N, C] bool: each image's top_k labels, less those scoring below `threshold`.

    Ties go to the lower class index (stable sort), so the choice is deterministic.
    """
    scores = np.asarray(scores, np.float64)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    chosen = np.zeros(scores.shape, bool)
    np.put_along_axis(chosen, order, True, axis=1)
    return chosen & (scores >= threshold)


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros(np.shape(num), np.float64), where=den > 0)


def _f1(p, r):
    return float(2 * p * r / (p + r)) if p + r > 0 else 0.0


def multilabel_prf(
    scores,
    labels,
    top_k: int = EvalConfig.top_k,
    threshold: float = EvalConfig.threshold,
    ignore=None,
) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 of the paper's eq. 11 (top-k labels per image, then threshold).

    With N_c[i], N_p[i], N_g[i] the numbers of images correctly predicted, predicted and
    ground-truth for label i: OP = sum N_c / sum N_p, OR = sum N_c / sum N_g,
    CP = mean_i N_c[i] / N_p[i], CR = mean_i N_c[i] / N_g[i], and F1 = 2 P R / (P + R) for both
    (CF1 from CP and CR, not the mean of per-class F1).

    0/0 conventions: a class never predicted counts precision 0 in CP, a class with no ground
    truth counts recall 0 in CR (both means run over all C classes, as in the CNN-RNN / ML-GCN
    evaluation code); an F1 with P + R = 0 is 0.

    Returns:
      dict of fractions with keys CP, CR, CF1, OP, OR, OF1.
    """
    scores, positive, ignore = _check(scores, labels, ignore)
    predicted = top_k_predictions(scores, top_k, threshold) & ~ignore
    positive = positive & ~ignore
    n_correct = (predicted & positive).sum(0).astype(np.float64)
    n_pred = predicted.sum(0).astype(np.float64)
    n_gt = positive.sum(0).astype(np.float64)
    op = float(_ratio(n_correct.sum(), n_pred.sum()))
    orec = float(_ratio(n_correct.sum(), n_gt.sum()))
    cp = float(_ratio(n_correct, n_pred).mean())
    cr = float(_ratio(n_correct, n_gt).mean())
    return {"CP": cp, "CR": cr, "CF1": _f1(cp, cr), "OP": op, "OR": orec, "OF1": _f1(op, orec)}
