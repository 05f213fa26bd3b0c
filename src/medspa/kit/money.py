"""Money is integer cents everywhere; these helpers convert at the edges."""

from __future__ import annotations


def format_cents(cents: int, currency_symbol: str = "$") -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{currency_symbol}{whole:,}.{part:02d}"
