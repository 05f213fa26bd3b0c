"""Evaluation runs behind `medspa models evaluate`: train on the past, predict a later period, measure.

Both functions read a portable file, fit only on what precedes the cut, write one prediction per
test row / client, and write a JSON report (metrics of the model and of its baseline, subgroups,
training window, data hash). Metrics are computed here from the same labels the acceptance check reads.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from medspa.retention import metrics
from medspa.retention.features import build_features, find_booking_leaks, find_outcome_leaks
from medspa.retention.formats import read_appointment_history, read_visit_transactions, write_rows
from medspa.retention.noshow import (
    NoShowModel,
    frame_sha256,
    history_sha256,
    labelled_mask,
    no_show_labels,
    refit_noshow,
    train_logistic_baseline,
    train_noshow,
)
from medspa.retention.return_models import (
    CANDIDATES,
    BaseFits,
    FittedReturnModel,
    fit_return_model,
    return_metrics,
    select_return_model,
)
from medspa.retention.returns import holdout_visits, summarize, visits

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


SEEDS: Final = (7, 1, 2, 3, 4)


def predict_refitting_daily(
    model: NoShowModel,
    history: pd.DataFrame,
    features: pd.DataFrame,
    rows: npt.NDArray[np.bool_],
    *,
    refit: bool = True,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(calibrated, raw) scores of the `rows` (a mask over `history`), each day's rows by `model` refitted
    on every outcome known before that day (`noshow.refit_noshow`; the calibration map stays the
    trained model's), as a clinic whose model is refitted every night would be served. Days up to the
    model's training end use the model itself; with `refit=False`, every day does."""
    calibrated = np.zeros(int(rows.sum()), dtype=np.float64)
    raw = np.zeros(int(rows.sum()), dtype=np.float64)
    day = history["starts_at"].dt.normalize().to_numpy()[rows]
    selected = features[rows]
    trained_until = pd.Timestamp(model.training_window["train_end_exclusive"])
    for current in np.unique(day):
        on_day = day == current
        scorer = model
        if refit and pd.Timestamp(current) > trained_until:
            scorer = refit_noshow(model, history, train_end=pd.Timestamp(current).date(), features=features)
        raw[on_day] = scorer.raw_scores(selected[on_day])
        calibrated[on_day] = scorer.calibrate(raw[on_day], selected[on_day])
    return calibrated, raw


def _other_seeds(
    history: pd.DataFrame,
    features: pd.DataFrame,
    test_from: date,
    test_rows: npt.NDArray[np.bool_],
    served: NoShowModel,
    served_probabilities: npt.NDArray[np.float64],
    refit: bool,
) -> list[dict[str, Any]]:
    """Test ROC AUC and ECE of the same training (and daily refits) with each of `SEEDS` (the served
    model's seed first), so that a figure is not one seed's luck. Only the served seed's predictions are
    written."""
    scored = labelled_mask(history) & test_rows
    labels = no_show_labels(history)[scored]
    results: list[dict[str, Any]] = []
    for seed in SEEDS:
        if seed == served.config.seed:
            model = served
            probabilities = served_probabilities[labelled_mask(history)[test_rows]]
        else:
            model = train_noshow(
                history, train_end=test_from, config=replace(served.config, seed=seed), features=features
            )
            probabilities, _ = predict_refitting_daily(model, history, features, scored, refit=refit)
        results.append(
            {
                "seed": seed,
                "roc_auc": metrics.roc_auc(probabilities, labels),
                "ece": metrics.expected_calibration_error(probabilities, labels),
                "calibration_method": model.calibration_method,
            }
        )
    return results


