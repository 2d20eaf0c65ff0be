"""Sentiment metrics of CMU-MOSI and CMU-MOSEI, with both binary-accuracy conventions.

Public repositories report the binary accuracy Acc2 in two ways, and papers rarely say which:

- ``acc2_nonnegative``: positive means score >= 0, over all clips (zero labels count as positive);
- ``acc2_nonzero``: positive means score > 0, over the clips whose label is not 0 (MAG-BERT's).

Each comes with its weighted F1. ``acc7`` rounds the scores, clipped to [-3, 3], to the seven
integers and compares classes. ``mae`` is the mean absolute error and ``corr`` the Pearson
correlation of predictions and labels.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def sentiment_metrics(prediction, label) -> dict[str, float]:
    """Return acc7, both acc2 variants and their weighted F1, mae and corr of score predictions."""
    prediction, label = np.asarray(prediction, dtype=float).reshape(-1), np.asarray(label, dtype=float).reshape(-1)
    if prediction.shape != label.shape or prediction.size == 0:
        raise ValueError(f"prediction and label need the same non-zero length, got {prediction.size} and {label.size}")
    classes = np.round(np.clip(prediction, -3, 3)), np.round(np.clip(label, -3, 3))
    nonzero = label != 0
    positive_nonneg = prediction >= 0, label >= 0
    positive_nonzero = prediction[nonzero] > 0, label[nonzero] > 0
    corr = float(np.corrcoef(prediction, label)[0, 1]) if prediction.std() > 0 and label.std() > 0 else float("nan")
    return {
        "acc7": float(np.mean(classes[0] == classes[1])),
        "acc2_nonnegative": float(np.mean(positive_nonneg[0] == positive_nonneg[1])),
        "f1_nonnegative": float(f1_score(positive_nonneg[1], positive_nonneg[0], average="weighted")),
        "acc2_nonzero": float(np.mean(positive_nonzero[0] == positive_nonzero[1])) if nonzero.any() else float("nan"),
        "f1_nonzero": (float(f1_score(positive_nonzero[1], positive_nonzero[0], average="weighted"))
                       if nonzero.any() else float("nan")),
        "mae": float(np.mean(np.abs(prediction - label))),
        "corr": corr,
    }
