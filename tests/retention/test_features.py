from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medspa.retention.features import (
    ScoringTime,
    build_features,
    find_booking_leaks,
    find_outcome_leaks,
    recent_no_show_rate,
    scoring_instants,
)
from tests.retention.factories import make_history_frame, simulate_history


def _history() -> pd.DataFrame:
    # one client: a miss on the 1st, an attended visit on the 3rd, two bookings on the 10th, one on the 20th
    rows = [
        ("c", "2024-02-20T09:00", "2024-03-01", "no_show"),
        ("c", "2024-03-01T12:00", "2024-03-03", "completed"),
        ("c", "2024-03-02T08:00", "2024-03-10", "no_show"),
        ("c", "2024-03-02T08:00", "2024-03-10", "completed"),
        ("c", "2024-03-10T16:00", "2024-03-20", "completed"),
        ("d", "2024-03-10T07:00", "2024-03-10", "completed"),
    ]
    return make_history_frame(
        [{"client_id": c, "booked_at": b, "starts_at": s, "status": st} for c, b, s, st in rows]
    )


def test_history_features_count_only_earlier_days_outcomes() -> None:
    # given the history above
    features = build_features(_history())
    # then the third appointment (10th) sees the miss and the visit before it, not its same-day sibling
    third = features.iloc[2]
    assert (third["prior_no_shows"], third["prior_attended"], third["prior_appointments"]) == (1.0, 1.0, 2.0)
    assert third["prior_no_show_rate"] == 0.5
    assert third["pending_same_day"] == 1.0
    assert third["booked_together"] == 1.0
    assert third["days_since_last_attended"] == 7.0
    assert third["days_since_last_no_show"] == 9.0
    assert third["lead_days"] == 8.0
    # and the first appointment knows nothing of the client's later outcomes
    first = features.iloc[0]
    assert (first["prior_no_shows"], first["prior_attended"]) == (0.0, 0.0)
    assert math.isnan(first["prior_no_show_rate"])
    assert math.isnan(first["days_since_last_attended"])
    # and the booking made on the 10th for the 20th is not yet known to the appointments of the 10th
    assert features.iloc[2]["pending_later"] == 0.0
    assert features.iloc[4]["prior_appointments"] == 4.0


def test_same_day_booking_is_scored_when_it_is_made() -> None:
    history = _history()
    instants = scoring_instants(history)
    assert str(instants.iloc[5]) == "2024-03-10 07:00:00"
    assert str(instants.iloc[2]) == "2024-03-10 00:00:00"
    assert str(scoring_instants(history, ScoringTime.BOOKING).iloc[2]) == "2024-03-02 08:00:00"


def test_booking_time_scoring_sees_less_history() -> None:
    features = build_features(_history(), ScoringTime.BOOKING)
    # booked on the 2nd, so only the miss of the 1st is known (the visit of the 3rd is not)
    assert (features.iloc[2]["prior_no_shows"], features.iloc[2]["prior_attended"]) == (1.0, 0.0)


def test_recent_rate_uses_only_days_before_the_scoring_day() -> None:
    history = _history()
    days = history["starts_at"].dt.normalize()
    rates = recent_no_show_rate(history, days, window_days=7)
    # on the 3rd the window [Feb 25, Mar 3) holds the miss of the 1st only; on the 10th, [Mar 3, Mar 10)
    assert rates.iloc[1] == 1.0
    assert rates.iloc[2] == 0.0
    assert math.isnan(rates.iloc[0])


def test_leak_guard_passes_the_feature_module() -> None:
    history, _ = simulate_history(clients=200, days=30)
    assert find_outcome_leaks(history) == []


def _leaky_builder(history: pd.DataFrame) -> pd.DataFrame:
    """The classic mistake: a per-client no-show count over the whole file, the row's own outcome included."""
    features = build_features(history)
    missed = (history["status"] == "no_show").astype(float)
    features["client_no_shows_all_time"] = missed.groupby(history["client_id"]).transform("sum")
    return features


def _own_outcome_builder(history: pd.DataFrame) -> pd.DataFrame:
    """Subtler: history that includes same-day appointments, whose outcome is not known in the morning."""
    features = build_features(history)
    frame = history.assign(day=history["starts_at"].dt.normalize(), missed=history["status"] == "no_show")
    by_day = frame.groupby(["client_id", "day"])["missed"].sum().groupby(level=0).cumsum()
    features["no_shows_through_today"] = by_day.reindex(
        pd.MultiIndex.from_frame(frame[["client_id", "day"]])
    ).to_numpy(dtype=float)
    return features


def test_leak_guard_names_a_feature_that_sees_the_outcome() -> None:
    # given a history and two builders that each add one leaking column
    history, _ = simulate_history(clients=200, days=30)
    # when the guard runs, then it names exactly the leaking columns
    assert find_outcome_leaks(history, _leaky_builder) == ["client_no_shows_all_time"]
    assert find_outcome_leaks(history, _own_outcome_builder) == ["no_shows_through_today"]


