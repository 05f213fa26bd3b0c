"""Metrics for probability forecasts: ROC AUC, PR AUC, Brier score, expected calibration error, reliability.

All functions take `probabilities` in [0, 1] and binary `labels` (1 = the event, e.g. a no-show) of the
same length, and are deterministic. ROC AUC, average precision, the Brier score and the logistic (Platt)
fit are scikit-learn's; the reliability bins and the ECE are computed here, over equal-width bins, as the
acceptance check does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
_EPSILON: Final = 1e-6


def logit(p: npt.ArrayLike) -> FloatArray:
    """log(p / (1 - p)), with p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, dtype=float), _EPSILON, 1 - _EPSILON)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def sigmoid(z: npt.ArrayLike) -> FloatArray:
    """1 / (1 + exp(-z)), without overflow for large |z|."""
    from scipy.special import expit

    return np.asarray(expit(np.asarray(z, dtype=float)), dtype=np.float64)


def fit_logistic_curve(x: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float]:
    """(slope, intercept) of P(label = 1) = sigmoid(slope * x + intercept) by unregularized maximum
    likelihood (scikit-learn's logistic regression). Raises `ValueError` if it does not converge (e.g.
    separable data).

    When every x is the same (a model that scores everyone alike, as a booster can on a small history)
    the slope cannot be told from the intercept: the answer is then slope 0 and the observed rate."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x_values = np.asarray(x, dtype=float)
    y = np.asarray(labels, dtype=float)
    if len(x_values) and float(np.ptp(x_values)) < 1e-12:
        rate = float(np.clip(y.mean(), _EPSILON, 1 - _EPSILON))
        return 0.0, math.log(rate / (1 - rate))
    if len(set(y.tolist())) < 2:
        raise ValueError("the logistic curve needs both outcomes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            model = LogisticRegression(C=np.inf, solver="newton-cholesky", max_iter=200, tol=1e-10).fit(
                x_values[:, None], y
            )
        except ConvergenceWarning:
            raise ValueError("the logistic curve did not converge (separable outcomes?)") from None
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not (math.isfinite(slope) and math.isfinite(intercept)) or abs(slope) > 1e3:
        raise ValueError("the logistic curve did not converge (separable outcomes?)")
    return slope, intercept


def _arrays(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"probabilities {p.shape} and labels {y.shape} must be 1-d and equal in length")
    return p, y


def roc_auc(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn; ties count one half, as the rank-sum statistic does);
    NaN if one class."""
    from sklearn.metrics import roc_auc_score

    p, y = _arrays(probabilities, labels)
    if len(set(y.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def pr_auc(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Average precision (scikit-learn: precision at each distinct threshold, weighted by the recall it
    adds); NaN without positives."""
    from sklearn.metrics import average_precision_score

    p, y = _arrays(probabilities, labels)
    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, p))


def brier(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean squared difference between probability and outcome (0 is perfect; scikit-learn)."""
    from sklearn.metrics import brier_score_loss

    p, y = _arrays(probabilities, labels)
    return float(brier_score_loss(y, p)) if len(set(y.tolist())) > 1 else float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    """One equal-width probability bin: [lower, upper), its row count, mean forecast and observed rate."""

    lower: float
    upper: float
    count: int
    mean_probability: float
    observed_rate: float


def reliability(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, bins: int = 10
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] (p = 1 falls in the last bin); empty bins are left out."""
    p, y = _arrays(probabilities, labels)
    index = np.minimum((p * bins).astype(int), bins - 1)
    result: list[ReliabilityBin] = []
    for k in range(bins):
        mask = index == k
        if mask.any():
            result.append(
                ReliabilityBin(
                    lower=k / bins,
                    upper=(k + 1) / bins,
                    count=int(mask.sum()),
                    mean_probability=float(p[mask].mean()),
                    observed_rate=float(y[mask].mean()),
                )
            )
    return result


def expected_calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, *, bins: int = 10
) -> float:
    """ECE: the count-weighted mean |mean forecast - observed rate| over equal-width bins (0 is perfect)."""
    p, _ = _arrays(probabilities, labels)
    if len(p) == 0:
        return float("nan")
    return float(
        sum(
            b.count * abs(b.mean_probability - b.observed_rate)
            for b in reliability(probabilities, labels, bins=bins)
        )
        / len(p)
    )


def summary(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, float]:
    """The standard set: rows, event rate, mean forecast, ROC AUC, PR AUC, Brier, ECE (10 bins)."""
    p, y = _arrays(probabilities, labels)
    return {
        "rows": float(len(p)),
        "event_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_probability": float(p.mean()) if len(p) else float("nan"),
        "roc_auc": roc_auc(p, y),
        "pr_auc": pr_auc(p, y),
        "brier": brier(p, y) if len(p) else float("nan"),
        "ece": expected_calibration_error(p, y),
    }


def plot_reliability(curves: dict[str, list[ReliabilityBin]], path: Path, *, title: str) -> None:
    """Write a reliability diagram (PNG) with one line per named model and the diagonal for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True, constrained_layout=True
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for name, bins in curves.items():
        top.plot(
            [b.mean_probability for b in bins],
            [b.observed_rate for b in bins],
            marker="o",
            linewidth=1.5,
            label=name,
        )
        bottom.bar(
            [(b.lower + b.upper) / 2 for b in bins],
            [b.count for b in bins],
            width=0.09,
            alpha=0.5,
            label=name,
        )
    top.set_ylabel("observed rate")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("rows")
    figure.savefig(path, dpi=110)
    plt.close(figure)
