"""Classification metrics in the results format: UA, WA, macro/weighted F1, per class, ROC-AUC,
confusion. All figures are fractions in 0..1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "summarise", "aggregate_folds"]


def classification_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                           *, classes: Sequence[str], proba: np.ndarray | None = None
                           ) -> dict[str, Any]:
    """Metrics of one fold.

    Parameters
    ----------
    y_true, y_pred
        Class indices into ``classes``.
    classes
        Class names, in index order.
    proba
        Optional ``(n, len(classes))`` probabilities for ROC-AUC (one-vs-rest, per class and macro).

    Returns
    -------
    dict
        ``ua`` (balanced accuracy = mean recall), ``wa`` (= ``accuracy``), ``macro_f1``,
        ``weighted_f1``, optional ``roc_auc``, and ``per_class`` / ``confusion`` / ``n``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    idx = np.arange(len(classes))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    present = s > 0
    acc = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    out: dict[str, Any] = {
        "ua": float(np.mean(r[present])) if present.any() else 0.0,
        "wa": acc,
        "accuracy": acc,
        "macro_f1": float(np.mean(f[present])) if present.any() else 0.0,
        "weighted_f1": float(np.sum(f * s) / max(1, s.sum())),
        "n": int(len(y_true)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, c in enumerate(classes)},
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        aucs = {}
        for i, c in enumerate(classes):
            pos = y_true == i
            if pos.any() and (~pos).any():
                aucs[c] = float(roc_auc_score(pos, proba[:, i]))
        if aucs:
            out["roc_auc"] = float(np.mean(list(aucs.values())))
            for c, a in aucs.items():
                out["per_class"][c]["roc_auc"] = a
    return out


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "per_fold"}`` of per-fold values (population std, as EmoBox)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()) if arr.size else float("nan"),
            "std": float(arr.std()) if arr.size else float("nan"),
            "per_fold": [float(v) for v in arr]}


_SCALAR = ("ua", "wa", "accuracy", "macro_f1", "weighted_f1", "roc_auc")


def aggregate_folds(folds: Sequence[dict[str, Any]], *, suffix: str = "") -> dict[str, Any]:
    """Combine per-fold :func:`classification_metrics` into the results format's pieces.

    Returns ``metrics`` (name + ``suffix`` -> summary), ``per_class`` (pooled over folds: support
    summed, precision/recall/F1 from the summed confusion matrix) and ``confusion`` (summed).
    """
    metrics = {f"{k}{suffix}": summarise([f[k] for f in folds])
               for k in _SCALAR if all(k in f for f in folds)}
    conf = np.sum([np.asarray(f["confusion"]) for f in folds], axis=0)
    classes = list(folds[0]["per_class"])
    tp = np.diag(conf).astype(float)
    support = conf.sum(axis=1)
    predicted = conf.sum(axis=0)
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    per_class = {}
    for i, c in enumerate(classes):
        per_class[c] = {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                        "support": int(support[i])}
        aucs = [f["per_class"][c]["roc_auc"] for f in folds if "roc_auc" in f["per_class"][c]]
        if aucs:
            per_class[c]["roc_auc"] = float(np.mean(aucs))
    return {"metrics": metrics, "per_class": per_class, "confusion": conf.tolist()}
