"""The rules every message passes just before it is sent: consent, quiet hours, caps, recent contact.

Pure functions of what is known at that moment (`Facts`, the location's `Policy` and zone, the times
of the client's recent messages), so that property-based tests can hold them to their promises:
nothing is sent in quiet hours, nothing over a cap, nothing without consent for that kind of message.

- Consent: every message needs the client's permission for its channel; a `marketing` message (a
  follow-up cadence, lapse outreach) needs the marketing permission as well.
- Quiet hours (the location's wall clock, default 21:00-08:00): a message due in them waits for their
  end, or is dropped when that is past its `not_after` (a reminder after the appointment started).
- Caps: at most `daily_cap` messages to a client in any 24 hours and `weekly_cap` in any 7 days.
- Recent contact: a marketing message is dropped when the client heard from the clinic within
  `recent_contact_hours` (its own copy by the other channel aside: a message goes by every channel
  the client allows).

A reply (`is_reply`: the confirmation of a booking, reschedule or cancellation the client just made, or
the answer to their acceptance of an offer) is exempt from quiet hours and caps, as the client is
waiting for it; it still needs consent for its channel. It counts towards the caps of later messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final, Literal

from medspa.kit import tz

DAY: Final = timedelta(hours=24)
WEEK: Final = timedelta(days=7)


@dataclass(frozen=True)
class Policy:
    """A location's limits on messages; the defaults stand until a manager sets its own."""

    quiet_starts_at: time = time(21, 0)
    quiet_ends_at: time = time(8, 0)
    daily_cap: int = 3
    weekly_cap: int = 8
    recent_contact_hours: int = 72
    reminder_hours: tuple[int, ...] = (72, 24)
    sms_reminder_hours: tuple[int, ...] = (2,)
    offer_expiry_minutes: int = 20
    open_offers_per_slot: int = 3
    offers_per_client_per_day: int = 3
    # Controlled overbooking: the expected minutes of provider time beyond capacity allowed per provider
    # and day (0: no overbooking).
    overbooking_cap_minutes: int = 0


DEFAULTS: Final = Policy()

Channel = Literal["email", "sms"]
Purpose = Literal["appointment", "marketing"]


@dataclass(frozen=True)
class Facts:
    """What the rules need to know of one message and its client, at the moment of sending."""

    channel: Channel
    purpose: Purpose
    is_reply: bool
    not_after: datetime | None
    has_address: bool
    channel_consent: bool
    marketing_consent: bool


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "defer", "suppress"]
    reason: str
    until: datetime | None = None  # for `defer`: when to try again


def is_quiet(policy: Policy, zone_name: str, instant: datetime) -> bool:
    """Whether `instant` falls in the location's quiet hours (its local wall clock). A window whose
    start is after its end spans midnight; equal start and end mean no quiet hours."""
    start, end = policy.quiet_starts_at, policy.quiet_ends_at
    wall = tz.to_local(instant, zone_name).time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_ends(policy: Policy, zone_name: str, instant: datetime) -> datetime:
    """The first instant at or after `instant` outside quiet hours (`instant` itself when it is not in
    them). On a day the clocks change, the end's wall-clock time is found on that day's clock (a time
    in the spring-forward gap moves to the first minute after it)."""
    if not is_quiet(policy, zone_name, instant):
        return instant
    local_day = tz.to_local(instant, zone_name).date()
    minutes = policy.quiet_ends_at.hour * 60 + policy.quiet_ends_at.minute
    for day in (local_day, local_day + timedelta(days=1)):
        end = tz.local_minutes_to_utc(day, minutes, zone_name)
        if end > instant:
            return end
    raise AssertionError("quiet hours end within a day")  # pragma: no cover - a window is < 24 h


def cap_reached(policy: Policy, now: datetime, recent_sends: Sequence[datetime]) -> str | None:
    """Why one more message to the client now would exceed a cap, or None. `recent_sends` are the times
    of the client's messages sent (or being sent) before `now`."""
    in_day = sum(1 for sent in recent_sends if now - DAY < sent <= now)
    if in_day >= policy.daily_cap:
        return f"daily cap: {in_day} messages in the last 24 hours (cap {policy.daily_cap})"
    in_week = sum(1 for sent in recent_sends if now - WEEK < sent <= now)
    if in_week >= policy.weekly_cap:
        return f"weekly cap: {in_week} messages in the last 7 days (cap {policy.weekly_cap})"
    return None


def decide(
    facts: Facts,
    policy: Policy,
    zone_name: str,
    now: datetime,
    recent_sends: Sequence[datetime],
    *,
    recent_contacts: Sequence[datetime] | None = None,
) -> Decision:
    """Send now, wait (`until`), or drop a message, and why. `recent_sends` count towards the caps;
    `recent_contacts` (by default the same) are what recent contact looks at: the dispatcher leaves out
    the message's own copy by the other channel."""
    if not facts.has_address:
        return Decision("suppress", f"no {'e-mail address' if facts.channel == 'email' else 'phone'}")
    if not facts.channel_consent:
        return Decision("suppress", f"the client does not allow {facts.channel} messages")
    if facts.purpose == "marketing" and not facts.marketing_consent:
        return Decision("suppress", "the client does not allow marketing messages")
    if facts.not_after is not None and now >= facts.not_after:
        return Decision("suppress", "too late: what it was about has started or passed")
    if facts.is_reply:
        return Decision("send", "a reply to the client's own action")
    if is_quiet(policy, zone_name, now):
        until = quiet_ends(policy, zone_name, now)
        if facts.not_after is not None and until >= facts.not_after:
            return Decision("suppress", "quiet hours last until it is too late")
        return Decision("defer", "quiet hours", until)
    reached = cap_reached(policy, now, recent_sends)
    if reached:
        return Decision("suppress", reached)
    contacts = recent_sends if recent_contacts is None else recent_contacts
    if facts.purpose == "marketing" and any(
        now - timedelta(hours=policy.recent_contact_hours) < sent <= now for sent in contacts
    ):
        return Decision("suppress", f"contacted within the last {policy.recent_contact_hours} hours")
    return Decision("send", "within the location's rules")
