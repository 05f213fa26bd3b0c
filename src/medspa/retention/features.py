"""No-show features from appointment history: one function for training and serving.

Every feature of an appointment is computed *as of its scoring instant* and may use only what was known
then:

- The scoring instant `as_of` of appointment *i* is, by default (`ScoringTime.APPOINTMENT_DAY`), the start
  of its appointment day, or its booking time if it was booked later that same day (a same-day booking is
  scored when it is made). With `ScoringTime.BOOKING` it is the booking time.
- The *outcome* (status) of another appointment *j* of the same client is known at `as_of` only if *j*'s
  day ended before it: `day(j.starts_at) < day(as_of)`. An appointment's own outcome is never known.
- The *existence* of another appointment *j* (booked, not yet happened) is known if it was booked at or
  before `as_of`. Without a booking time, *j* is taken as booked at the start of its own day.

Features: lead time (days, hours), booking hour and weekday, appointment weekday and hour, reminder flag,
price, service/provider/location and `x_*` attributes; from the client's history: attended, missed and
cancelled appointments on earlier days, their rate and recency, bookings known but not yet happened (same
day, before, later; days to the next one), bookings made together, bookings made since this one, bookings
made on the day of another appointment, days since the client was first seen; from other clients: how many
were booked in the same second / minute (a family or group). `clinic_no_show_rate_recent` is context for
the calibration, not a model input.

Two guards check these invariants empirically for any feature builder and report every feature column
that moved: `find_outcome_leaks` rewrites outcomes that were not known yet (every outcome from a day on),
`find_booking_leaks` removes bookings that had not been made yet (every booking after an instant). The
status column itself never enters the feature matrix.

Units: `*_days` are days (float; calendar-day differences), `*_hour` is the hour of day 0-23, weekdays are
0 = Monday; counts are appointment counts. Missing values are NaN (LightGBM handles them natively).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

# 2: the recent no-show rate (the calibration's context) is taken over 28 days, not 7; a model trained
# with version 1 kept a 7-day reference rate, so it is refused and must be trained again.
FEATURE_VERSION: Final = 2
ATTENDED: Final = "completed"
MISSED: Final = "no_show"
CANCELLED: Final = frozenset({"cancelled", "late_cancelled"})
LABELLED: Final = frozenset({ATTENDED, MISSED})
_TEXT_COLUMNS: Final = ("service", "service_category", "provider", "location")


def _days(delta: pd.Series) -> pd.Series:
    """A timedelta series in (fractional) days."""
    seconds: pd.Series = delta.dt.total_seconds()
    return seconds / 86400.0


RECENT_RATE_COLUMN: Final = "clinic_no_show_rate_recent"
MAX_CATEGORY_LEVELS: Final = 30
# 28 days, not 7: measured on the inner fold (fit before 2016-05-10, scored to 05-24), the shift by the
# 28-day rate ranks as well (ROC AUC 0.7520 against 0.7519) and calibrates better (ECE 0.0269 against
# 0.0293) than by the 7-day rate, whose day-to-day noise moves whole days against each other.
RECENT_RATE_WINDOW_DAYS: Final = 28


class ScoringTime(enum.StrEnum):
    """When an appointment is scored, which fixes what may be known about it."""

    APPOINTMENT_DAY = "appointment_day"
    BOOKING = "booking"


@dataclass(frozen=True)
class FeatureSchema:
    """The columns a model was trained on, frozen at training time.

    `categorical`: columns with few levels (<= `MAX_CATEGORY_LEVELS`), given to LightGBM as categories;
    a level first seen at serving time becomes missing. `frequency`: columns with many levels (a patient's
    neighbourhood, say), encoded as the share of training rows with that level (unseen -> missing),
    because LightGBM's categorical splits over-fit many small levels (measured on Brazil, docs/models.md).
    """

    numeric: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]]
    frequency: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.frequency, *self.categorical]

    def to_json(self) -> dict[str, object]:
        return {
            "numeric": list(self.numeric),
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "frequency": {k: dict(v) for k, v in self.frequency.items()},
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> FeatureSchema:
        numeric = data["numeric"]
        categorical = data["categorical"]
        frequency = data.get("frequency", {})
        assert isinstance(numeric, list)
        assert isinstance(categorical, dict)
        assert isinstance(frequency, dict)
        return FeatureSchema(
            numeric=tuple(str(c) for c in numeric),
            categorical={str(k): tuple(str(v) for v in values) for k, values in categorical.items()},
            frequency={
                str(k): {str(level): float(share) for level, share in shares.items()}
                for k, shares in frequency.items()
            },
        )


def scoring_instants(history: pd.DataFrame, scoring: ScoringTime = ScoringTime.APPOINTMENT_DAY) -> pd.Series:
    """The scoring instant of every appointment (naive datetime64, the clinic's wall time)."""
    start_day = history["starts_at"].dt.normalize()
    booked = history["booked_at"]
    if scoring is ScoringTime.BOOKING:
        return booked.fillna(start_day)
    return booked.where(booked > start_day, start_day).fillna(start_day)


def build_features(history: pd.DataFrame, scoring: ScoringTime = ScoringTime.APPOINTMENT_DAY) -> pd.DataFrame:
    """Feature frame (same index as `history`) for every appointment in `history`.

    `history` is an `appointment-history` frame as read by `formats.read_appointment_history`; it may hold
    appointments whose outcome is not known yet (any status value: it is not read for them).
    Categorical columns come back as strings (`object`); `encode` turns them into model input.
    """
    frame = history.reset_index(drop=True)
    as_of = scoring_instants(frame, scoring)
    as_of_day = as_of.dt.normalize()
    start_day = frame["starts_at"].dt.normalize()
    booked = frame["booked_at"]
    out = pd.DataFrame(index=frame.index)
    out["lead_days"] = _days(start_day - booked.dt.normalize())
    out["lead_hours"] = _days(frame["starts_at"] - booked) * 24.0
    out["booked_hour"] = booked.dt.hour + booked.dt.minute / 60.0
    out["booked_weekday"] = booked.dt.day_of_week.astype(float)
    out["start_weekday"] = frame["starts_at"].dt.day_of_week.astype(float)
    start_hour = frame["starts_at"].dt.hour + frame["starts_at"].dt.minute / 60.0
    out["start_hour"] = start_hour.where(frame["starts_at"] != start_day)
    out["reminder_sent"] = frame["reminder_sent"].astype(float)
    out["price"] = frame["price"].astype(float)
    history_features = _client_history(frame, as_of, as_of_day, start_day)
    out = out.join(history_features)
    out = out.join(_shared_booking_instants(frame, as_of))
    out[RECENT_RATE_COLUMN] = recent_no_show_rate(frame, as_of_day)
    for column in _TEXT_COLUMNS:
        values = frame[column].astype(object)
        if bool((values.fillna("") != "").any()):
            out[column] = values.where(values != "", None)
    for column in frame.columns:
        if str(column).startswith("x_"):
            out[column] = frame[column]
    out.index = history.index
    return out


def _client_history(
    frame: pd.DataFrame, as_of: pd.Series, as_of_day: pd.Series, start_day: pd.Series
) -> pd.DataFrame:
    """Counts and recencies over the client's other appointments, as known at each row's `as_of`."""
    booked_effective = frame["booked_at"].fillna(start_day)
    left = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "client_id": frame["client_id"].to_numpy(),
            "as_of": as_of.to_numpy(),
            "as_of_day": as_of_day.to_numpy(),
            "start_day": start_day.to_numpy(),
            "booked": frame["booked_at"].to_numpy(),
        }
    )
    right = pd.DataFrame(
        {
            "other": np.arange(len(frame)),
            "client_id": frame["client_id"].to_numpy(),
            "o_start_day": start_day.to_numpy(),
            "o_booked": booked_effective.to_numpy(),
            "o_status": frame["status"].astype(str).to_numpy(),
        }
    )
    pairs = left.merge(right, on="client_id", how="inner")
    pairs = pairs[pairs["row"] != pairs["other"]]
    outcome_known = (pairs["o_start_day"] < pairs["as_of_day"]).to_numpy()
    # A status is read only where its outcome was known; elsewhere it is blanked before any use.
    status = np.where(outcome_known, pairs["o_status"].to_numpy(), "")
    booking_known = (pairs["o_booked"] <= pairs["as_of"]).to_numpy()
    attended = status == ATTENDED
    missed = status == MISSED
    cancelled = np.isin(status, list(CANCELLED))
    not_happened = booking_known & ~outcome_known
    same_day = not_happened & (pairs["o_start_day"] == pairs["start_day"]).to_numpy()
    later = not_happened & (pairs["o_start_day"] > pairs["start_day"]).to_numpy()
    same_batch = booking_known & (pairs["o_booked"] == pairs["booked"]).to_numpy()
    # Bookings the client made after booking this one (rebooking activity), and bookings made on the day
    # of another of their appointments (typically a follow-up booked at the desk).
    booked_since = booking_known & (pairs["o_booked"] > pairs["booked"]).to_numpy()
    booked_on_visit_day = booking_known & (pairs["o_start_day"] == pairs["booked"].dt.normalize()).to_numpy()
    o_day = pairs["o_start_day"].to_numpy()
    nat = np.datetime64("NaT")
    parts = pd.DataFrame(
        {
            "row": pairs["row"].to_numpy(),
            "prior_attended": attended,
            "prior_no_shows": missed,
            "prior_cancellations": cancelled,
            "known_bookings": booking_known,
            "pending_same_day": same_day,
            "pending_later": later,
            "pending_before": not_happened & ~same_day & ~later,
            "booked_together": same_batch,
            "booked_since_for_later": booked_since & (pairs["o_start_day"] > pairs["start_day"]).to_numpy(),
            "booked_since_for_earlier": booked_since & (pairs["o_start_day"] < pairs["start_day"]).to_numpy(),
            "booked_on_appointment_day": booked_on_visit_day,
            "last_attended_day": np.where(attended, o_day, nat),
            "last_no_show_day": np.where(missed, o_day, nat),
            "first_seen": np.where(booking_known, pairs["o_booked"].to_numpy(), nat),
            "next_pending_day": np.where(later, o_day, nat),
        }
    )
    grouped = parts.groupby("row")
    counts = grouped[
        [
            "prior_attended",
            "prior_no_shows",
            "prior_cancellations",
            "known_bookings",
            "pending_same_day",
            "pending_later",
            "pending_before",
            "booked_together",
            "booked_since_for_later",
            "booked_since_for_earlier",
            "booked_on_appointment_day",
        ]
    ].sum()
    recency = grouped[["last_attended_day", "last_no_show_day"]].max()
    firsts = grouped[["first_seen", "next_pending_day"]].min()
    result = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    result = result.join(counts).join(recency).join(firsts)
    count_columns = list(counts.columns)
    result[count_columns] = result[count_columns].fillna(0).astype(float)
    prior = result["prior_attended"] + result["prior_no_shows"]
    result["prior_appointments"] = prior
    result["prior_no_show_rate"] = (result["prior_no_shows"] / prior).where(prior > 0)
    as_of_values = as_of_day.reset_index(drop=True)
    result["days_since_last_attended"] = _days(as_of_values - result["last_attended_day"])
    result["days_since_last_no_show"] = _days(as_of_values - result["last_no_show_day"])
    result["days_since_first_seen"] = _days(as_of.reset_index(drop=True) - result["first_seen"])
    result["days_to_next_pending"] = _days(result["next_pending_day"] - start_day.reset_index(drop=True))
    return result.drop(columns=["last_attended_day", "last_no_show_day", "first_seen", "next_pending_day"])


