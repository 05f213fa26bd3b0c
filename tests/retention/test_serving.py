"""Training a clinic's models for serving, and what the return model's scores mean."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from medspa.retention.metrics import roc_auc
from medspa.retention.noshow import noshow_config_for
from medspa.retention.return_models import FittedReturnModel
from medspa.retention.returns import BgNbd
from medspa.retention.serving import ReturnModel, train_clinic_noshow, train_returns
from tests.retention.factories import simulate_clinic_visits, simulate_history
from tests.serving_models import noshow_payload, returns_payload


def test_the_no_show_model_needs_twenty_no_shows() -> None:
    history, _ = simulate_history(clients=40, days=10)
    assert int((history["status"] == "no_show").sum()) < 20
    with pytest.raises(ValueError, match="the no-show model needs 20"):
        train_clinic_noshow(history, train_end=date(2024, 3, 12))


def test_a_clinic_no_show_model_carries_holdout_metrics_and_a_scaled_leaf_size() -> None:
    payload = noshow_payload()
    holdout = payload["metrics"]["holdout"]
    assert (holdout["from"], holdout["to_exclusive"]) == ("2024-03-21", "2024-03-28")
    assert holdout["rows"] > 0
    assert 0.5 < holdout["roc_auc"] <= 1
    assert payload["metrics"]["training"]["rows"] == int(payload["training_window"]["fit_rows"]) + int(
        payload["training_window"]["calibration_rows"]
    )
    assert (
        payload["config"]["min_child_samples"]
        == noshow_config_for(payload["metrics"]["training"]["rows"]).min_child_samples
    )
    assert [noshow_config_for(n).min_child_samples for n in (60, 300, 600, 1000, 5000)] == [
        10,
        30,
        60,
        100,
        200,
    ]


def test_return_scores_mean_what_the_glossary_says() -> None:
    stored = ReturnModel.from_payload(returns_payload())
    assert ReturnModel.from_payload(stored.to_payload()).to_payload() == stored.to_payload()
    # BG/NBD with the parameters fitted on CDNOW (docs/models.md), per day, and its own P(return)
    cdnow = {"r": 0.2516, "alpha": 33.52, "a": 0.7234, "b": 2.161}
    model = replace(stored, model=FittedReturnModel("bgnbd", "bgnbd", cdnow, date(1997, 9, 30)))
    today = date(2026, 3, 1)
    visits = pd.DataFrame(
        {
            "client_id": ["a", "a", "a", "b"],
            "date": pd.to_datetime(["2025-12-01", "2026-01-05", "2026-02-10", "2025-06-01"]),
            "amount": [100.0, 100.0, 100.0, 100.0],
        }
    )
    scores = model.score(visits, today=today)
    assert list(scores.index) == ["a", "b"]
    assert list(scores["visits"]) == [3, 1]
    assert list(scores["last_visit_on"]) == [date(2026, 2, 10), date(2025, 6, 1)]
    assert np.allclose(scores["lapse_risk"], 1 - scores["probability_return"])
    # The regular, recent client is more likely to return than the one seen once, nine months ago.
    assert scores.loc["a", "probability_return"] > scores.loc["b", "probability_return"]
    # The expected next visit is the median wait of an active client: P(no visit by then | active) = 1/2;
    # for the client seen once, nine months ago, that is over two years away: no date.
    params = BgNbd(**cdnow)
    next_visit = scores.loc["a", "expected_next_visit_on"]
    wait, frequency, age = (next_visit - today).days, 2, 90
    no_visit = ((params.alpha + age) / (params.alpha + age + wait)) ** (params.r + frequency)
    no_visit_a_day_earlier = ((params.alpha + age) / (params.alpha + age + wait - 1)) ** (
        params.r + frequency
    )
    assert no_visit <= 0.5 < no_visit_a_day_earlier
    assert scores.loc["b", "expected_next_visit_on"] is None


@pytest.mark.parametrize("days", [30, 60])
def test_a_clinic_of_a_few_months_is_served_return_scores_that_tell_clients_apart(days: int) -> None:
    # given a clinic of 150 clients with 30 or 60 days of visits, and the 90 days that followed
    visits = simulate_clinic_visits(days=days, clients=150, seed=2)
    visits["date"] = pd.to_datetime(visits["date"]).astype("datetime64[ns]")
    end = date(2026, 1, 5) + timedelta(days=days - 1)
    # when its return model is trained as a clinic's is, and every client is scored the next day
    model = train_returns(visits, calibration_end=end)
    known = visits[visits["date"] <= pd.Timestamp(end)]
    scores = model.score(known, today=end + timedelta(days=1))
    # then every client is scored, no probability is 0 or 1 for everyone, and they rank who came back
    assert len(scores) == known["client_id"].nunique()
    assert scores["probability_return"].between(0, 1).all()
    assert float(scores["probability_return"].max() - scores["probability_return"].min()) > 0.1
    later = visits[
        (visits["date"] > pd.Timestamp(end)) & (visits["date"] <= pd.Timestamp(end + timedelta(90)))
    ]
    returned = scores.index.isin(later["client_id"].unique())
    assert 0 < returned.sum() < len(scores)
    assert roc_auc(scores["probability_return"].to_numpy(), returned.astype(float)) > 0.6
    # and a history too short for any backtest window says which model it fell back to
    assert str(model.metrics["chosen_by"]).startswith("fallback")


def test_a_clinic_of_three_weeks_is_refused_a_return_model_with_the_reason() -> None:
    visits = simulate_clinic_visits(days=20, clients=150, seed=2)
    visits["date"] = pd.to_datetime(visits["date"]).astype("datetime64[ns]")
    with pytest.raises(ValueError, match=r"no return model can be fitted on this history \(bgnbd: 19 days"):
        train_returns(visits, calibration_end=date(2026, 1, 24))


def test_a_clinic_of_under_two_hundred_appointments_gets_a_no_show_model() -> None:
    # given 183 appointments over 20 days, 29 of them missed
    history, _ = simulate_history(clients=60, days=20, seed=1)
    assert (len(history), int((history["status"] == "no_show").sum())) == (183, 29)
    # when a clinic's model is trained on them
    model = train_clinic_noshow(history, train_end=date(2024, 3, 24))
    # then it splits (forecasts differ between appointments) and carries its holdout week's figures
    forecasts = model.predict(history)
    assert len(np.unique(np.round(forecasts, 6))) > 10
    holdout = model.metrics["holdout"]
    assert (holdout["from"], holdout["to_exclusive"], holdout["rows"]) == ("2024-03-17", "2024-03-24", 71)
    assert 0.5 < holdout["roc_auc"] <= 1