def test_booking_guard_passes_the_feature_module() -> None:
    # given a history where clients book 0-29 days ahead, many in the same second
    history, _ = simulate_history(clients=200, days=30)
    # when every booking made after the start or noon of a day is removed, then no row scored by then
    # moves, whether rows are scored at the start of their day or when booked
    assert find_booking_leaks(history) == []

    def at_booking(frame: pd.DataFrame) -> pd.DataFrame:
        return build_features(frame, ScoringTime.BOOKING)

    assert find_booking_leaks(history, at_booking, scoring=ScoringTime.BOOKING) == []


def _all_bookings_builder(history: pd.DataFrame) -> pd.DataFrame:
    """The existence mistake: the client's bookings in the whole file, those made later included."""
    features = build_features(history)
    features["client_bookings_in_file"] = history.groupby("client_id")["client_id"].transform("size")
    return features


def _same_day_volume_builder(history: pd.DataFrame) -> pd.DataFrame:
    """Subtler: the clinic's bookings for the appointment's day, including those made during that day."""
    features = build_features(history)
    day = history["starts_at"].dt.normalize()
    features["clinic_bookings_that_day"] = day.map(day.value_counts()).astype(float)
    return features


def test_booking_guard_names_a_feature_that_sees_later_bookings() -> None:
    # given a history and two builders that each add one column counting bookings not yet made
    history, _ = simulate_history(clients=200, days=30)
    # when the guard runs, then it names exactly those columns (and the outcome guard cannot see them)
    assert find_booking_leaks(history, _all_bookings_builder) == ["client_bookings_in_file"]
    assert find_booking_leaks(history, _same_day_volume_builder) == ["clinic_bookings_that_day"]
    assert find_outcome_leaks(history, _all_bookings_builder) == []


def test_a_booking_made_after_the_scoring_instant_changes_no_earlier_row() -> None:
    # given the history, and the same with a booking made on the 10th at 17:00 for the 12th
    history = _history()
    booking = {"client_id": "c", "booked_at": "2024-03-10T17:00", "starts_at": "2024-03-12"}
    later = make_history_frame([booking | {"status": "completed"}])
    extended = pd.concat([history, later.assign(appointment_id="99")], ignore_index=True)
    # then every row scored by then keeps its features; the row of the 20th, scored later, sees it
    before, after = build_features(history), build_features(extended)
    pd.testing.assert_frame_equal(before.iloc[:4], after.iloc[:4])
    pd.testing.assert_frame_equal(before.iloc[5:6], after.iloc[5:6])
    assert after.loc[4, "known_bookings"] == before.loc[4, "known_bookings"] + 1


def test_features_do_not_change_when_an_unknown_outcome_changes() -> None:
    # given the history, when the outcome of the last appointment flips
    history = _history()
    flipped = history.copy()
    flipped.loc[4, "status"] = "no_show"
    before, after = build_features(history), build_features(flipped)
    # then no row's features change (nothing is scored after the 20th)
    pd.testing.assert_frame_equal(before, after)
    assert np.array_equal(before.columns, after.columns)


def test_many_level_attributes_are_frequency_encoded_and_unseen_levels_are_missing() -> None:
    # given 40 neighbourhoods (more than the categorical limit of 30) and a 2-level attribute
    from medspa.retention.features import FeatureSchema, encode, infer_schema

    training = pd.DataFrame(
        {"x_neighbourhood": [f"n{i % 40}" for i in range(80)], "x_sex": ["F", "M"] * 40, "lead_days": 1.0}
    )
    schema = infer_schema(training)
    # then the neighbourhood becomes its share of training rows, the sex stays a category
    assert schema.numeric == ("lead_days",)
    assert list(schema.categorical) == ["x_sex"]
    assert schema.frequency["x_neighbourhood"]["n3"] == 2 / 80
    serving = pd.DataFrame({"x_neighbourhood": ["n3", "new"], "x_sex": ["M", "X"], "lead_days": [2.0, 3.0]})
    encoded = encode(serving, FeatureSchema.from_json(schema.to_json()))
    assert encoded["x_neighbourhood"].tolist()[0] == 0.025
    assert math.isnan(encoded["x_neighbourhood"].tolist()[1])
    assert encoded["x_sex"].astype(object).tolist()[0] == "M"
    assert pd.isna(encoded["x_sex"].tolist()[1])


def test_group_bookings_count_only_bookings_made_by_the_scoring_instant() -> None:
    # given two clients booked in the same minute, 20 seconds apart, for the same day
    rows = [
        ("a", "2024-03-10T08:00:10", "2024-03-10", "completed"),
        ("b", "2024-03-10T08:00:30", "2024-03-10", "no_show"),
        ("c", "2024-03-01T09:00:00", "2024-03-10", "completed"),
        ("d", "2024-03-01T09:00:00", "2024-03-11", "completed"),
    ]
    history = make_history_frame(
        [{"client_id": c, "booked_at": b, "starts_at": s, "status": st} for c, b, s, st in rows]
    )
    features = build_features(history)
    # then a's same-day booking, scored when made, does not see b's later one; b sees a's
    assert features["others_booked_same_minute"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert features["others_booked_same_second"].tolist() == [0.0, 0.0, 1.0, 1.0]