def _shared_booking_instants(frame: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """How many other clients were booked in the same second / minute as this booking (a family or a group
    booked in one session), counting only bookings made by the scoring instant."""
    booked = frame["booked_at"]
    rows = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "client_id": frame["client_id"].to_numpy(),
            "booked": booked.to_numpy(),
            "minute": booked.dt.floor("min").to_numpy(),
            "as_of": as_of.to_numpy(),
        }
    ).dropna(subset=["booked"])
    pairs = rows.merge(
        rows[["client_id", "booked", "minute"]].rename(columns={"client_id": "other", "booked": "o_booked"}),
        on="minute",
    )
    pairs = pairs[(pairs["other"] != pairs["client_id"]) & (pairs["o_booked"] <= pairs["as_of"])]
    out = pd.DataFrame(index=frame.index)
    same_second = pairs[pairs["o_booked"] == pairs["booked"]]
    for name, selected in (("others_booked_same_second", same_second), ("others_booked_same_minute", pairs)):
        counts = selected.groupby("row")["other"].nunique()
        values = counts.reindex(np.arange(len(frame)), fill_value=0).to_numpy(dtype=float)
        out[name] = pd.Series(values, index=frame.index).where(booked.notna())
    return out


def recent_no_show_rate(
    history: pd.DataFrame, as_of_day: pd.Series, *, window_days: int = RECENT_RATE_WINDOW_DAYS
) -> pd.Series:
    """The clinic-wide no-show rate over attended or missed appointments in the `window_days` days before
    each row's scoring day (`[as_of_day - window_days, as_of_day)`, all clients); NaN when there were none.

    It is context for calibration (the base rate drifts), not a model input: outcomes of that window were
    all known at the scoring instant.
    """
    start_day = history["starts_at"].dt.normalize()
    labelled = history["status"].isin(list(LABELLED)).to_numpy()
    if not labelled.any():
        return pd.Series(np.nan, index=history.index)
    missed = (history["status"] == MISSED).to_numpy()
    days = pd.date_range(
        min(start_day.min(), as_of_day.min()) - pd.Timedelta(days=window_days),
        max(start_day.max(), as_of_day.max()),
    )
    daily_missed = pd.Series(missed[labelled].astype(float), index=start_day[labelled]).groupby(level=0).sum()
    daily_total = pd.Series(1.0, index=start_day[labelled]).groupby(level=0).sum()
    missed_cum = daily_missed.reindex(days, fill_value=0.0).cumsum().shift(1, fill_value=0.0)
    total_cum = daily_total.reindex(days, fill_value=0.0).cumsum().shift(1, fill_value=0.0)
    # cum.shift(1) at day d = outcomes of days < d; the window is cum(<d) - cum(<d - window).
    end_missed = missed_cum.reindex(as_of_day.to_numpy()).to_numpy()
    end_total = total_cum.reindex(as_of_day.to_numpy()).to_numpy()
    begin = (as_of_day - pd.Timedelta(days=window_days)).to_numpy()
    window_missed = end_missed - missed_cum.reindex(begin).to_numpy()
    window_total = end_total - total_cum.reindex(begin).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(window_total > 0, window_missed / window_total, np.nan)
    return pd.Series(rate, index=history.index)


