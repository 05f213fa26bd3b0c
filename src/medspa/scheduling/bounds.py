"""How far ahead a location takes bookings and waitlist entries: within its booking horizon, never in
its past. (The range of dates any input may carry is `kit.schemas`'; these bounds depend on the
location, so they are checked where a booking or waitlist entry is made.)"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from medspa.kit.errors import ValidationFailedError
from medspa.kit.tz import to_local
from medspa.resources.schemas import LocationRead


def last_bookable_date(location: LocationRead, now: datetime) -> date:
    """The location's last local date on which a booking may start: today there plus its horizon."""
    return to_local(now, location.time_zone).date() + timedelta(days=location.booking_horizon_days)


def require_within_horizon(location: LocationRead, starts_at: datetime, now: datetime) -> None:
    """ValidationFailedError on `starts_at` when it falls after the location's booking horizon."""
    last = last_bookable_date(location, now)
    if to_local(starts_at, location.time_zone).date() > last:
        raise ValidationFailedError("starts_at", _beyond(location, last))


def require_bookable_date(location: LocationRead, service_date: date, now: datetime) -> None:
    """ValidationFailedError on `service_date` when it is before the location's today or after its
    booking horizon."""
    today = to_local(now, location.time_zone).date()
    if service_date < today:
        raise ValidationFailedError(
            "service_date", f"{service_date.isoformat()} has passed at {location.name}"
        )
    last = last_bookable_date(location, now)
    if service_date > last:
        raise ValidationFailedError("service_date", _beyond(location, last))


def _beyond(location: LocationRead, last: date) -> str:
    return (
        f"beyond the booking horizon of {location.name} ({location.booking_horizon_days} days: "
        f"the last bookable date is {last.isoformat()})"
    )
