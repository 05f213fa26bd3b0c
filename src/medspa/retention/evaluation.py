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
    frame_sha256,
    history_sha256,
    labelled_mask,
    no_show_labels,
    train_logistic_baseline,
    train_noshow,
)
from medspa.retention.returns import (
    TRAINING_HORIZON_DAYS,
    ReturnsForecast,
    fit_bgnbd,
    fit_pareto_nbd,
    forecast_bgnbd,
    forecast_blend,
    forecast_pareto_nbd,
    holdout_visits,
    summarize,
)

AGE_BANDS: Final = (
    (0, 18, "0-17"),
    (18, 35, "18-34"),
    (35, 50, "35-49"),
    (50, 65, "50-64"),
    (65, 200, "65+"),
)
_MIN_SUBGROUP_ROWS: Final = 30


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
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
    report_path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    return report


RETURN_MODELS: Final = ("bgnbd", "pareto_nbd", "blend")


def _forecast(
    name: str, transactions: pd.DataFrame, *, calibration_end: date, horizon_days: float
) -> ReturnsForecast:
    if name == "bgnbd":
        return forecast_bgnbd(transactions, calibration_end=calibration_end, horizon_days=horizon_days)
    if name == "pareto_nbd":
        return forecast_pareto_nbd(transactions, calibration_end=calibration_end, horizon_days=horizon_days)
    if name == "blend":
        return forecast_blend(transactions, calibration_end=calibration_end, horizon_days=horizon_days)
    raise ValueError(f"unknown return model {name!r}; choose from {', '.join(RETURN_MODELS)}")


def backtest_returns(
    transactions: pd.DataFrame, *, calibration_end: date, horizon_days: int = TRAINING_HORIZON_DAYS
) -> dict[str, dict[str, float]]:
    """Every candidate fitted on visits up to `horizon_days` before `calibration_end` and scored on the
    visits of the last `horizon_days` of the calibration period (nothing after `calibration_end` is read)."""
    known = transactions[transactions["date"] <= pd.Timestamp(calibration_end)]
    cut = (pd.Timestamp(calibration_end) - pd.Timedelta(days=horizon_days)).date()
    actual = holdout_visits(known, calibration_end=cut, holdout_end=calibration_end)
    results: dict[str, dict[str, float]] = {}
    for name in RETURN_MODELS:
        try:
            forecast = _forecast(name, known, calibration_end=cut, horizon_days=float(horizon_days))
        except ValueError:  # the period is too short for this candidate: it cannot be chosen
            results[name] = {"mae": float("nan")}
            continue
        observed = actual.reindex(forecast.client_ids, fill_value=0.0).to_numpy()
        results[name] = return_metrics(forecast.expected_visits, forecast.probability_return, observed)
    return results


def choose_return_model(backtest: dict[str, dict[str, float]]) -> str:
    """The candidate with the lowest per-client MAE in the internal backtest (BG/NBD on ties or failures)."""
    scored = [(result.get("mae", float("nan")), name) for name, result in backtest.items()]
    valid = [(mae, name) for mae, name in scored if math.isfinite(mae)]
    return min(valid)[1] if valid else "bgnbd"


def evaluate_returns(
    transactions_path: Path,
    *,
    calibration_end: date,
    holdout_end: date,
    predictions_path: Path,
    report_path: Path,
    model: str = "auto",
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Fit on visits up to `calibration_end`, predict visits in (calibration_end, holdout_end] for every
    client seen by then, write `client_id,expected_visits,probability_return` and the report.

    `model="auto"` chooses among BG/NBD, Pareto/NBD and the covariate blend by an internal backtest inside
    the calibration period; the holdout metrics of every candidate are reported beside the chosen one.
    """
    started = time.monotonic()
    read = read_visit_transactions(transactions_path, skip_bad_rows=skip_bad_rows)
    transactions = read.frame
    summary = summarize(transactions, calibration_end=calibration_end)
    if summary.frame.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    horizon = float((pd.Timestamp(holdout_end) - pd.Timestamp(calibration_end)).days)
    backtest = backtest_returns(transactions, calibration_end=calibration_end)
    chosen = choose_return_model(backtest) if model == "auto" else model
    forecasts = {
        name: _forecast(name, transactions, calibration_end=calibration_end, horizon_days=horizon)
        for name in RETURN_MODELS
    }
    forecast = forecasts[chosen]
    write_rows(
        predictions_path,
        ("client_id", "expected_visits", "probability_return"),
        zip(
            forecast.client_ids,
            (f"{v:.6f}" for v in forecast.expected_visits),
            (f"{p:.6f}" for p in forecast.probability_return),
            strict=True,
        ),
    )
    actual = holdout_visits(transactions, calibration_end=calibration_end, holdout_end=holdout_end)
    holdout = {
        name: return_metrics(
            f.expected_visits, f.probability_return, actual.reindex(f.client_ids, fill_value=0.0).to_numpy()
        )
        for name, f in forecasts.items()
    }
    report: dict[str, Any] = {
        "kind": "returns",
        "transactions": str(transactions_path),
        "data_sha256": frame_sha256(transactions),
        "skipped_rows": read.skipped_rows,
        "calibration_end": str(calibration_end),
        "holdout_end": str(holdout_end),
        "horizon_days": horizon,
        "clients": len(forecast.client_ids),
        "model_option": model,
        "chosen_model": chosen,
        "selection": {"rule": "lowest MAE in the internal backtest", "backtest": backtest},
        "parameters": {
            "bgnbd": fit_bgnbd(summary).__dict__,
            "pareto_nbd": fit_pareto_nbd(summary).__dict__,
        },
        "holdout": holdout,
        "seconds": round(time.monotonic() - started, 1),
    }
    report_path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    return report


def return_metrics(
    expected: npt.NDArray[np.float64], probability: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]
) -> dict[str, float]:
    """Aggregate relative error of the visit total, per-client MAE, ROC AUC of "any visit" (by the
    probability and by the expected visits), and the mean probability beside the share that returned."""
    total = float(actual.sum())
    return {
        "mean_probability_return": float(probability.mean()),
        "share_returned": float((actual > 0).mean()),
        "predicted_visits": float(expected.sum()),
        "actual_visits": total,
        "aggregate_error": (float(expected.sum()) - total) / total if total else float("nan"),
        "mae": float(np.mean(np.abs(expected - actual))),
        "roc_auc": metrics.roc_auc(probability, (actual > 0).astype(float)),
        "roc_auc_expected_visits": metrics.roc_auc(expected, (actual > 0).astype(float)),
    }
