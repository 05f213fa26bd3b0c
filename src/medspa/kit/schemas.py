"""Pydantic building blocks shared by every domain's schemas, and the bounds of all input (ADR 9).

Every value that enters (an API payload or query, a page's form, a CLI payload) is bounded here before a
service sees it, so that the database is never the one to refuse it:

- text carries no NUL character and no unpaired surrogate (neither can be stored), and has a maximum
  length that fits its column (free text such as notes: 10,000 characters);
- lists and JSON objects have a maximum size, JSON objects a maximum depth;
- integers stay within their columns;
- dates and instants lie between `EARLIEST_DATE` and `LATEST_DATE`, and instants carry a UTC offset;
- wall-clock times (hours, shifts, breaks, waitlist windows) are whole minutes without an offset.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

T = TypeVar("T")

# The range of every date and instant the system accepts (ADR 9): wide enough for any birth date of a
# living client and for planning far ahead, narrow enough that a date a day either side still exists
# in every time zone and arithmetic on it cannot overflow.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)
MAX_NOTES_LENGTH = 10_000
MAX_CENTS = 1_000_000_000  # $10,000,000.00: within a 32-bit integer column
MAX_OFFSET = 1_000_000_000
# A JSON object a client sends (preferences): at most this many keys in all, nested this deep, with
# keys and strings this long.
MAX_JSON_KEYS = 100
MAX_JSON_DEPTH = 4
MAX_JSON_KEY_LENGTH = 100
MAX_JSON_STRING_LENGTH = 1_000


def storable_text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (a NUL character, an unpaired surrogate), or None."""
    if "\x00" in value:
        return "must not contain a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid unicode text (it holds an unpaired surrogate)"
    return None


def _refuse_unstorable(value: object) -> None:
    if isinstance(value, str):
        problem = storable_text_problem(value)
        if problem:
            raise ValueError(problem)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _refuse_unstorable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key)
            _refuse_unstorable(item)


class Schema(BaseModel):
    """An input payload: strict about unknown fields (a typo is a 422, not silently ignored), and no text
    in it, however deeply nested, holds a character that cannot be stored."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        _refuse_unstorable(value)
        return value


def _not_nullable(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """In the JSON schema of an update, a field that null does not clear is not nullable."""
    clearable: frozenset[str] = getattr(model, "clearable", frozenset())
    for name, prop in schema.get("properties", {}).items():
        choices = prop.get("anyOf")
        if name in clearable or not choices:
            continue
        kept = [c for c in choices if c != {"type": "null"}]
        del prop["anyOf"]
        if prop.get("default", "") is None:
            del prop["default"]
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class UpdateSchema(Schema):
    """A PATCH payload. A field left out keeps its value. An explicit null clears a field named in
    `clearable` (one that may be empty, such as a client's email) and is refused (422) for any other,
    so that a null never reaches a column that cannot hold it."""

    clearable: ClassVar[frozenset[str]] = frozenset()
    model_config = ConfigDict(json_schema_extra=_not_nullable)

    @field_validator("*", mode="before")
    @classmethod
    def _null_clears_only_clearable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.clearable:
            raise ValueError("must not be null; leave it out to keep it")
        return value


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# --- dates, instants and wall-clock times --------------------------------------------------------------


def _iso_text(kind: type[date | time]) -> Any:
    """A validator that takes `kind` as ISO 8601 text (or as a Python value): never a number."""

    def check(value: object) -> object:
        if isinstance(value, str | kind):
            return value
        raise ValueError(f"must be ISO 8601 text, e.g. {_EXAMPLES[kind]}")

    return BeforeValidator(check)


_EXAMPLES: dict[type, str] = {
    datetime: "2026-12-01T10:00:00Z",
    date: "2026-12-01",
    time: "09:30",
}
_RANGE = f"must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"


def in_accepted_range(value: date) -> bool:
    """Whether a date, or an instant's date as written (in its own offset), lies in the accepted range."""
    day = value.date() if isinstance(value, datetime) else value
    return EARLIEST_DATE <= day <= LATEST_DATE


def _in_range(value: date) -> date:
    if not in_accepted_range(value):
        raise ValueError(_RANGE)
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset (e.g. 2026-12-01T10:00:00Z)")
    return value


# (No `Field` in these two: they also type query parameters, whose `Query` must be the only field info.)
AwareDatetime = Annotated[datetime, _iso_text(datetime), AfterValidator(_aware), AfterValidator(_in_range)]
BoundedDate = Annotated[date, _iso_text(date), AfterValidator(_in_range)]

_WALL_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:00)?$")
_WALL_CLOCK_PROBLEM = "must be a wall-clock time in whole minutes without a UTC offset, e.g. 09:30"


