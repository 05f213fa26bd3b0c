"""Time to churn: the client-survival format, the refusal of tenure-encoding covariates, Cox and boosted
survival chosen by cross-validated concordance, and `medspa models evaluate churn`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from medspa.cli import app
from medspa.retention.formats import FormatError, read_client_survival
from medspa.retention.survival import cross_validate, refused_covariates
from tests.retention.factories import simulate_memberships, write_csv


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.rename(columns={"tenure": "tenure_months"}).to_csv(path, index=False)
    return path


def _evaluate_churn(data: Path, tmp_path: Path, *options: str) -> Result:
    """`medspa models evaluate churn` on `data`, writing p.csv and r.json in `tmp_path`."""
    return CliRunner().invoke(
        app,
        ["models", "evaluate", "churn", "--data", str(data), "--predictions", str(tmp_path / "p.csv"),
         "--report", str(tmp_path / "r.json"), *options],
    )  # fmt: skip


def test_the_survival_format_names_every_bad_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "s.csv",
        ["client_id", "tenure_days", "event", "x_plan"],
        [["a", "30", "1", "basic"], ["b", "-2", "0", "plus"], ["c", "12", "2", ""], ["a", "x", "1", "plus"]],
    )
    with pytest.raises(FormatError) as raised:
        read_client_survival(path)
    message = str(raised.value)
    assert "3 bad row(s)" in message
    assert "line 3: tenure_days='-2': negative tenure" in message
    assert "line 4: event='2': not 0 or 1" in message
    assert "line 5: client_id='a': duplicate" in message
    assert "line 5: tenure_days='x': not a number" in message
    # skipping keeps the good row, with its unit
    read, unit = read_client_survival(path, skip_bad_rows=True)
    assert (unit, read.skipped_rows, read.frame["client_id"].tolist()) == ("days", 3, ["a"])


def test_the_survival_format_names_missing_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", ["client_id", "months", "x_age"], [["a", "3", "40"]])
    with pytest.raises(
        FormatError, match=r"missing column\(s\): event, tenure_days or tenure_months"
    ) as raised:
        read_client_survival(path)
    assert "unknown column(s): months" in str(raised.value)
    both = write_csv(
        tmp_path / "t.csv", ["client_id", "tenure_days", "tenure_months", "event"], [["a", "3", "1", "0"]]
    )
    with pytest.raises(FormatError, match=r"unknown column\(s\): tenure_months"):
        read_client_survival(both)


def test_a_covariate_that_grows_with_the_tenure_is_refused() -> None:
    frame = simulate_memberships()
    refused = refused_covariates(frame)
    assert list(refused) == ["x_lifetime_spend"]
    assert "encodes the tenure (rank correlation +1.00 with it" in refused["x_lifetime_spend"]


def test_cross_validation_predicts_every_client_out_of_fold_and_ranks_churn() -> None:
    frame = simulate_memberships()
    result = cross_validate(frame, folds=4)
    assert result.covariates == ["x_plan", "x_age"]
    assert set(result.concordance) == {"cox", "boosted"}
    assert all(len(scores) == 4 for scores in result.concordance.values())
    # the simulated hazard is proportional in plan and age: Cox ranks churn well above chance
    assert float(np.mean(result.concordance["cox"])) > 0.6
    chosen = result.chosen
    assert float(np.mean(result.concordance[chosen])) == max(
        float(np.mean(s)) for s in result.concordance.values()
    )
    survival = result.survival[chosen]
    assert survival.shape == (400, 3)
    assert np.all((survival >= 0) & (survival <= 1))
    assert np.all(np.diff(survival, axis=1) <= 1e-12)  # survival never rises with tenure


def test_too_few_churns_are_refused_clearly() -> None:
    frame = simulate_memberships(clients=40)
    frame["event"] = 0
    frame.loc[:4, "event"] = 1
    with pytest.raises(
        ValueError, match="40 clients and 5 churns; time to churn needs 30 clients, 10 churns"
    ):
        cross_validate(frame)


def test_evaluate_churn_writes_every_client_and_the_calibration(tmp_path: Path) -> None:
    data = _write(simulate_memberships(), tmp_path / "memberships.csv")
    result = _evaluate_churn(data, tmp_path, "--folds", "4")
    assert result.exit_code == 0, result.output
    assert "refused x_lifetime_spend: encodes the tenure" in result.output
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["client_id", "risk", "survival_3", "survival_6", "survival_12"]
    assert sorted(predictions["client_id"]) == sorted(f"m{i}" for i in range(400))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tenure_unit"] == "months"
    assert report["chosen_model"] in {"cox", "boosted"}
    assert [c["time"] for c in report["calibration"]] == [3.0, 6.0, 12.0]
    assert all(0 <= c["error"] < 0.15 for c in report["calibration"])
    # higher risk, sooner churn: the written risk ranks the churned clients' tenures
    churned = pd.read_csv(data).assign(risk=predictions["risk"]).query("event == 1")
    assert churned["risk"].corr(churned["tenure_months"], method="spearman") < 0


def test_a_small_book_is_cross_validated_and_every_client_predicted(tmp_path: Path) -> None:
    # given a book of 40 memberships, 23 of them churned (a small clinic's)
    frame = simulate_memberships(clients=40, seed=2)
    assert int(frame["event"].sum()) == 23
    data = _write(frame, tmp_path / "memberships.csv")
    # when it is evaluated with five folds
    result = _evaluate_churn(data, tmp_path)
    # then every client has an out-of-fold prediction and the survival curves do not rise
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert sorted(predictions["client_id"]) == sorted(f"m{i}" for i in range(40))
    assert predictions.notna().all().all()
    curves = predictions[["survival_3", "survival_6", "survival_12"]].to_numpy()
    assert np.all(np.diff(curves, axis=1) <= 1e-12)
    assert predictions["risk"].nunique() > 1


def test_a_book_without_a_covariate_that_tells_clients_apart_is_refused(tmp_path: Path) -> None:
    # given a book whose only covariate is a lifetime total (refused) and one known to be the same for all
    frame = simulate_memberships(clients=60, seed=3)[["client_id", "tenure", "event", "x_lifetime_spend"]]
    frame["x_region"] = "north"
    data = _write(frame, tmp_path / "memberships.csv")
    # when it is evaluated
    result = _evaluate_churn(data, tmp_path)
    # then it is refused with the reason, the refused covariate named, and nothing is written
    assert result.exit_code == 2
    assert "no covariate tells the clients apart" in result.output
    assert "refused: x_lifetime_spend encodes the tenure" in result.output
    assert not (tmp_path / "p.csv").exists()
    assert not (tmp_path / "r.json").exists()
    # and a book without any covariate is refused the same way
    with pytest.raises(ValueError, match="no covariate tells the clients apart"):
        cross_validate(frame[["client_id", "tenure", "event"]])
