"""Decision thresholds for binary tasks, and how (im)balanced the classes are.

Thresholds are chosen on the validation split and applied to the test split, so the test numbers
stay honest. Class 1 is the positive class; a threshold ``t`` predicts 1 when ``P(1) >= t``.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve


def threshold_by_f1(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    """The threshold with the highest F1 of the positive class."""
    precision, recall, thresholds = precision_recall_curve(y_true, p_positive)
    # The curve's last point (recall 0) has no threshold; F1 is 0 where precision + recall is 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    return float(thresholds[int(np.argmax(f1))])


def threshold_by_cost(
    y_true: np.ndarray, p_positive: np.ndarray, cost: Sequence[Sequence[float]]
) -> tuple[float, float]:
    """The threshold with the lowest mean cost, and that cost.

    ``cost[true][predicted]``: ``[[tn, fp], [fn, tp]]``, the price of each outcome per row.
    """
    fpr, tpr, thresholds = roc_curve(y_true, p_positive, drop_intermediate=False)
    positives = float(np.sum(y_true == 1))
    negatives = float(len(y_true) - positives)
    c = np.asarray(cost, dtype=np.float64)
    tp, fp = tpr * positives, fpr * negatives
    total = c[0, 0] * (negatives - fp) + c[0, 1] * fp + c[1, 0] * (positives - tp) + c[1, 1] * tp
    # roc_curve's first threshold is +inf (predict nothing positive): keep it finite for reports.
    best = int(np.argmin(total))
    return float(min(thresholds[best], 1.0)), float(total[best] / len(y_true))


def class_balance(labels: Mapping[str, np.ndarray], num_classes: int) -> dict[str, dict]:
    """Per split: the count and share of each class, and the majority/minority ratio."""
    out = {}
    for split, y in labels.items():
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)
        smallest = counts.min()
        out[split] = {
            "counts": counts.tolist(),
            "shares": (counts / max(counts.sum(), 1)).tolist(),
            "imbalance_ratio": float(counts.max() / smallest) if smallest else float("inf"),
        }
    return out
