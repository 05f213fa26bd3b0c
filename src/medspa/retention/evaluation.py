"""Evaluation runs behind `medspa models evaluate`: train on the past, predict a later period, measure.

Both functions read a portable file, fit only on what precedes the cut, write one prediction per
test row / client, and write a JSON report (metrics of the model and of its baseline, subgroups,
training window, data hash). Metrics are computed here from the same labels the acceptance check reads.
"""

from __future__ import annotations

import json
import math
import time
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from medspa.retention import metrics
from medspa.retention.features import build_features, find_outcome_leaks
from medspa.retention.formats import read_appointment_history, read_visit_transactions, write_rows
from medspa.retention.noshow import (
    history_sha256,
    labelled_mask,
    no_show_labels,
    train_logistic_baseline,
    train_noshow,
)
from medspa.retention.returns import fit_bgnbd, holdout_visits, summarize

AGE_BANDS: Final = (
    (0, 18, "0-17"),
    (18, 35, "18-34"),
    (35, 50, "35-49"),
    (50, 65, "50-64"),
    (65, 200, "65+"),
)
_MIN_SUBGROUP_ROWS: Final = 30


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def age_band(ages: pd.Series) -> pd.Series:
    """Age in years -> band label (missing age -> "unknown")."""
    labels = pd.Series("unknown", index=ages.index, dtype=object)
    for low, high, label in AGE_BANDS:
        labels[(ages >= low) & (ages < high)] = label
    return labels


def subgroup_metrics(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], groups: pd.Series
) -> list[dict[str, Any]]:
    """Metrics per group value (groups with fewer than 30 rows are reported without AUC/ECE)."""
    rows: list[dict[str, Any]] = []
    values = groups.to_numpy()
    for value in sorted(set(values.tolist()), key=str):
        mask = values == value
        entry: dict[str, Any] = {"group": str(value), "rows": int(mask.sum())}
        if mask.sum() >= _MIN_SUBGROUP_ROWS:
            entry.update(metrics.summary(probabilities[mask], labels[mask]))
        else:
            entry["note"] = f"fewer than {_MIN_SUBGROUP_ROWS} rows: not scored"
        rows.append(entry)
    return rows


