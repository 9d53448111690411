"""Metrics as pure functions over label arrays (scikit-learn does the counting)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy, macro-F1 and the 10x10 confusion matrix (rows: true digit, columns: predicted)."""
    classes = list(range(10))
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
    }


def nll(scores: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under softmax(scores / temperature)."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017): sum over bins of |accuracy - confidence| * share."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += abs(correct[in_bin].mean() - confidence[in_bin].mean()) * in_bin.mean()
    return float(total)


def fit_temperature(scores: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature that minimises NLL: golden-section search over log T (NLL is unimodal in it)."""
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(scores, labels, np.exp(c)), nll(scores, labels, np.exp(d))
    for _ in range(60):  # the bracket shrinks by 0.618 a step: 60 steps reach float precision in log T
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(scores, labels, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(scores, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


def flag_stats(probabilities: np.ndarray, labels: np.ndarray, flag_below: float, confident: float = 0.9) -> dict:
    """What an "unsure" flag (top probability below `flag_below`) does: the share of wrong answers it catches, of
    right answers it flags, and of all answers that are wrong with probability >= `confident`."""
    top = probabilities.max(1)
    wrong = probabilities.argmax(1) != labels
    flagged = top < flag_below
    return {
        "wrong": float(wrong.mean()),
        "caught": float(flagged[wrong].mean()) if wrong.any() else 1.0,
        "flagged_right": float(flagged[~wrong].mean()) if (~wrong).any() else 0.0,
        "confident_wrong": float((wrong & (top >= confident)).mean()),
    }


# The "unsure" rule the export applies (a choice on dev: training.realworld.CHOICES). The goal is 80% of wrong answers
# caught for <= 10% of right ones flagged on inputs never seen; fitted at exactly 80% on dev's few dozen wrong answers,
# the flag caught less on the validation pools, so it aims higher and keeps 2 points of the budget spare
# (reports/flag/rule.md).
UNSURE_CATCH = 0.9
UNSURE_BUDGET = 0.08


def flag_threshold(
    probabilities: np.ndarray, labels: np.ndarray, catch: float = UNSURE_CATCH, budget: float = UNSURE_BUDGET
) -> float:
    """The lowest "unsure" threshold whose flag catches `catch` of the wrong answers; if that flags more than `budget`
    of the right ones, the highest threshold that stays within `budget` instead."""
    top = probabilities.max(1)
    wrong = probabilities.argmax(1) != labels
    if not wrong.any():
        return 0.0
    # Flagged means top < threshold: to catch a share of the wrong answers, pass that quantile of their tops.
    needed = float(np.quantile(top[wrong], catch)) + 1e-9
    right = np.sort(top[~wrong])
    k = int(budget * len(right))  # flagging right[:k] is at most `budget` of them
    if k >= len(right):  # the budget covers every right answer (or there are none)
        allowed = 1.0 + 1e-9
    else:
        # Midway to the next right answer: the probabilities served are recomputed in other precision, and a line
        # drawn exactly at right[k] flagged it too when it came out a hair lower (81 of 1,000 for a budget of 80).
        allowed = float(right[k]) if k == 0 else float((right[k - 1] + right[k]) / 2)
    return min(needed, allowed)
