"""Calibration: do predicted probabilities match observed frequencies, and can one number fix it?

ECE is torchmetrics' ``CalibrationError`` (top-label, equal-width bins). Temperature scaling
divides the logits by one scalar ``T`` fitted on the validation split (Guo et al., 2017): it
changes confidence, never the predicted class.
"""

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import softmax
from torchmetrics.functional.classification import multiclass_calibration_error


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    return float(
        multiclass_calibration_error(
            torch.as_tensor(probs, dtype=torch.float32),
            torch.as_tensor(y_true, dtype=torch.long),
            num_classes=probs.shape[1],
            n_bins=n_bins,
            norm="l1",
        )
    )


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict[str, list]:
    """Per confidence bin: its range, the rows in it, their mean confidence and their accuracy.

    The bins are the ones ECE uses, so the diagram shows what the number summarises.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins like torchmetrics': a confidence of exactly 1.0 falls in the last one.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / count
    return {
        "edges": edges.tolist(),
        "count": count.tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": accuracy.tolist(),
    }


# The temperatures searched; a fit on a bound means the loss wants an even more extreme one.
TEMPERATURE_BOUNDS = (0.1, 10.0)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature that minimises the cross-entropy of ``logits / T`` (on validation data)."""
    x = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(y_true, dtype=torch.long)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(x / np.exp(log_t), y))

    # Searching log T keeps T positive and treats 0.5 and 2 alike.
    low, high = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded")
    return float(np.exp(result.x))


def temperature_is_usable(temperature: float, logits: np.ndarray, y_true: np.ndarray) -> bool:
    """False when the fit means nothing: every validation row is right, or T is on a bound.

    When the model gets every validation row right, sharpening always lowers their loss, so the
    fit runs towards T = 0 whatever the model's calibration on new data.
    """
    if np.all(np.asarray(logits).argmax(axis=1) == y_true):
        return False
    low, high = TEMPERATURE_BOUNDS
    return low * 1.05 < temperature < high / 1.05


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def confidence_curve(
    y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None = None
) -> dict[str, list]:
    """Accuracy and coverage of the predictions whose confidence reaches each threshold.

    Coverage is the share of rows the model would answer; accuracy is measured on those rows
    only (NaN where none is left). It tells where a confidence cut-off makes predictions usable.
    """
    thresholds = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    coverage, accuracy = [], []
    for t in thresholds:
        kept = confidence >= t
        coverage.append(float(kept.mean()))
        accuracy.append(float(correct[kept].mean()) if kept.any() else float("nan"))
    return {"threshold": thresholds.tolist(), "coverage": coverage, "accuracy": accuracy}


def threshold_for_accuracy(curve: dict[str, list], target: float) -> tuple[float, float] | None:
    """The lowest confidence threshold whose accuracy reaches ``target``, and its coverage."""
    for t, cov, acc in zip(curve["threshold"], curve["coverage"], curve["accuracy"], strict=True):
        if cov > 0 and acc >= target:
            return t, cov
    return None
