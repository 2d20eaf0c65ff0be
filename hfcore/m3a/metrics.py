"""Metrics of the M3A tasks and the trivial predictors that any result must beat.

Volatility: mean squared error. Price movement: F1 of the "up" class (label 1) and the
Matthews correlation coefficient, both from scikit-learn. A metric that is undefined counts
as 0: F1 without predicted or true positives, and MCC of a constant prediction.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def mse(target: np.ndarray, prediction: np.ndarray) -> float:
    target, prediction = np.asarray(target, dtype=float), np.asarray(prediction, dtype=float)
    if target.shape != prediction.shape:
        raise ValueError(f"target and prediction shapes differ: {target.shape} and {prediction.shape}")
    return float(np.mean((target - prediction) ** 2))


def movement_metrics(target: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """F1 of class 1, MCC and accuracy of 0/1 predictions."""
    target, predicted = np.asarray(target).astype(int), np.asarray(predicted).astype(int)
    if target.shape != predicted.shape:
        raise ValueError(f"target and prediction shapes differ: {target.shape} and {predicted.shape}")
    return {
        "f1": float(f1_score(target, predicted, pos_label=1, zero_division=0)),
        "mcc": float(matthews_corrcoef(target, predicted)),
        "accuracy": float(accuracy_score(target, predicted)),
    }


def trivial_volatility_mse(train_target: np.ndarray, test_target: np.ndarray) -> float:
    """Test MSE of always predicting the training mean."""
    return mse(test_target, np.full(len(test_target), float(np.mean(train_target))))


def trivial_movement(train_target: np.ndarray, test_target: np.ndarray) -> dict[str, float]:
    """Metrics of always predicting the training split's majority direction."""
    majority = int(np.mean(train_target) >= 0.5)
    return movement_metrics(test_target, np.full(len(test_target), majority))