def _wall_clock(value: object) -> object:
    if isinstance(value, time):
        if value.tzinfo is not None or value.second or value.microsecond:
            raise ValueError(_WALL_CLOCK_PROBLEM)
        return value
    if isinstance(value, str) and _WALL_CLOCK.match(value):
        return value
    raise ValueError(_WALL_CLOCK_PROBLEM)


WallClockTime = Annotated[
    time,
    BeforeValidator(_wall_clock),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _WALL_CLOCK.pattern,
            "description": "local wall-clock time in whole minutes, HH:MM (or HH:MM:00), no UTC offset",
            "examples": ["09:30"],
        }
    ),
]


# --- text, numbers, lists, JSON -----------------------------------------------------------------------

Weekday = Annotated[int, Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday")]
NonNegativeMinutes = Annotated[int, Field(ge=0, le=24 * 60)]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS, description="integer cents")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Label = Annotated[str, Field(max_length=200, description="short free text, at most 200 characters")]
Notes = Annotated[str, Field(max_length=MAX_NOTES_LENGTH, description="free text, at most 10,000 characters")]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")]


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    keys = _walk_json(value, depth=1)
    if keys > MAX_JSON_KEYS:
        raise ValueError(f"holds {keys} keys in all; at most {MAX_JSON_KEYS}")
    return value


def _walk_json(value: object, depth: int) -> int:
    """The number of keys in `value`; ValueError when it is too deep or holds an unfit value."""
    if isinstance(value, dict | list):
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
        keys = len(value) if isinstance(value, dict) else 0
        if isinstance(value, dict) and any(len(k) > MAX_JSON_KEY_LENGTH for k in value):
            raise ValueError(f"has a key longer than {MAX_JSON_KEY_LENGTH} characters")
        items = value.values() if isinstance(value, dict) else value
        if isinstance(value, list) and len(value) > MAX_JSON_KEYS:
            raise ValueError(f"has a list longer than {MAX_JSON_KEYS} items")
        return keys + sum(_walk_json(item, depth + 1) for item in items)
    if isinstance(value, str) and len(value) > MAX_JSON_STRING_LENGTH:
        raise ValueError(f"has a text longer than {MAX_JSON_STRING_LENGTH} characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("has a number that is not finite")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise ValueError("has an integer beyond ±2^53")
    return 0


JSONObject = Annotated[
    dict[str, Any],
    Field(
        max_length=MAX_JSON_KEYS,
        description=(
            f"a JSON object: at most {MAX_JSON_KEYS} keys in all, {MAX_JSON_DEPTH} levels deep, "
            f"keys up to {MAX_JSON_KEY_LENGTH} and texts up to {MAX_JSON_STRING_LENGTH} characters"
        ),
    ),
    AfterValidator(_bounded_json),
]


class TimeSpan(Schema):
    """A local wall-clock span within one day; `starts_at` must be before `ends_at`."""

    starts_at: WallClockTime
    ends_at: WallClockTime

    @field_validator("ends_at")
    @classmethod
    def _ordered(cls, ends_at: time, info: ValidationInfo) -> time:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at
