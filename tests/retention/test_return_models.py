"""Return-time candidates, the rolling backtest that chooses one, and short histories."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medspa.cli import app
from medspa.retention.evaluation import evaluate_returns
from medspa.retention.return_models import (
    STACKED,
    BaseFits,
    FittedReturnModel,
    ReturnChoice,
    ShortHistoryError,
    backtest_windows,
    fit_choice,
    fit_return_model,
    poisson_deviance,
    rolling_backtest,
)
from medspa.retention.returns import ParetoNbd, fit_pareto_nbd, summarize
from tests.retention.factories import (
    simulate_clinic_visits,
    simulate_pareto_nbd_visits,
    simulate_regular_visits,
)

START = date(2026, 1, 5)


def test_poisson_deviance_on_a_hand_worked_example() -> None:
    # 2 (y log(y/mu) - (y - mu)): y=0, mu=0.5 -> 1.0; y=2, mu=1 -> 2 (2 log 2 - 1); y=1, mu=1 -> 0
    expected = (1.0 + 2 * (2 * np.log(2) - 1) + 0.0) / 3
    assert poisson_deviance([0.5, 1.0, 1.0], [0, 2, 1]) == pytest.approx(expected)
    # a zero forecast of a visit that happened is floored, not infinite
    assert np.isfinite(poisson_deviance([0.0], [1]))


def test_backtest_windows_extrapolate_as_far_as_the_task_does() -> None:
    # given a period of 272 days and a 273-day horizon (CDNOW's shape: a ratio of about 1)
    first, end = date(1997, 1, 1), date(1997, 9, 30)
    windows = backtest_windows(first, end, 273)
    # then three windows, each forecasting about as long as it was fitted on, the last ending at the end
    assert len(windows) == 3
    assert windows[-1][1] == end
    for origin, window_end in windows:
        assert abs((window_end - origin).days - (origin - first).days) <= 2
        assert window_end <= end
    # and for a 90-day horizon after two years, each window forecasts under 90 days, close to the end
    long_windows = backtest_windows(date(2024, 1, 1), date(2025, 12, 31), 90)
    assert all(60 <= (e - o).days <= 90 for o, e in long_windows)
    assert long_windows[-1][1] == date(2025, 12, 31)


def test_the_backtest_reads_nothing_after_the_calibration_end() -> None:
    # given a clinic's visits, and the same visits with a burst of visits after the calibration end
    visits = simulate_clinic_visits(days=100, clients=150, seed=4, after_days=0)
    end = START + timedelta(days=99)
    burst = pd.DataFrame(
        {"client_id": visits["client_id"].unique(), "date": pd.Timestamp(end) + pd.Timedelta(days=3)}
    ).assign(amount=50.0)
    candidates = ("bgnbd", "pareto_nbd")
    # when backtested on both
    plain = rolling_backtest(visits, calibration_end=end, horizon_days=90, candidates=candidates)
    with_future = rolling_backtest(
        pd.concat([visits, burst], ignore_index=True),
        calibration_end=end,
        horizon_days=90,
        candidates=candidates,
    )
    # then every figure is the same
    assert plain == with_future


def test_the_return_probability_follows_the_expected_visits() -> None:
    transactions = simulate_pareto_nbd_visits(
        ParetoNbd(r=0.6, alpha=20.0, s=0.8, beta=60.0), 3000, 400, seed=12
    )
    end = date(2020, 7, 19)
    fitted = fit_return_model("pareto_nbd", transactions, calibration_end=end, horizon_days=200)
    forecast = fitted.forecast(transactions, as_of=end, horizon_days=200)
    # the probability is increasing in the expected visits (it ranks clients the same way)
    assert fitted.curve is not None
    order = np.argsort(forecast.expected_visits, kind="mergesort")
    assert np.all(np.diff(forecast.probability_return[order]) >= 0)
    assert np.all((forecast.probability_return > 0) & (forecast.probability_return < 1))
    # and without the curve, the model's own P(return) is used
    own = FittedReturnModel(fitted.name, fitted.base, fitted.params, end).forecast(
        transactions, as_of=end, horizon_days=200
    )
    summary = summarize(transactions, calibration_end=end)
    np.testing.assert_allclose(
        own.probability_return,
        fit_pareto_nbd(summary).probability_return(200, summary.frequency, summary.recency, summary.age),
        rtol=1e-6,
    )


def test_one_probability_for_everyone_is_refused() -> None:
    transactions = simulate_clinic_visits(days=120, clients=200, seed=2)
    end = START + timedelta(days=119)
    fitted = fit_return_model("pareto_nbd", transactions, calibration_end=end, horizon_days=90)
    flat = FittedReturnModel(fitted.name, fitted.base, fitted.params, end, curve=(0.0, 3.0))
    with pytest.raises(ValueError, match=r"gives every client P\(return\) = 0.953; it tells no one apart"):
        flat.check_separates(transactions, as_of=end, horizon_days=90)
    fitted.check_separates(transactions, as_of=end, horizon_days=90)


@pytest.mark.parametrize("name", ["pareto_nbd_scaled", "boosted"])
def test_a_fitted_candidate_round_trips_through_its_payload(name: str) -> None:
    transactions = simulate_clinic_visits(days=200, clients=600, seed=3, after_days=0)
    end = START + timedelta(days=199)
    fitted = fit_return_model(name, transactions, calibration_end=end, horizon_days=90)
    restored = FittedReturnModel.from_payload(json.loads(json.dumps(fitted.to_payload())))
    before = fitted.forecast(transactions, as_of=end, horizon_days=90)
    after = restored.forecast(transactions, as_of=end, horizon_days=90)
    np.testing.assert_array_equal(before.expected_visits, after.expected_visits)
    np.testing.assert_array_equal(before.probability_return, after.probability_return)
    assert (fitted.scale != 1.0) == (name == "pareto_nbd_scaled")
    assert (fitted.booster is not None) == (name == "boosted")


def test_the_stack_is_scored_on_windows_its_weights_never_saw() -> None:
    # given a clinic's visits backtested on two candidates
    visits = simulate_clinic_visits(days=200, clients=600, seed=3, after_days=0)
    end = START + timedelta(days=199)
    backtest = rolling_backtest(
        visits, calibration_end=end, horizon_days=90, candidates=("bgnbd", "pareto_nbd")
    )
    stack = backtest["stack"]
    # then the stack's weights are convex, and each window is scored with weights fitted on the others
    assert sum(stack["weights"].values()) == pytest.approx(1.0)
    assert all(0.0 < w <= 1.0 for w in stack["weights"].values())
    assert [w["origin"] for w in stack["windows"]] == [w["origin"] for w in backtest["windows"]]
    assert stack["mean_poisson_deviance"] == pytest.approx(
        np.mean([w["poisson_deviance"] for w in stack["windows"]])
    )
    # and the probability's candidate is the one with the highest mean ROC AUC over the windows
    probability = backtest["probability"]
    assert probability["chosen"] == max(probability["mean_roc_auc"], key=probability["mean_roc_auc"].get)


def test_a_stack_forecasts_the_weighted_visits_and_round_trips_through_its_payload() -> None:
    # given a stack of BG/NBD and Pareto/NBD with P(return) from Pareto/NBD
    transactions = simulate_clinic_visits(days=200, clients=600, seed=3, after_days=0)
    end = START + timedelta(days=199)
    fits = BaseFits(transactions)
    choice = ReturnChoice(((0.3, "bgnbd"), (0.7, "pareto_nbd")), "pareto_nbd")
    stacked = fit_choice(choice, fits, calibration_end=end, horizon_days=90)
    # then its expected visits are the weighted sum, its probability Pareto/NBD's
    assert stacked.name == STACKED
    parts = {
        name: fit_return_model(name, fits, calibration_end=end, horizon_days=90).forecast(
            transactions, as_of=end, horizon_days=90
        )
        for name in ("bgnbd", "pareto_nbd")
    }
    forecast = stacked.forecast(transactions, as_of=end, horizon_days=90)
    np.testing.assert_allclose(
        forecast.expected_visits,
        0.3 * parts["bgnbd"].expected_visits + 0.7 * parts["pareto_nbd"].expected_visits,
    )
    np.testing.assert_array_equal(forecast.probability_return, parts["pareto_nbd"].probability_return)
    # and the stored payload forecasts the same
    restored = FittedReturnModel.from_payload(json.loads(json.dumps(stacked.to_payload())))
    again = restored.forecast(transactions, as_of=end, horizon_days=90)
    np.testing.assert_array_equal(again.expected_visits, forecast.expected_visits)
    np.testing.assert_array_equal(again.probability_return, forecast.probability_return)


def test_too_short_a_history_is_refused_with_the_reason() -> None:
    transactions = simulate_clinic_visits(days=20, clients=100, seed=5, after_days=0)
    with pytest.raises(
        ShortHistoryError, match="19 days of visits before 2026-01-24; a return model needs 21"
    ):
        fit_return_model("bgnbd", transactions, calibration_end=START + timedelta(days=19), horizon_days=90)


def _evaluate_first_days(
    tmp_path: Path, transactions: pd.DataFrame, days: int
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """`evaluate_returns` fitted on the first `days` days of `transactions`, over the 90 days after: the
    report and the prediction rows."""
    transactions.assign(date=transactions["date"].dt.strftime("%Y-%m-%d")).to_csv(
        tmp_path / "t.csv", index=False
    )
    end = START + timedelta(days=days - 1)
    report = evaluate_returns(
        tmp_path / "t.csv",
        calibration_end=end,
        holdout_end=end + timedelta(days=90),
        predictions_path=tmp_path / "p.csv",
        report_path=tmp_path / "r.json",
    )
    with (tmp_path / "p.csv").open() as handle:
        return report, list(csv.DictReader(handle))


@pytest.mark.parametrize(("days", "chosen_by"), [(60, "fallback"), (97, "rolling backtest")])
def test_evaluate_returns_on_a_few_months_of_visits(tmp_path: Path, days: int, chosen_by: str) -> None:
    # given a small clinic's first 60 or 97 days of visits (300 clients), and 90 days after
    transactions = simulate_clinic_visits(days=days, clients=300, seed=1)
    end = START + timedelta(days=days - 1)
    # when evaluated
    report, rows = _evaluate_first_days(tmp_path, transactions, days)
    # then every client seen gets a forecast, the probabilities tell clients apart, and the report says
    # how the model was chosen (on 60 days no window can be scored: the simplest model, said so)
    assert len(rows) == transactions[transactions["date"] <= pd.Timestamp(end)]["client_id"].nunique()
    probabilities = np.array([float(r["probability_return"]) for r in rows])
    assert 0.0 <= probabilities.min() < probabilities.max() <= 1.0
    assert float(np.ptp(probabilities)) > 0.1
    assert report["selection"]["chosen_by"].startswith(chosen_by)
    if chosen_by == "fallback":
        assert report["chosen_model"] == "bgnbd"
        refusals = {c["refused"] for c in report["selection"]["backtest"]["candidates"].values()}
        assert all("a return model needs 21" in reason for reason in refusals)
        assert "no backtest window could score bgnbd (" in report["selection"]["chosen_by"]
        assert "a return model needs 21)" in report["selection"]["chosen_by"]
    assert report["holdout"]["roc_auc"] > 0.6


def test_a_few_months_of_regular_visits_get_probabilities_that_tell_clients_apart(tmp_path: Path) -> None:
    # given 97 days of a clinic whose clients come back on a cadence: a return curve learnt over the last
    # third of the period saturates over 90 days (every client at P(return) = 1.000), which refused every
    # candidate; such a curve gives way to the base model's own P(return)
    transactions = simulate_regular_visits(days=97, clients=400, seed=3)
    # when evaluated over the next 90 days
    report, rows = _evaluate_first_days(tmp_path, transactions, 97)
    # then a model is served, its probabilities spread and are not all near 1, they rank the returns, and
    # the served model's notes say which curve gave way
    probabilities = np.array([float(r["probability_return"]) for r in rows])
    assert report["selection"]["chosen_by"] == "rolling backtest"
    assert float(np.ptp(probabilities)) > 0.1
    assert float(np.mean(probabilities)) < 0.9
    assert report["holdout"]["roc_auc"] > 0.65
    served = [report["model"], *(c["model"] for c in report["model"]["components"])]
    notes = [note for model in served for note in model["notes"]]
    assert any(note.startswith("return curve dropped") for note in notes)


def test_a_holdout_without_a_visit_is_said_to_leave_its_figures_undefined(tmp_path: Path) -> None:
    # given a clinic's first 60 days of visits and nothing after them
    transactions = simulate_clinic_visits(days=60, clients=150, seed=2)
    known = transactions[transactions["date"] <= pd.Timestamp(START + timedelta(days=59))]
    known.assign(date=known["date"].dt.strftime("%Y-%m-%d")).to_csv(tmp_path / "t.csv", index=False)
    # when it is evaluated over the 90 days after
    result = CliRunner().invoke(
        app,
        ["models", "evaluate", "returns", "--transactions", str(tmp_path / "t.csv"),
         "--calibration-end", "2026-03-05", "--holdout-end", "2026-06-03",
         "--predictions", str(tmp_path / "p.csv"), "--report", str(tmp_path / "r.json")],
    )  # fmt: skip
    # then every client is still predicted, and the figures that need a visit are said to be undefined
    assert result.exit_code == 0, result.output
    assert "aggregate error undefined: the holdout holds no visit" in result.output
    assert "ROC AUC undefined: every client returned in the holdout, or none did" in result.output
    assert "aggregate error undefined, Poisson deviance" in result.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == known["client_id"].nunique()
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["holdout"]["aggregate_error"], report["holdout"]["roc_auc"]) == (None, None)