def evaluate_noshow(
    history_path: Path,
    *,
    test_from: date,
    predictions_path: Path,
    report_path: Path,
    plot_path: Path,
    skip_bad_rows: bool = False,
    refit_daily: bool = True,
) -> dict[str, Any]:
    """Train before `test_from`, write `appointment_id,probability` for every appointment from that day on,
    and write the report (and the reliability plot). Returns the report as a dict.

    With `refit_daily` (the default, as a clinic is served) each test day is scored by the model's
    booster refitted on every outcome known before that day, with the trained calibration map
    (`predict_refitting_daily`); without it, by the model trained before `test_from` alone."""
    started = time.monotonic()
    read = read_appointment_history(history_path, skip_bad_rows=skip_bad_rows)
    history = read.frame
    start_day = history["starts_at"].dt.normalize()
    test_rows = (start_day >= pd.Timestamp(test_from)).to_numpy()
    if not test_rows.any():
        raise ValueError(f"no appointments on or after {test_from}")
    if not (labelled_mask(history) & test_rows).any():
        raise ValueError(
            f"no appointment on or after {test_from} was attended or missed ({int(test_rows.sum())} "
            f"cancelled or still to come): there is no outcome to score; choose an earlier --test-from"
        )
    features = build_features(history)
    model = train_noshow(history, train_end=test_from, features=features)
    probabilities, raw_scores = predict_refitting_daily(
        model, history, features, test_rows, refit=refit_daily
    )
    seeds = _other_seeds(history, features, test_from, test_rows, model, probabilities, refit_daily)
    baseline = train_logistic_baseline(history, features, train_end=test_from)
    write_rows(
        predictions_path,
        ("appointment_id", "probability"),
        zip(history.loc[test_rows, "appointment_id"], (f"{p:.6f}" for p in probabilities), strict=True),
    )
    scored = labelled_mask(history)[test_rows]
    labels = no_show_labels(history)[test_rows][scored]
    model_p = probabilities[scored]
    test_features = features[test_rows][scored]
    raw_p = raw_scores[scored]
    baseline_p = baseline.predict_features(test_features)
    training_history = history[(start_day < pd.Timestamp(test_from)).to_numpy()]
    leaks = find_outcome_leaks(training_history)
    booking_leaks = find_booking_leaks(training_history)
    report: dict[str, Any] = {
        "kind": "noshow",
        "history": str(history_path),
        "data_sha256": history_sha256(history),
        "skipped_rows": read.skipped_rows,
        "test_from": str(test_from),
        "training_window": model.training_window,
        "refit_daily": refit_daily,
        "test": {
            "rows_predicted": int(test_rows.sum()),
            "rows_scored": int(scored.sum()),
            "model": metrics.summary(model_p, labels),
            "model_uncalibrated": metrics.summary(raw_p, labels),
            "logistic_baseline": metrics.summary(baseline_p, labels),
            "seeds": seeds,
            "roc_auc_mean_over_seeds": float(np.mean([s["roc_auc"] for s in seeds])),
            "ece_mean_over_seeds": float(np.mean([s["ece"] for s in seeds])),
        },
        "calibration": {
            "method": model.calibration_method,
            "platt_slope": model.platt_slope,
            "platt_intercept": model.platt_intercept,
            "reference_rate": model.reference_rate,
            "reliability": [b.__dict__ for b in metrics.reliability(model_p, labels)],
        },
        "subgroups": {},
        "leak_guard": {
            "checked_rows": len(training_history),
            "leaking_features": leaks,
            "features_seeing_later_bookings": booking_leaks,
        },
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

    `model="auto"` takes what a rolling backtest inside the calibration period chooses
    (`return_models.select_return_model`: the expected visits of a candidate or of their stack, P(return)
    of the candidate that ranks best); when it cannot be fitted on the whole period, the next candidate,
    down to BG/NBD, and the report says why (`fallbacks`). The holdout figures of
    the chosen model are the report's `holdout`; those of every candidate sit apart, in `appendix`, and
    play no part in the choice.
    """
    started = time.monotonic()
    read = read_visit_transactions(transactions_path, skip_bad_rows=skip_bad_rows)
    transactions = read.frame
    known = transactions[transactions["date"].dt.normalize() <= pd.Timestamp(calibration_end)]
    if known.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    horizon = float((pd.Timestamp(holdout_end) - pd.Timestamp(calibration_end)).days)
    selection = select_return_model(known, calibration_end=calibration_end, horizon_days=horizon, model=model)
    chosen, backtest = selection.model, selection.backtest
    forecast = chosen.forecast(known, as_of=calibration_end, horizon_days=horizon)
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
    observed = actual.reindex(forecast.client_ids, fill_value=0.0).to_numpy()
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
        "chosen_model": chosen.name,
        "model": _without_boosters(chosen.to_payload()),
        "fallbacks": selection.fallbacks,
        "selection": {
            "rule": "expected visits: lowest mean Poisson deviance over the rolling backtest's windows, a "
            "single candidate or their stack (scored leave one window out); P(return): the candidate with "
            "the highest mean ROC AUC over the windows (calibration only)",
            "chosen_by": selection.chosen_by,
            "backtest": backtest,
        },
        "holdout": return_metrics(forecast.expected_visits, forecast.probability_return, observed)
        | {"monthly": monthly_curve(chosen, transactions, calibration_end, holdout_end)},
        "appendix": {
            "note": "every candidate's holdout figures, computed after the choice and not used for it",
            "holdout_by_candidate": _appendix(
                selection.fits, transactions, calibration_end, holdout_end, horizon
            ),
        },
        "seconds": 0.0,
    }
    report["seconds"] = round(time.monotonic() - started, 1)
    report_path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    return report


def _without_boosters(payload: dict[str, Any]) -> dict[str, Any]:
    """A return model's payload for a report: each booster's text replaced by whether there is one."""
    return payload | {
        "booster": payload.get("booster") is not None,
        "components": [
            {"weight": c["weight"], "model": _without_boosters(c["model"])}
            for c in payload.get("components", [])
        ],
    }


def _appendix(
    fits: BaseFits, transactions: pd.DataFrame, calibration_end: date, holdout_end: date, horizon: float
) -> dict[str, dict[str, Any]]:
    actual = holdout_visits(transactions, calibration_end=calibration_end, holdout_end=holdout_end)
    result: dict[str, dict[str, Any]] = {}
    for name in CANDIDATES:
        try:
            fitted = fit_return_model(name, fits, calibration_end=calibration_end, horizon_days=horizon)
            forecast = fitted.forecast(fits.transactions, as_of=calibration_end, horizon_days=horizon)
        except ValueError as error:
            result[name] = {"refused": str(error)}
            continue
        observed = actual.reindex(forecast.client_ids, fill_value=0.0).to_numpy()
        result[name] = return_metrics(forecast.expected_visits, forecast.probability_return, observed) | {
            "monthly": monthly_curve(fitted, transactions, calibration_end, holdout_end)
        }
    return result


def monthly_curve(
    fitted: FittedReturnModel, transactions: pd.DataFrame, calibration_end: date, holdout_end: date
) -> dict[str, Any]:
    """Forecast and actual visits per calendar month of the holdout (the forecast of a month is the
    difference of the cumulative forecasts at its ends), and the curve's error: the sum of the monthly
    absolute differences over the actual total."""
    known = transactions[transactions["date"].dt.normalize() <= pd.Timestamp(calibration_end)]
    ends = pd.date_range(pd.Timestamp(calibration_end), pd.Timestamp(holdout_end), freq="ME")
    edges = sorted({pd.Timestamp(calibration_end), *ends, pd.Timestamp(holdout_end)})
    cumulative = [0.0]
    for edge in edges[1:]:
        days = float((edge - edges[0]).days)
        forecast = fitted.forecast(known, as_of=calibration_end, horizon_days=days)
        cumulative.append(float(forecast.expected_visits.sum()))
    clients = set(summarize(known, calibration_end=calibration_end).frame.index.astype(str))
    visit_days = visits(transactions[transactions["client_id"].astype(str).isin(clients)])
    months: list[dict[str, Any]] = []
    for (low, high), (before, after) in zip(
        itertools.pairwise(edges), itertools.pairwise(cumulative), strict=True
    ):
        observed = int(((visit_days["day"] > low) & (visit_days["day"] <= high)).sum())
        months.append({"to": str(high.date()), "forecast": after - before, "actual": observed})
    total = sum(m["actual"] for m in months)
    error = sum(abs(m["forecast"] - m["actual"]) for m in months) / total if total else float("nan")
    return {"months": months, "error": error}


def evaluate_churn(
    data_path: Path,
    *,
    predictions_path: Path,
    report_path: Path,
    folds: int = 5,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Cross-validate the time-to-churn candidates on a `client-survival` file (k folds by client),
    write the chosen one's out-of-fold predictions for every client as
    `client_id,risk,survival_3,survival_6,survival_12` and the report (concordance of every candidate
    per fold, the calibration of the survival probabilities, refused covariates)."""
    from medspa.retention.formats import read_client_survival
    from medspa.retention.survival import SURVIVAL_TIMES, calibration_table, cross_validate

    started = time.monotonic()
    read, unit = read_client_survival(data_path, skip_bad_rows=skip_bad_rows)
    frame = read.frame
    result = cross_validate(frame, folds=folds)
    chosen = result.chosen
    survival = result.survival[chosen]
    write_rows(
        predictions_path,
        ("client_id", *("risk",), *(f"survival_{t}" for t in SURVIVAL_TIMES)),
        (
            (client, f"{risk:.6f}", *(f"{p:.6f}" for p in row))
            for client, risk, row in zip(frame["client_id"], result.risk[chosen], survival, strict=True)
        ),
    )
    report: dict[str, Any] = {
        "kind": "churn",
        "data": str(data_path),
        "data_sha256": frame_sha256(frame),
        "skipped_rows": read.skipped_rows,
        "tenure_unit": unit,
        "clients": len(frame),
        "churned": int(frame["event"].sum()),
        "folds": folds,
        "covariates": result.covariates,
        "refused_covariates": result.refused,
        "chosen_model": chosen,
        "selection": {
            "rule": "highest mean concordance over the cross-validation folds",
            "concordance": {
                name: {"folds": scores, "mean": float(np.mean(scores))}
                for name, scores in result.concordance.items()
            },
        },
        "calibration": [
            calibration_table(survival[:, i], frame, float(t)) for i, t in enumerate(SURVIVAL_TIMES)
        ],
        "seconds": 0.0,
    }
    report["seconds"] = round(time.monotonic() - started, 1)
    report_path.write_text(json.dumps(json_safe(report), indent=2) + "\n")
    return report
