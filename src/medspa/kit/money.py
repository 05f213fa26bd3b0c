"""Money is integer cents everywhere; these helpers convert at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def cents_from_amount(amount: float | str | Decimal) -> int:
    """`12.345` -> 1235 (half up), for importers and benchmark files that carry currency units."""
    return int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_cents(cents: int, currency_symbol: str = "$") -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{currency_symbol}{whole:,}.{part:02d}"
