from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from medspa.retention.next_best_action import (
    Action,
    ClientState,
    PolicySettings,
    in_quiet_hours,
    next_send_time,
    recommend,
)
from medspa.retention.scoring import recommend_for_scored

NOW = datetime(2024, 5, 15, 14, 0, tzinfo=UTC)


def _state(**changes: object) -> ClientState:
    base = ClientState(
        client_id="c1",
        lapse_risk=0.3,
        days_since_last_visit=20,
        cadence_days=30,
        has_future_booking=False,
        consent_email=True,
        consent_sms=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("risk", "days_since", "expected"),
    [
        (0.1, 10, Action.NONE),
        (0.1, 25, Action.NORMAL_REMINDER),
        (0.3, 31, Action.PERSONAL_REBOOKING),
        (0.55, 5, Action.PERSONAL_REBOOKING),
        (0.7, 35, Action.STAFF_OUTREACH),
        (0.85, 45, Action.STAFF_OUTREACH),
        (0.85, 61, Action.WIN_BACK_OFFER),
    ],
)
def test_action_follows_risk_and_cadence(risk: float, days_since: float, expected: Action) -> None:
    recommendation = recommend(_state(lapse_risk=risk, days_since_last_visit=days_since), now=NOW)
    assert recommendation.action is expected


def test_no_consent_means_no_action() -> None:
    recommendation = recommend(_state(lapse_risk=0.9, days_since_last_visit=90, consent_email=False), now=NOW)
    assert (recommendation.action, recommendation.reason) == (Action.NONE, "no_consent")


def test_recent_contact_suppresses() -> None:
    # given a win-back candidate contacted two days ago
    state = _state(lapse_risk=0.9, days_since_last_visit=90, contacts=[NOW - timedelta(days=2)])
    # then nothing is recommended, and with a one-day suppression window the offer comes back
    assert recommend(state, now=NOW).reason == "recently_contacted"
    relaxed = PolicySettings(suppression_days=1)
    assert recommend(state, now=NOW, settings=relaxed).action is Action.WIN_BACK_OFFER


def test_weekly_cap_counts_contacts_in_the_last_seven_days() -> None:
    settings = PolicySettings(suppression_days=0, max_contacts_per_week=2)
    two_this_week = [NOW - timedelta(days=4), NOW - timedelta(days=6)]
    capped = recommend(_state(days_since_last_visit=40, contacts=two_this_week), now=NOW, settings=settings)
    assert (capped.action, capped.reason) == (Action.NONE, "weekly_cap_reached")
    one_this_week = [NOW - timedelta(days=4), NOW - timedelta(days=8)]
    allowed = recommend(_state(days_since_last_visit=40, contacts=one_this_week), now=NOW, settings=settings)
    assert allowed.action is Action.PERSONAL_REBOOKING


def test_future_booking_means_the_reminders_handle_it() -> None:
    recommendation = recommend(_state(days_since_last_visit=40, has_future_booking=True), now=NOW)
    assert (recommendation.action, recommendation.reason) == (Action.NONE, "already_booked")


def test_quiet_hours_delay_messages_but_not_staff_tasks() -> None:
    late = datetime(2024, 5, 15, 22, 30, tzinfo=UTC)
    message = recommend(_state(days_since_last_visit=40), now=late)
    assert message.send_after == datetime(2024, 5, 16, 9, 0, tzinfo=UTC)
    task = recommend(_state(lapse_risk=0.7, days_since_last_visit=40), now=late)
    assert (task.action, task.send_after) == (Action.STAFF_OUTREACH, None)
    daytime = recommend(_state(days_since_last_visit=40), now=NOW)
    assert daytime.send_after == NOW


def test_quiet_window_wraps_midnight() -> None:
    settings = PolicySettings()
    assert in_quiet_hours(datetime(2024, 5, 15, 3, 0, tzinfo=UTC), settings)
    assert not in_quiet_hours(datetime(2024, 5, 15, 9, 0, tzinfo=UTC), settings)
    three_am = datetime(2024, 5, 15, 3, 0, tzinfo=UTC)
    assert next_send_time(three_am, "UTC", settings) == datetime(2024, 5, 15, 9, 0, tzinfo=UTC)


def test_quiet_hours_are_judged_on_the_clients_clock() -> None:
    # given 14:00 UTC, which is 22:00 in Singapore (UTC+8)
    state = _state(days_since_last_visit=40, time_zone="Asia/Singapore")
    recommendation = recommend(state, now=NOW)
    # then the message waits for 09:00 Singapore time, 01:00 UTC the next day
    assert recommendation.send_after == datetime(2024, 5, 16, 1, 0, tzinfo=UTC)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        recommend(_state(), now=NOW.replace(tzinfo=None))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="lapse_risk"):
        recommend(_state(lapse_risk=1.5), now=NOW)
    with pytest.raises(ValueError, match="cadence_days"):
        recommend(_state(cadence_days=0), now=NOW)
    with pytest.raises(ValueError, match="outreach_risk"):
        PolicySettings(outreach_risk=2.0)


def test_consent_not_recorded_does_not_stop_a_recommendation_but_is_said() -> None:
    unknown = replace(_state(lapse_risk=0.9, days_since_last_visit=90), consent_email=None, consent_sms=None)
    recommendation = recommend(unknown, now=NOW)
    assert (recommendation.action, recommendation.consent_recorded) == (Action.WIN_BACK_OFFER, False)
    refused = replace(unknown, consent_email=False, consent_sms=False)
    assert recommend(refused, now=NOW).reason == "no_consent"


def test_every_scored_client_gets_a_logged_recommendation(caplog: pytest.LogCaptureFixture) -> None:
    # given three scored clients: long overdue and at risk, booked ahead, and never seen
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    base = {"horizon_days": 90, "cadence_days": 30.0}
    rows = [
        base | {"client_id": "a", "lapse_risk": 0.9, "last_visit_on": date(2025, 12, 1)},
        base | {"client_id": "b", "lapse_risk": 0.9, "last_visit_on": date(2025, 12, 1)},
        base | {"client_id": "c", "lapse_risk": None, "last_visit_on": None, "cadence_days": None},
    ]
    # when the policy runs over them
    with caplog.at_level(logging.INFO, logger="medspa.retention.scoring"):
        recommend_for_scored(rows, {"b"}, now=now, time_zone="America/New_York")
    # then each row carries its recommendation, the ones that act are logged, and a count per action
    assert [(r["next_action"], r["next_action_reason"]) for r in rows] == [
        ("win_back_offer", "high_lapse_risk_long_overdue; consent not checked"),
        ("none", "already_booked"),
        ("none", "no_visit_yet"),
    ]
    assert rows[0]["next_action_send_after"] == now
    assert all("cadence_days" not in r for r in rows)
    assert "next best action for client a: win_back_offer" in caplog.text
    assert "next best actions: none 2, win_back_offer 1" in caplog.text
