"""Training a clinic's models for serving, and what the return model's scores mean."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from medspa.retention.noshow import noshow_config_for
from medspa.retention.return_models import FittedReturnModel
from medspa.retention.returns import BgNbd
from medspa.retention.serving import ReturnModel, train_clinic_noshow
from tests.retention.factories import simulate_history
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
