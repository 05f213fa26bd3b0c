"""`medspa models evaluate` end to end on small synthetic files."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medspa.cli import app
from medspa.retention.evaluation import evaluate_noshow, predict_refitting_daily
from medspa.retention.features import build_features
from medspa.retention.noshow import noshow_config_for, refit_noshow, train_noshow
from medspa.retention.return_models import (
    CANDIDATES,
    STACKED,
    ReturnChoice,
    choose_return_model,
    return_model_preference,
)
from medspa.retention.returns import BgNbd
from tests.retention.factories import simulate_bgnbd_visits, simulate_history


def test_evaluate_noshow_writes_every_test_row_a_report_and_a_plot(tmp_path: Path) -> None:
    # given a simulated clinic with x_age and x_sex, written in the portable format
    history, _ = simulate_history(clients=800, days=40)
    _write_history(history, tmp_path / "history.csv")
    test_rows = int((history["starts_at"] >= "2024-04-03").sum())
    # when evaluated from 2024-04-03
    result = CliRunner().invoke(
        app,
        ["models", "evaluate", "noshow", "--history", str(tmp_path / "history.csv"),
         "--test-from", "2024-04-03", "--predictions", str(tmp_path / "p.csv"),
         "--report", str(tmp_path / "r.json")],
    )  # fmt: skip
    # then every test appointment has one probability; the report has metrics, subgroups and the guard
    assert result.exit_code == 0, result.output
    with (tmp_path / "p.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == test_rows
    assert all(0.0 < float(r["probability"]) < 1.0 for r in rows)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["test"]["rows_scored"] == test_rows
    assert set(report["test"]) >= {"model", "model_uncalibrated", "logistic_baseline"}
    assert {"roc_auc", "pr_auc", "brier", "ece"} <= set(report["test"]["model"])
    assert [g["group"] for g in report["subgroups"]["sex"]] == ["F", "M"]
    assert [g["group"] for g in report["subgroups"]["age_band"]] == ["18-34", "35-49", "50-64", "65+"]
    assert report["leak_guard"]["leaking_features"] == []
    assert report["leak_guard"]["features_seeing_later_bookings"] == []
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # and the test figures of five seeds, the served one first, with their mean
    seeds = report["test"]["seeds"]
    assert [s["seed"] for s in seeds] == [7, 1, 2, 3, 4]
    assert seeds[0]["roc_auc"] == report["test"]["model"]["roc_auc"]
    assert report["test"]["ece_mean_over_seeds"] == pytest.approx(np.mean([s["ece"] for s in seeds]))


def _write_history(history: pd.DataFrame, path: Path) -> None:
    history.assign(
        booked_at=history["booked_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
        starts_at=history["starts_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
        reminder_sent=history["reminder_sent"].astype(int),
        price="",
    ).to_csv(path, index=False)


def _evaluate_from_april_3(
    history: pd.DataFrame, tmp_path: Path, *, refit_daily: bool = True
) -> dict[str, Any]:
    _write_history(history, tmp_path / "history.csv")
    return evaluate_noshow(
        tmp_path / "history.csv",
        test_from=date(2024, 4, 3),
        predictions_path=tmp_path / "p.csv",
        report_path=tmp_path / "r.json",
        plot_path=tmp_path / "r.png",
        refit_daily=refit_daily,
    )


def test_evaluate_noshow_never_reverses_the_boosters_ranking(tmp_path: Path) -> None:
    # given a clinic where longer lead times miss more, and a quiet week before the test period (100
    # appointments in five days) in which the bookings made closest to the day missed instead: the Platt
    # map fitted on those days has a negative slope, which would turn the booster's ranking upside down
    history, _ = simulate_history(clients=800, days=40)
    days = history["starts_at"].dt.normalize()
    quiet = (days >= "2024-03-29") & (days < "2024-04-03")
    history = history.drop(history.index[quiet.to_numpy()][100:]).reset_index(drop=True)
    days = history["starts_at"].dt.normalize()
    quiet = ((days >= "2024-03-29") & (days < "2024-04-03")).to_numpy()
    lead = (history["starts_at"] - history["booked_at"])[quiet]
    history.loc[quiet, "status"] = np.where(lead.rank(method="first") <= 45, "no_show", "completed")
    # when evaluated from 2024-04-03 with the trained booster alone (the refitted ones learn the quiet
    # week's reversal too, and rank the test days barely better than chance)
    report = _evaluate_from_april_3(history, tmp_path, refit_daily=False)
    # then the slope guard refuses the Platt map and keeps the ranking: the calibrated forecasts rank the
    # test days exactly as the booster's own scores do (a negative slope would give 1 - that AUC)
    assert report["calibration"]["method"].startswith("level only: Platt slope -")
    assert report["calibration"]["platt_slope"] == 1.0
    test = report["test"]
    raw_auc = test["model_uncalibrated"]["roc_auc"]
    assert abs(raw_auc - 0.5) > 0.05
    assert test["model"]["roc_auc"] == pytest.approx(raw_auc, abs=1e-12)
    assert all(s["calibration_method"].startswith("level only") for s in test["seeds"])
    # and refitting every day (the default) keeps the map, so the ranking is still the boosters'
    refitted = _evaluate_from_april_3(history, tmp_path)["test"]
    assert refitted["model"]["roc_auc"] == pytest.approx(refitted["model_uncalibrated"]["roc_auc"], abs=1e-12)


def test_evaluate_returns_predicts_every_client(tmp_path: Path) -> None:
    # given 400 days of simulated visits for 1,500 clients
    transactions = simulate_bgnbd_visits(
        BgNbd(r=0.5, alpha=20.0, a=1.5, b=4.0), clients=1500, days=400, seed=9
    )
    transactions.assign(date=transactions["date"].dt.strftime("%Y-%m-%d")).to_csv(
        tmp_path / "t.csv", index=False
    )
    # when evaluated with the model chosen by the internal backtest
    result = CliRunner().invoke(
        app,
        ["models", "evaluate", "returns", "--transactions", str(tmp_path / "t.csv"), "--calibration-end",
         "2020-07-19", "--holdout-end", "2021-02-04", "--predictions", str(tmp_path / "p.csv"), "--report",
         str(tmp_path / "r.json")],
    )  # fmt: skip
    # then each client has one forecast, and every candidate is scored in three backtest windows
    assert result.exit_code == 0, result.output
    with (tmp_path / "p.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["client_id"] for r in rows) == sorted(transactions["client_id"].unique())
    probabilities = np.array([float(r["probability_return"]) for r in rows])
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    report = json.loads((tmp_path / "r.json").read_text())
    backtest = report["selection"]["backtest"]
    assert len(backtest["windows"]) == 3
    assert all(len(backtest["candidates"][name]["windows"]) == 3 for name in CANDIDATES)
    deviances = {name: backtest["candidates"][name]["mean_poisson_deviance"] for name in CANDIDATES}
    choice = choose_return_model(backtest)
    assert report["chosen_model"] == choice.name
    if len(choice.expected) > 1:  # the stack beat every candidate on windows its weights never saw
        assert backtest["stack"]["mean_poisson_deviance"] < min(deviances.values())
    else:
        assert choice.expected[0][1] == min(deviances, key=deviances.__getitem__)
    assert choice.probability == backtest["probability"]["chosen"]
    assert report["selection"]["chosen_by"] == "rolling backtest"
    # and the holdout figures of the chosen model stand alone; every candidate's sit in the appendix
    assert {"aggregate_error", "poisson_deviance", "roc_auc", "monthly"} <= set(report["holdout"])
    assert set(report["appendix"]["holdout_by_candidate"]) == set(CANDIDATES)
    monthly = report["holdout"]["monthly"]
    assert sum(m["actual"] for m in monthly["months"]) == report["holdout"]["actual_visits"]
    assert sum(m["forecast"] for m in monthly["months"]) == pytest.approx(
        report["holdout"]["predicted_visits"], rel=1e-6
    )


def test_evaluate_returns_names_bad_rows_or_skips_and_counts_them(tmp_path: Path) -> None:
    # given visits of twelve clients over 200 days and one row with an unparseable date
    rows = [f"{c},2020-{m:02d}-{d:02d},5" for c in range(1, 13) for m in range(1, 8) for d in (3, 17)]
    (tmp_path / "t.csv").write_text("client_id,date,amount\n" + "\n".join([*rows, "3,2020-13-01,5"]) + "\n")
    arguments = ["models", "evaluate", "returns", "--transactions", str(tmp_path / "t.csv"),
                 "--calibration-end", "2020-05-31", "--holdout-end", "2020-07-31",
                 "--predictions", str(tmp_path / "p.csv"), "--report", str(tmp_path / "r.json"),
                 "--model", "bgnbd"]  # fmt: skip
    # when evaluated strictly, then the row is named and nothing is written
    strict = CliRunner().invoke(app, arguments)
    assert strict.exit_code == 2
    assert "line 170: date='2020-13-01'" in strict.output
    assert not (tmp_path / "p.csv").exists()
    # when evaluated with --skip-bad-rows, then the skip is reported and every client is forecast
    skipped = CliRunner().invoke(app, [*arguments, "--skip-bad-rows"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 bad row(s)" in skipped.output
    assert json.loads((tmp_path / "r.json").read_text())["skipped_rows"] == 1
    assert (tmp_path / "p.csv").read_text().count("\n") == 13


def test_evaluate_returns_refuses_a_holdout_before_the_calibration_end(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("client_id,date,amount\n1,2020-01-01,5\n")
    result = CliRunner().invoke(
        app,
        ["models", "evaluate", "returns", "--transactions", str(tmp_path / "t.csv"), "--calibration-end",
         "2020-07-19", "--holdout-end", "2020-07-01", "--predictions", str(tmp_path / "p.csv"), "--report",
         str(tmp_path / "r.json")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--holdout-end must be after --calibration-end" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_the_backtest_winner_is_the_candidate_with_the_lowest_mean_poisson_deviance() -> None:
    backtest = {
        "candidates": {
            "bgnbd": {"mean_poisson_deviance": 1.14},
            "pareto_nbd": {"mean_poisson_deviance": 1.13},
            "boosted": {"refused": "the boosted correction needs 200 clients"},
        },
        "stack": {"weights": {"bgnbd": 0.5, "pareto_nbd": 0.5}, "mean_poisson_deviance": 1.135},
        "probability": {"chosen": "pareto_nbd"},
    }
    assert choose_return_model(backtest) == ReturnChoice(((1.0, "pareto_nbd"),), "pareto_nbd")
    assert choose_return_model(backtest).name == "pareto_nbd"
    assert return_model_preference(backtest) == ["pareto_nbd", "bgnbd"]
    refused = {"candidates": {"boosted": {"refused": "too short"}}, "stack": {"refused": "no windows"}}
    assert choose_return_model(refused) == ReturnChoice(((1.0, "bgnbd"),), "bgnbd")


def test_a_stack_that_beats_every_candidate_on_held_out_windows_is_chosen() -> None:
    # given a stack whose leave-one-window-out deviance is below the best candidate's, and a probability
    # that ranks best from another candidate
    backtest = {
        "candidates": {
            "bgnbd": {"mean_poisson_deviance": 1.1356},
            "boosted": {"mean_poisson_deviance": 1.1420},
        },
        "stack": {"weights": {"bgnbd": 0.54, "boosted": 0.46}, "mean_poisson_deviance": 1.1276},
        "probability": {"chosen": "boosted"},
    }
    # then the expected visits are the stack's and P(return) the boosted candidate's
    choice = choose_return_model(backtest)
    assert choice == ReturnChoice(((0.54, "bgnbd"), (0.46, "boosted")), "boosted")
    assert choice.name == STACKED
    # and a stack no better than the best candidate is not chosen (BG/NBD's expected visits, P(return)
    # still from the candidate that ranks best)
    backtest["stack"]["mean_poisson_deviance"] = 1.1356
    assert choose_return_model(backtest) == ReturnChoice(((1.0, "bgnbd"),), "boosted")


def test_evaluate_returns_with_pareto_nbd_named(tmp_path: Path) -> None:
    # given simulated visits
    transactions = simulate_bgnbd_visits(
        BgNbd(r=0.5, alpha=20.0, a=1.5, b=4.0), clients=800, days=400, seed=10
    )
    transactions.assign(date=transactions["date"].dt.strftime("%Y-%m-%d")).to_csv(
        tmp_path / "t.csv", index=False
    )
    # when evaluated with --model pareto_nbd
    result = CliRunner().invoke(
        app,
        ["models", "evaluate", "returns", "--transactions", str(tmp_path / "t.csv"), "--calibration-end",
         "2020-07-19", "--holdout-end", "2021-02-04", "--predictions", str(tmp_path / "p.csv"), "--report",
         str(tmp_path / "r.json"), "--model", "pareto_nbd"],
    )  # fmt: skip
    # then the named model is the one written and reported
    assert result.exit_code == 0, result.output
    assert "returns (pareto_nbd)" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["chosen_model"] == "pareto_nbd"
    with (tmp_path / "p.csv").open() as handle:
        written = [float(r["expected_visits"]) for r in csv.DictReader(handle)]
    assert sum(written) == pytest.approx(report["holdout"]["predicted_visits"], rel=1e-5)
    assert report["selection"]["chosen_by"] == "named with --model"


def test_evaluate_noshow_on_a_few_hundred_appointments(tmp_path: Path) -> None:
    # given a small clinic: 303 appointments over 40 days, 55 of them missed
    history, _ = simulate_history(clients=100, days=40)
    assert (len(history), int((history["status"] == "no_show").sum())) == (303, 55)
    # when evaluated from 2024-04-03
    report = _evaluate_from_april_3(history, tmp_path)
    # then every test appointment gets a probability, and they differ between appointments: the booster
    # could split (a leaf of a tenth of the training rows, not the 50 of larger clinics)
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert len(predictions) == int((history["starts_at"] >= "2024-04-03").sum())
    assert predictions["probability"].nunique() > 10
    assert report["test"]["model"]["roc_auc"] > 0.5
    window = report["training_window"]
    assert int(window["fit_rows"]) + int(window["calibration_rows"]) == 225
    assert noshow_config_for(225).min_child_samples == 22


def test_each_test_day_is_scored_by_a_booster_refitted_on_the_outcomes_before_it() -> None:
    # given a model trained before 2024-04-03 on a simulated clinic
    history, _ = simulate_history(clients=800, days=40)
    features = build_features(history)
    model = train_noshow(history, train_end=date(2024, 4, 3), features=features)
    test_rows = (history["starts_at"] >= "2024-04-03").to_numpy()
    day = history["starts_at"].dt.normalize().to_numpy()[test_rows]
    # when the test days are scored refitting every day, and again after every outcome from 2024-04-08
    # on is flipped
    calibrated, raw = predict_refitting_daily(model, history, features, test_rows)
    flipped = history.copy()
    later = (flipped["starts_at"] >= "2024-04-08").to_numpy()
    flipped.loc[later, "status"] = flipped.loc[later, "status"].map(
        {"no_show": "completed", "completed": "no_show"}
    )
    flipped_features = build_features(flipped)
    calibrated_flipped, _ = predict_refitting_daily(model, flipped, flipped_features, test_rows)
    # then no appointment up to 2024-04-08 moves (its booster saw only earlier outcomes), later ones do
    up_to = day <= np.datetime64("2024-04-08")
    np.testing.assert_array_equal(calibrated[up_to], calibrated_flipped[up_to])
    assert not np.allclose(calibrated[~up_to], calibrated_flipped[~up_to])
    # and the first test day is the trained model's own, later days a refitted booster's under the
    # trained calibration map
    first = day == day.min()
    np.testing.assert_allclose(raw[first], model.raw_scores(features[test_rows][first]))
    refitted = refit_noshow(model, history, train_end=date(2024, 4, 10), features=features)
    assert (refitted.platt_slope, refitted.platt_intercept) == (model.platt_slope, model.platt_intercept)
    assert refitted.booster_text != model.booster_text
    on_day = day == np.datetime64("2024-04-10")
    np.testing.assert_allclose(raw[on_day], refitted.raw_scores(features[test_rows][on_day]))
    # and without refitting every day is the trained model's
    _, unrefitted = predict_refitting_daily(model, history, features, test_rows, refit=False)
    np.testing.assert_allclose(unrefitted, model.raw_scores(features[test_rows]))


def test_evaluate_noshow_refuses_test_days_without_an_outcome(tmp_path: Path) -> None:
    # given a small clinic whose appointments from 2024-04-03 on were all cancelled
    later = _small_clinic_with_test_days(tmp_path, "cancelled")
    # when it is evaluated from that day
    result = _evaluate_command(tmp_path, "2024-04-03")
    # then it is refused with the reason, and nothing is written
    assert result.exit_code == 2
    assert f"no appointment on or after 2024-04-03 was attended or missed ({later} cancelled" in result.output
    assert not (tmp_path / "p.csv").exists()
    assert not (tmp_path / "r.json").exists()


def test_evaluate_noshow_says_when_the_test_days_hold_one_outcome(tmp_path: Path) -> None:
    # given a small clinic where nobody missed an appointment from 2024-04-03 on
    later = _small_clinic_with_test_days(tmp_path, "completed")
    # when it is evaluated from that day
    result = _evaluate_command(tmp_path, "2024-04-03")
    # then every test appointment is predicted, and the ranking figures are said to be undefined
    assert result.exit_code == 0, result.output
    assert "ROC AUC undefined: the test rows hold one outcome only" in result.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == later
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["test"]["model"]["roc_auc"] is None
    assert report["test"]["model"]["event_rate"] == 0


def _small_clinic_with_test_days(tmp_path: Path, status: str) -> int:
    """A clinic of 100 clients over 40 days, every appointment from 2024-04-03 on given `status`, written
    to history.csv in `tmp_path`; returns how many appointments that is."""
    history, _ = simulate_history(clients=100, days=40)
    later = (history["starts_at"] >= "2024-04-03").to_numpy()
    history.loc[later, "status"] = status
    _write_history(history, tmp_path / "history.csv")
    return int(later.sum())


def _evaluate_command(tmp_path: Path, test_from: str) -> Any:
    return CliRunner().invoke(
        app,
        ["models", "evaluate", "noshow", "--history", str(tmp_path / "history.csv"), "--test-from", test_from,
         "--predictions", str(tmp_path / "p.csv"), "--report", str(tmp_path / "r.json"), "--no-refit"],
    )  # fmt: skip
