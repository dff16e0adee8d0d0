"""Task metrics from arrays of true targets and predicted probabilities or values.

Every number comes from torchmetrics or scikit-learn, so it means what their documentation
says. The top-line metrics (accuracy; MSE, MAE, R²) come from the task's own ``MetricCollection``
(``tasks/``), the one the trainer logs during training, so that the two always agree.
Classification takes probabilities of shape ``(n, classes)``; a binary task (two classes) also
gets the positive-class metrics (class 1 is positive) at a decision threshold. Regression takes
values in the target's own units.
"""

import numpy as np
import torch
import torchmetrics.functional as tmf
import torchmetrics.functional.classification as tmc
from sklearn.dummy import DummyClassifier
from sklearn.metrics import log_loss

from ..tasks import classification, regression


def _computed(collection, preds: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """A task's ``MetricCollection`` on one whole split."""
    collection.update(preds, target)
    return dict(collection.compute())


def predicted_labels(probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The predicted classes: argmax, or ``P(class 1) >= threshold`` for a binary task."""
    if threshold is not None and probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).astype(np.int64)
    return probs.argmax(axis=1)


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Accuracy, precision/recall/F1 (micro, macro, weighted), AUROC, AUPRC, rates, kappa, Jaccard,
    log loss.

    With more than two classes the rates (TPR, TNR, FPR, FNR) are macro averages over classes,
    one class against the rest; AUROC and AUPRC are one-vs-rest macro averages.
    """
    num_classes = probs.shape[1]
    target = torch.as_tensor(y_true, dtype=torch.long)
    preds = torch.as_tensor(predicted_labels(probs, threshold))
    scores = torch.as_tensor(probs, dtype=torch.float32)
    kw = {"num_classes": num_classes}
    out = _computed(classification.metric_collection(num_classes), preds, target)  # accuracy
    for average in ("micro", "macro", "weighted"):
        out[f"precision_{average}"] = tmc.multiclass_precision(preds, target, average=average, **kw)
        out[f"recall_{average}"] = tmc.multiclass_recall(preds, target, average=average, **kw)
        out[f"f1_{average}"] = tmc.multiclass_f1_score(preds, target, average=average, **kw)
    out["cohen_kappa"] = tmc.multiclass_cohen_kappa(preds, target, **kw)
    out["jaccard_macro"] = tmc.multiclass_jaccard_index(preds, target, average="macro", **kw)
    if num_classes == 2:
        positive = scores[:, 1]
        out["precision"] = tmc.binary_precision(preds, target)
        out["recall"] = tmc.binary_recall(preds, target)
        out["f1"] = tmc.binary_f1_score(preds, target)
        out["tpr"] = out["recall"]
        out["tnr"] = tmc.binary_specificity(preds, target)
        out["auroc"] = tmc.binary_auroc(positive, target)
        out["auprc"] = tmc.binary_average_precision(positive, target)
    else:
        out["tpr"] = out["recall_macro"]
        out["tnr"] = tmc.multiclass_specificity(preds, target, average="macro", **kw)
        out["auroc"] = tmc.multiclass_auroc(scores, target, average="macro", **kw)
        out["auprc"] = tmc.multiclass_average_precision(scores, target, average="macro", **kw)
    result = {name: float(value) for name, value in out.items()}
    result["fpr"] = 1.0 - result["tnr"]
    result["fnr"] = 1.0 - result["tpr"]
    # float64 and renormalised: float32 softmax rows may miss 1 by an ulp, which sklearn rejects.
    p64 = probs.astype(np.float64)
    result["log_loss"] = float(
        log_loss(y_true, p64 / p64.sum(axis=1, keepdims=True), labels=list(range(num_classes)))
    )
    return result


def confusion_matrix(y_true: np.ndarray, probs: np.ndarray, threshold: float | None = None):
    """Counts, rows the true class and columns the predicted one."""
    preds = torch.as_tensor(predicted_labels(probs, threshold))
    target = torch.as_tensor(y_true, dtype=torch.long)
    return tmc.multiclass_confusion_matrix(preds, target, num_classes=probs.shape[1]).numpy()


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, huber_delta: float = 1.0
) -> dict[str, float]:
    """MSE, RMSE, MAE, R², MAPE, Huber, and MSLE when no value is negative (else undefined)."""
    target = torch.as_tensor(np.ravel(y_true), dtype=torch.float64)
    preds = torch.as_tensor(np.ravel(y_pred), dtype=torch.float64)
    out = _computed(regression.metric_collection(), preds, target)  # mse, mae, r2
    out |= {
        "rmse": out["mse"].sqrt(),
        "mape": tmf.mean_absolute_percentage_error(preds, target),
        "huber": torch.nn.functional.huber_loss(preds, target, delta=huber_delta),
    }
    if bool((target >= 0).all() and (preds >= 0).all()):
        out["msle"] = tmf.mean_squared_log_error(preds, target)
    return {name: float(value) for name, value in out.items()}


def classification_baselines(
    y_train: np.ndarray, n: int, num_classes: int, seed: int
) -> dict[str, np.ndarray]:
    """Probabilities of the simplest models: the class prior (majority class) and random guesses.

    ``majority`` predicts the training split's class frequencies for every row (its argmax is the
    majority class); ``random`` draws each row's class from those frequencies.
    """
    x_train, x = np.zeros((len(y_train), 1)), np.zeros((n, 1))
    out = {}
    for name, strategy in (("majority", "prior"), ("random", "stratified")):
        dummy = DummyClassifier(strategy=strategy, random_state=seed).fit(x_train, y_train)
        probs = np.zeros((n, num_classes))
        probs[:, dummy.classes_] = dummy.predict_proba(x)
        out[name] = probs
    return out


def bag_of_words_baseline(
    train_texts: list[str],
    y_train: np.ndarray,
    texts: list[str],
    num_classes: int,
    ngrams: int = 2,
    min_df: int = 2,
    c: float = 10.0,
) -> np.ndarray:
    """Probabilities of the classic text baseline: TF-IDF of words (1- to ``ngrams``-grams seen
    in at least ``min_df`` training texts, sublinear term frequency) and a logistic regression
    (inverse regularisation ``c``), fitted on the training texts, on ``texts``.

    A model that does not beat it learns nothing that word counts do not already give.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, int(ngrams)), min_df=int(min_df), sublinear_tf=True),
        LogisticRegression(C=float(c), max_iter=1000),
    ).fit(list(train_texts), np.asarray(y_train))
    probs = np.zeros((len(texts), num_classes))
    probs[:, model.classes_] = model.predict_proba(list(texts))  # classes absent from training: 0
    return probs


def regression_baselines(y_train: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """Predictions of the simplest models: the training mean, and random training targets."""
    y_train = np.ravel(y_train)
    rng = np.random.default_rng(seed)
    return {"mean": np.full(n, y_train.mean()), "random": rng.choice(y_train, size=n)}