def infer_schema(features: pd.DataFrame, *, max_levels: int = MAX_CATEGORY_LEVELS) -> FeatureSchema:
    """Split feature columns into numeric, categorical (<= `max_levels` levels) and frequency-encoded
    (more levels) columns, from the rows given (the training rows)."""
    numeric: list[str] = []
    categorical: dict[str, tuple[str, ...]] = {}
    frequency: dict[str, dict[str, float]] = {}
    for column in features.columns:
        series = features[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(str(column))
            continue
        counts = series.dropna().astype(str).value_counts()
        if len(counts) <= max_levels:
            categorical[str(column)] = tuple(sorted(counts.index.tolist()))
        else:
            shares = counts / max(len(series), 1)
            frequency[str(column)] = {str(k): float(v) for k, v in shares.items()}
    return FeatureSchema(numeric=tuple(numeric), categorical=categorical, frequency=frequency)


def _texts(features: pd.DataFrame, column: str) -> pd.Series:
    """A column as strings with missing values as None (an absent column is all missing)."""
    if column not in features:
        return pd.Series([None] * len(features), index=features.index, dtype=object)
    values = features[column].astype(object)
    return values.map(lambda v: None if v is None or v != v else str(v))


def encode(features: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Model input: numeric columns as float, frequency-encoded columns as their training share, and
    categorical ones as `category` with the schema's levels (unseen levels and absent columns: missing)."""
    out = pd.DataFrame(index=features.index)
    for column in schema.numeric:
        out[column] = features[column].astype(float) if column in features else np.nan
    for column, shares in schema.frequency.items():
        out[column] = _texts(features, column).map(shares).astype(float)
    for column, levels in schema.categorical.items():
        texts = _texts(features, column)
        known = texts.where(texts.isin(levels), None)
        out[column] = pd.Categorical(known, categories=levels)
    return out


FeatureBuilder = Callable[[pd.DataFrame], pd.DataFrame]


def _default_cut_days(history: pd.DataFrame) -> list[pd.Timestamp]:
    """Three appointment days spread over the history (30, 60 and 90 % of its distinct days)."""
    days = np.sort(history["starts_at"].dt.normalize().unique())
    return [pd.Timestamp(days[int(len(days) * q)]) for q in (0.3, 0.6, 0.9)] if len(days) else []


def _moved_columns(base: pd.DataFrame, rebuilt: pd.DataFrame, rows: pd.Series) -> set[str]:
    """Columns of `base` whose values on the `rows` (a boolean mask over `base`'s index) differ in
    `rebuilt` (matched by index), or that `rebuilt` lacks."""
    checked = rows[rows].index
    moved: set[str] = set()
    for column in base.columns:
        if column not in rebuilt or not _same_values(base.loc[checked, column], rebuilt.loc[checked, column]):
            moved.add(str(column))
    return moved


def find_outcome_leaks(
    history: pd.DataFrame,
    builder: FeatureBuilder = build_features,
    *,
    cut_days: Sequence[pd.Timestamp] | None = None,
    scoring: ScoringTime = ScoringTime.APPOINTMENT_DAY,
) -> list[str]:
    """Feature columns that change when outcomes not yet known at a row's scoring instant change.

    For each cut day D (default: three days spread over the history), every appointment on day D or later
    gets a different outcome (attended <-> missed, cancelled -> attended); then the features of every row
    scored on day D or earlier, including the rows of day D whose own outcome was rewritten, must be
    identical. Returns the sorted names of the columns that moved (empty = no leak found).
    """
    base = builder(history)
    start_day = history["starts_at"].dt.normalize()
    as_of_day = scoring_instants(history, scoring).dt.normalize()
    flipped_status = history["status"].map(
        {ATTENDED: MISSED, MISSED: ATTENDED, "cancelled": ATTENDED, "late_cancelled": ATTENDED}
    )
    leaks: set[str] = set()
    for cut in _default_cut_days(history) if cut_days is None else cut_days:
        changed = history.copy()
        later = start_day >= cut
        changed.loc[later, "status"] = flipped_status[later]
        leaks |= _moved_columns(base, builder(changed), as_of_day <= cut)
    return sorted(leaks)


def find_booking_leaks(
    history: pd.DataFrame,
    builder: FeatureBuilder = build_features,
    *,
    cut_instants: Sequence[pd.Timestamp] | None = None,
    scoring: ScoringTime = ScoringTime.APPOINTMENT_DAY,
) -> list[str]:
    """Feature columns that change when bookings made after a row's scoring instant are removed.

    Features may use the *existence* of bookings known at the scoring instant, never of later ones. For
    each cut instant C (default: the start and noon of three days spread over the history), every
    appointment booked after C (without a booking time: at the start of its day) is dropped from the
    history; then the features of every remaining row scored at or before C must be identical. Returns
    the sorted names of the columns that moved (empty = no leak found).
    """
    base = builder(history)
    as_of = scoring_instants(history, scoring)
    booked = history["booked_at"].fillna(history["starts_at"].dt.normalize())
    if cut_instants is None:
        cut_instants = [day + pd.Timedelta(hours=h) for day in _default_cut_days(history) for h in (0, 12)]
    leaks: set[str] = set()
    for cut in cut_instants:
        known = booked <= cut
        rebuilt = builder(history[known])
        leaks |= _moved_columns(base, rebuilt, (as_of <= cut) & known)
    return sorted(leaks)


def _same_values(left: pd.Series, right: pd.Series) -> bool:
    both_missing = left.isna() & right.isna()
    equal = (left == right) | both_missing
    return bool(equal.all())
