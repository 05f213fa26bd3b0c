"""Next-best-action: a pure policy from lapse risk and service cadence to one recommended action.

It only recommends. Sending is a later issue and goes through the agent policy gate; nothing here has
side effects, reads a clock or touches a database: every input, including "now", is passed in.

Rules, in order (the first that applies decides):

1. Consent refused on every channel -> `NONE` ("no_consent"). Consent not recorded (None) does not stop
   a recommendation; the recommendation says so (`consent_recorded` False), and whoever sends must ask.
2. A contact in the last `suppression_days` -> `NONE` ("recently_contacted").
3. `max_contacts_per_week` contacts in the 7 days before now -> `NONE` ("weekly_cap_reached").
4. A future booking exists -> `NONE` ("already_booked"): the booking's own reminders handle it.
5. Otherwise the action follows how overdue the client is against their service cadence
   (`days_since_last_visit / cadence_days`) and their lapse risk (P(no visit in the coming period), 0-1):
   - lapse risk >= `win_back_risk` and overdue >= `win_back_overdue` -> `WIN_BACK_OFFER`
   - lapse risk >= `outreach_risk` and overdue >= 1 -> `STAFF_OUTREACH`
   - overdue >= 1 (or lapse risk >= `rebook_risk`) -> `PERSONAL_REBOOKING`
   - overdue >= `reminder_overdue` -> `NORMAL_REMINDER`
   - else `NONE` ("not_due").
6. Quiet hours: a message-type action is never *sent* in quiet hours; the recommendation carries
   `send_after`, the first instant outside them, judged on the client's local clock (IANA zone).
   Staff outreach is a task for a person and is not delayed.

Instants (`now`, contacts, `send_after`) are timezone-aware; naive ones are refused.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


class Action(enum.StrEnum):
    NONE = "none"
    NORMAL_REMINDER = "normal_reminder"
    PERSONAL_REBOOKING = "personal_rebooking"
    STAFF_OUTREACH = "staff_outreach"
    WIN_BACK_OFFER = "win_back_offer"


MESSAGE_ACTIONS = frozenset({Action.NORMAL_REMINDER, Action.PERSONAL_REBOOKING, Action.WIN_BACK_OFFER})


@dataclass(frozen=True)
class PolicySettings:
    """Thresholds of the policy; risks are probabilities in [0, 1], times are local wall-clock."""

    max_contacts_per_week: int = 2
    suppression_days: int = 3
    reminder_overdue: float = 0.8
    rebook_risk: float = 0.5
    outreach_risk: float = 0.6
    win_back_risk: float = 0.8
    win_back_overdue: float = 2.0
    quiet_start: time = time(20, 0)
    quiet_end: time = time(9, 0)

    def __post_init__(self) -> None:
        for name in ("rebook_risk", "outreach_risk", "win_back_risk"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value}")
        if self.max_contacts_per_week < 0 or self.suppression_days < 0:
            raise ValueError("caps and suppression windows cannot be negative")


@dataclass(frozen=True)
class ClientState:
    """What the policy knows about one client at `now`.

    `lapse_risk`: P(no visit in the coming period) from the return-time model, in [0, 1].
    `cadence_days`: the usual days between visits for the client's service (> 0).
    `contacts`: aware instants of past contacts (any channel), any order.
    `time_zone`: the client's IANA zone, for quiet hours.
    """

    client_id: str
    lapse_risk: float
    days_since_last_visit: float
    cadence_days: float
    has_future_booking: bool
    consent_email: bool | None
    consent_sms: bool | None
    contacts: Sequence[datetime] = ()
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Recommendation:
    client_id: str
    action: Action
    reason: str
    send_after: datetime | None = None
    consent_recorded: bool = True


def in_quiet_hours(local_moment: datetime, settings: PolicySettings) -> bool:
    """True if the local wall-clock time falls in the quiet window; the window may wrap past midnight."""
    clock = local_moment.time()
    if settings.quiet_start <= settings.quiet_end:
        return settings.quiet_start <= clock < settings.quiet_end
    return clock >= settings.quiet_start or clock < settings.quiet_end


def next_send_time(moment: datetime, time_zone: str, settings: PolicySettings) -> datetime:
    """`moment` itself outside the client's quiet hours, else the end of the quiet window containing it
    (an aware instant in `moment`'s zone)."""
    zone = ZoneInfo(time_zone)
    local = moment.astimezone(zone)
    if not in_quiet_hours(local, settings):
        return moment
    end_today = datetime.combine(local.date(), settings.quiet_end, tzinfo=zone)
    end = (
        end_today
        if end_today > local
        else datetime.combine(local.date() + timedelta(days=1), settings.quiet_end, tzinfo=zone)
    )
    return end.astimezone(moment.tzinfo)


def recommend(state: ClientState, *, now: datetime, settings: PolicySettings | None = None) -> Recommendation:
    """The one action for `state` at `now` (see the module docstring for the rules and their order)."""
    settings = settings or PolicySettings()
    if now.tzinfo is None or any(c.tzinfo is None for c in state.contacts):
        raise ValueError("now and contact instants must be timezone-aware")
    if not 0.0 <= state.lapse_risk <= 1.0:
        raise ValueError(f"lapse_risk must be in [0, 1], got {state.lapse_risk}")
    if state.cadence_days <= 0:
        raise ValueError(f"cadence_days must be positive, got {state.cadence_days}")
    consents = (state.consent_email, state.consent_sms)
    if not any(consents) and None not in consents:
        return Recommendation(state.client_id, Action.NONE, "no_consent")
    recorded = None not in consents
    past = [c for c in state.contacts if c <= now]
    if any(now - c < timedelta(days=settings.suppression_days) for c in past):
        return Recommendation(state.client_id, Action.NONE, "recently_contacted")
    if sum(1 for c in past if now - c < timedelta(days=7)) >= settings.max_contacts_per_week:
        return Recommendation(state.client_id, Action.NONE, "weekly_cap_reached")
    if state.has_future_booking:
        return Recommendation(state.client_id, Action.NONE, "already_booked")
    overdue = state.days_since_last_visit / state.cadence_days
    action, reason = _by_risk_and_cadence(state.lapse_risk, overdue, settings)
    if action in MESSAGE_ACTIONS:
        send_after = next_send_time(now, state.time_zone, settings)
        return Recommendation(
            state.client_id, action, reason, send_after=send_after, consent_recorded=recorded
        )
    return Recommendation(state.client_id, action, reason, consent_recorded=recorded)


def _by_risk_and_cadence(risk: float, overdue: float, settings: PolicySettings) -> tuple[Action, str]:
    if risk >= settings.win_back_risk and overdue >= settings.win_back_overdue:
        return Action.WIN_BACK_OFFER, "high_lapse_risk_long_overdue"
    if risk >= settings.outreach_risk and overdue >= 1.0:
        return Action.STAFF_OUTREACH, "lapse_risk_overdue"
    if overdue >= 1.0 or risk >= settings.rebook_risk:
        return Action.PERSONAL_REBOOKING, "due_for_rebooking"
    if overdue >= settings.reminder_overdue:
        return Action.NORMAL_REMINDER, "due_soon"
    return Action.NONE, "not_due"


def recommend_all(
    states: Sequence[ClientState], *, now: datetime, settings: PolicySettings | None = None
) -> list[Recommendation]:
    """`recommend` for each client, in input order."""
    return [recommend(state, now=now, settings=settings) for state in states]
