"""Metrics, calibration, the no-show model and the BG/NBD and Pareto/NBD models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medspa.retention import metrics
from medspa.retention.features import RECENT_RATE_COLUMN, build_features
from medspa.retention.noshow import (
    NoShowConfig,
    NoShowModel,
    _fit_platt,
    fit_calibration,
    labelled_mask,
    no_show_labels,
    train_noshow,
)
from medspa.retention.returns import (
    BgNbd,
    ClientSummary,
    ParetoNbd,
    fit_bgnbd,
    fit_pareto_nbd,
    holdout_visits,
    summarize,
)
from tests.retention.factories import simulate_bgnbd_visits, simulate_history, simulate_pareto_nbd_visits


def test_metrics_on_a_hand_worked_example() -> None:
    probabilities = [0.1, 0.4, 0.35, 0.8]
    labels = [0, 0, 1, 1]
    # 4 positive/negative pairs, 3 ordered right
    assert metrics.roc_auc(probabilities, labels) == 0.75
    assert metrics.roc_auc([0.5, 0.5], [0, 1]) == 0.5
    assert metrics.brier(probabilities, labels) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    # precision at recall 0.5 is 1 (0.8), at recall 1 it is 2/3 (0.8, 0.4, 0.35)
    assert metrics.pr_auc(probabilities, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # each forecast has its own tenth-wide bin: |0.1 - 0| + |0.4 - 0| + |0.35 - 1| + |0.8 - 1| over 4 rows
    assert metrics.expected_calibration_error(probabilities, labels) == pytest.approx(1.35 / 4)


def test_reliability_of_a_calibrated_forecast_is_near_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert metrics.expected_calibration_error(p, y) < 0.005
    assert all(abs(b.mean_probability - b.observed_rate) < 0.01 for b in metrics.reliability(p, y))


def test_platt_recovers_a_known_distortion() -> None:
    # given scores whose log-odds are twice the true log-odds plus one
    rng = np.random.default_rng(1)
    true_logit = rng.normal(-1, 1, 100_000)
    labels = (rng.uniform(size=true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(np.int64)
    scores = 1 / (1 + np.exp(-(2 * true_logit + 1)))
    # when calibrated, then the map inverts it: slope 1/2, intercept -1/2
    slope, intercept = _fit_platt(scores, labels)
    assert slope == pytest.approx(0.5, abs=0.02)
    assert intercept == pytest.approx(-0.5, abs=0.03)


def _trained() -> tuple[pd.DataFrame, NoShowModel]:
    history, _ = simulate_history(clients=1500, days=40)
    config = NoShowConfig(n_estimators=80, learning_rate=0.1, calibration_days=8, min_child_samples=20)
    return history, train_noshow(history, train_end=date(2024, 4, 3), config=config)


def test_noshow_model_is_calibrated_and_learns_the_signal() -> None:
    # given a simulated clinic whose no-show risk rises with lead time and a personal propensity
    history, model = _trained()
    test = (history["starts_at"] >= "2024-04-03").to_numpy()
    probabilities = model.predict(history, test)
    labels = no_show_labels(history)[test]
    # then the held-out period is ranked well above chance (the true probabilities reach 0.78 here) and
    # the mean forecast is near the observed rate
    assert len(probabilities) == int(test.sum())
    assert metrics.roc_auc(probabilities, labels) > 0.62
    assert abs(float(probabilities.mean()) - float(labels.mean())) < 0.05
    assert model.training_window["train_end_exclusive"] == "2024-04-03"


def test_summary_counts_distinct_visit_days() -> None:
    transactions = pd.DataFrame(
        {
            "client_id": ["a", "a", "a", "b"],
            "date": pd.to_datetime(["1997-01-01", "1997-01-01", "1997-01-11", "1997-01-05"]),
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    frame = summarize(transactions, calibration_end=date(1997, 1, 31)).frame
    assert frame.loc["a", ["frequency", "recency", "age", "monetary"]].tolist() == [1.0, 10.0, 30.0, 3.0]
    assert frame.loc["b", ["frequency", "recency", "age"]].tolist() == [0.0, 0.0, 26.0]


@pytest.mark.parametrize(
    ("truth", "simulate", "fit"),
    [
        (BgNbd(r=0.5, alpha=20.0, a=1.5, b=4.0), simulate_bgnbd_visits, fit_bgnbd),
        (ParetoNbd(r=0.6, alpha=20.0, s=0.8, beta=60.0), simulate_pareto_nbd_visits, fit_pareto_nbd),
    ],
    ids=["bgnbd", "pareto_nbd"],
)
def test_model_recovers_its_parameters_and_forecasts_the_total(
    truth: BgNbd | ParetoNbd,
    simulate: Callable[[Any, int, int, int], pd.DataFrame],
    fit: Callable[[ClientSummary], BgNbd | ParetoNbd],
) -> None:
    # given visits simulated from known parameters over 400 days (fit on 200, hold out 200)
    transactions = simulate(truth, 5000, 400, 5)
    summary = summarize(transactions, calibration_end=date(2020, 7, 19))
    # when fitted
    fitted = fit(summary)
    # then the visit-rate parameters are recovered and the holdout total is forecast within 10 %
    assert fitted.r == pytest.approx(truth.r, rel=0.2)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.3)
    x, t_x, age = summary.frequency, summary.recency, summary.age
    expected = fitted.expected_visits(200, x, t_x, age)
    actual = holdout_visits(transactions, calibration_end=date(2020, 7, 19), holdout_end=date(2021, 2, 4))
    assert float(expected.sum()) == pytest.approx(float(actual.sum()), rel=0.1)
    # and P(return) is a probability no larger than P(alive), and it ranks who returns well above chance
    probability = fitted.probability_return(200, x, t_x, age)
    alive = fitted.probability_alive(x, t_x, age)
    assert np.all((probability >= 0) & (probability <= alive + 1e-12))
    returned = actual.reindex(summary.frame.index, fill_value=0.0).to_numpy() > 0
    assert metrics.roc_auc(probability, returned) > 0.7


def test_logistic_curve_recovers_a_known_curve() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1.5, 50_000)
    labels = (rng.uniform(size=x.size) < 1 / (1 + np.exp(-(1.3 * x - 0.7)))).astype(float)
    slope, intercept = metrics.fit_logistic_curve(x, labels)
    assert slope == pytest.approx(1.3, abs=0.05)
    assert intercept == pytest.approx(-0.7, abs=0.05)


def test_logistic_curve_of_a_constant_score_is_the_observed_rate() -> None:
    # A booster that cannot split a small history scores everyone alike: calibration must not fail.
    slope, intercept = metrics.fit_logistic_curve(np.full(40, -1.2), np.r_[np.ones(10), np.zeros(30)])
    assert slope == 0.0
    assert metrics.sigmoid(intercept) == pytest.approx(0.25)


def test_default_settings_learn_from_a_small_clinic() -> None:
    # given a clinic with about 400 finished appointments before the cut (Brazil's 200 rows per leaf
    # would leave the subsampled booster unable to split them at all)
    history, _ = simulate_history(clients=180, days=40, seed=5)
    model = train_noshow(history, train_end=date(2024, 4, 3))
    test = (history["starts_at"] >= "2024-04-03").to_numpy()
    probabilities = model.predict(history, test)
    # then the leaf size follows the history and the later appointments are ranked above chance
    assert model.config.min_child_samples == 40
    assert metrics.roc_auc(probabilities, no_show_labels(history)[test]) > 0.58


def test_a_small_clinic_calibrates_on_enough_misses_and_is_not_shifted_by_a_noisy_recent_rate() -> None:
    # given a clinic of about 560 appointments over 40 days (a dozen misses in five days, 100 a week)
    history, _ = simulate_history(clients=180, days=40, seed=5)
    model = train_noshow(history, train_end=date(2024, 4, 3))
    labels = no_show_labels(history)
    starts = history["starts_at"].dt.normalize()
    window = model.training_window
    calibration = (starts >= window["calibration_start"]) & (starts < window["train_end_exclusive"])
    # then the calibration slice reaches back until it holds 40 misses (or half the training days)
    assert int(labels[calibration.to_numpy() & labelled_mask(history)].sum()) >= 40
    assert int(window["calibration_rows"]) > int(window["fit_rows"]) // 3
    # and its forecasts are not shifted by the last week's rate: they rank as the booster's scores do
    assert model.reference_rate is None
    test = (history["starts_at"] >= "2024-04-03").to_numpy()
    features = build_features(history)[test]
    assert metrics.roc_auc(model.predict_features(features), labels[test]) == pytest.approx(
        metrics.roc_auc(model.raw_scores(features), labels[test])
    )


def test_a_busy_clinics_forecasts_follow_the_recent_no_show_rate() -> None:
    # given a clinic with well over 1,000 attended or missed appointments a week
    history, _ = simulate_history(clients=4000, days=30, seed=6)
    config = NoShowConfig(n_estimators=60, learning_rate=0.1)
    model = train_noshow(history, train_end=date(2024, 3, 27), config=config)
    assert model.reference_rate is not None
    # then a week with twice the reference rate raises every forecast, and one at the reference leaves it
    test = (history["starts_at"] >= "2024-03-27").to_numpy()
    features = build_features(history)[test].copy()
    features[RECENT_RATE_COLUMN] = model.reference_rate
    steady = model.predict_features(features)
    features[RECENT_RATE_COLUMN] = 2 * model.reference_rate
    assert (model.predict_features(features) > steady).all()


def test_calibration_keeps_the_ranking_when_the_platt_slope_is_refused() -> None:
    rng = np.random.default_rng(3)
    true_logit = rng.normal(-1.5, 1.0, 20_000)
    labels = (rng.uniform(size=true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(np.int64)
    # scores that rank the outcomes: the Platt map is used
    slope, _, method = fit_calibration(1 / (1 + np.exp(-true_logit)), labels)
    assert method == "platt"
    assert slope == pytest.approx(1.0, abs=0.05)
    # scores that rank them backwards: the slope is refused, the level-only map keeps the scores' order
    # and gives the observed rate on average
    reversed_scores = 1 / (1 + np.exp(true_logit))
    slope, intercept, method = fit_calibration(reversed_scores, labels)
    assert method.startswith("level only: Platt slope -")
    assert slope == 1.0
    calibrated = metrics.sigmoid(metrics.logit(reversed_scores) + intercept)
    assert float(calibrated.mean()) == pytest.approx(float(labels.mean()), abs=1e-6)
    assert np.array_equal(np.argsort(calibrated, kind="stable"), np.argsort(reversed_scores, kind="stable"))