def evaluate_noshow(
    history_path: Path,
    *,
    test_from: date,
    predictions_path: Path,
    report_path: Path,
    plot_path: Path,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Train before `test_from`, write `appointment_id,probability` for every appointment from that day on,
    and write the report (and the reliability plot). Returns the report as a dict."""
    started = time.monotonic()
    read = read_appointment_history(history_path, skip_bad_rows=skip_bad_rows)
    history = read.frame
    start_day = history["starts_at"].dt.normalize()
    test_rows = (start_day >= pd.Timestamp(test_from)).to_numpy()
    if not test_rows.any():
        raise ValueError(f"no appointments on or after {test_from}")
    features = build_features(history)
    model = train_noshow(history, train_end=test_from, features=features)
    baseline = train_logistic_baseline(history, features, train_end=test_from)
    probabilities = model.predict_features(features[test_rows])
    write_rows(
        predictions_path,
        ("appointment_id", "probability"),
        zip(history.loc[test_rows, "appointment_id"], (f"{p:.6f}" for p in probabilities), strict=True),
    )
    scored = labelled_mask(history)[test_rows]
    labels = no_show_labels(history)[test_rows][scored]
    model_p = probabilities[scored]
    test_features = features[test_rows][scored]
    raw_p = model.raw_scores(test_features)
    baseline_p = baseline.predict_features(test_features)
    training_history = history[(start_day < pd.Timestamp(test_from)).to_numpy()]
    leaks = find_outcome_leaks(training_history)
    report: dict[str, Any] = {
        "kind": "noshow",
        "history": str(history_path),
        "data_sha256": history_sha256(history),
        "skipped_rows": read.skipped_rows,
        "test_from": str(test_from),
        "training_window": model.training_window,
        "test": {
            "rows_predicted": int(test_rows.sum()),
            "rows_scored": int(scored.sum()),
            "model": metrics.summary(model_p, labels),
            "model_uncalibrated": metrics.summary(raw_p, labels),
            "logistic_baseline": metrics.summary(baseline_p, labels),
        },
        "calibration": {
            "platt_slope": model.platt_slope,
            "platt_intercept": model.platt_intercept,
            "reference_rate": model.reference_rate,
            "reliability": [b.__dict__ for b in metrics.reliability(model_p, labels)],
        },
        "subgroups": {},
        "leak_guard": {"checked_rows": len(training_history), "leaking_features": leaks},
        "seconds": round(time.monotonic() - started, 1),
    }
    test_history = history[test_rows][scored]
    if "x_age" in history.columns:
        report["subgroups"]["age_band"] = subgroup_metrics(model_p, labels, age_band(test_history["x_age"]))
    if "x_sex" in history.columns:
        report["subgroups"]["sex"] = subgroup_metrics(
            model_p, labels, test_history["x_sex"].fillna("unknown")
        )
    metrics.plot_reliability(
        {
            "LightGBM, calibrated": metrics.reliability(model_p, labels),
            "logistic baseline": metrics.reliability(baseline_p, labels),
        },
        plot_path,
        title=f"No-show reliability, appointments from {test_from} ({int(scored.sum())} rows)",
    )
    report["plot"] = str(plot_path)
    model.metrics = report["test"]["model"]
    report_path.write_text(json.dumps(_clean(report), indent=2) + "\n")
    return report


def evaluate_returns(
    transactions_path: Path,
    *,
    calibration_end: date,
    holdout_end: date,
    predictions_path: Path,
    report_path: Path,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Fit on visits up to `calibration_end`, predict visits in (calibration_end, holdout_end] for every
    client seen by then, write `client_id,expected_visits,probability_return` and the report."""
    started = time.monotonic()
    read = read_visit_transactions(transactions_path, skip_bad_rows=skip_bad_rows)
    transactions = read.frame
    summary = summarize(transactions, calibration_end=calibration_end)
    if summary.frame.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    horizon = float((pd.Timestamp(holdout_end) - pd.Timestamp(calibration_end)).days)
    model = fit_bgnbd(summary)
    x, t_x, age = summary.frequency, summary.recency, summary.age
    expected = model.expected_visits(horizon, x, t_x, age)
    returning = model.probability_return(horizon, x, t_x, age)
    write_rows(
        predictions_path,
        ("client_id", "expected_visits", "probability_return"),
        zip(
            summary.frame.index,
            (f"{v:.6f}" for v in expected),
            (f"{p:.6f}" for p in returning),
            strict=True,
        ),
    )
    actual = (
        holdout_visits(transactions, calibration_end=calibration_end, holdout_end=holdout_end)
        .reindex(summary.frame.index, fill_value=0.0)
        .to_numpy()
    )
    chosen = "bgnbd"
    report: dict[str, Any] = {
        "kind": "returns",
        "transactions": str(transactions_path),
        "skipped_rows": read.skipped_rows,
        "calibration_end": str(calibration_end),
        "holdout_end": str(holdout_end),
        "horizon_days": horizon,
        "clients": len(summary.frame),
        "chosen_model": chosen,
        "parameters": {"bgnbd": model.__dict__},
        "holdout": {"bgnbd": return_metrics(expected, returning, actual)},
        "seconds": round(time.monotonic() - started, 1),
    }
    report_path.write_text(json.dumps(_clean(report), indent=2) + "\n")
    return report


def return_metrics(
    expected: npt.NDArray[np.float64], probability: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]
) -> dict[str, float]:
    """Aggregate relative error of the visit total, per-client MAE and ROC AUC of "any visit"."""
    total = float(actual.sum())
    return {
        "predicted_visits": float(expected.sum()),
        "actual_visits": total,
        "aggregate_error": (float(expected.sum()) - total) / total if total else float("nan"),
        "mae": float(np.mean(np.abs(expected - actual))),
        "roc_auc": metrics.roc_auc(probability, (actual > 0).astype(float)),
        "roc_auc_expected_visits": metrics.roc_auc(expected, (actual > 0).astype(float)),
    }
