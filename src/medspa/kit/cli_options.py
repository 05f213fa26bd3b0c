"""Options every command line of medspa shares."""

from __future__ import annotations

from typing import Any

import typer

ORGANIZATION_VARIABLE = "MEDSPA_ORGANIZATION"


def organization_option(*, short: bool = True) -> Any:
    """`--organization/-o SLUG` (without `-o` where it names the output file), required (or
    `MEDSPA_ORGANIZATION`): a command acts within one clinic's records, and never one it was not told."""
    names = ("--organization", "-o") if short else ("--organization",)
    return typer.Option(
        ...,
        *names,
        envvar=ORGANIZATION_VARIABLE,
        show_envvar=True,
        help=f"organization slug (or set {ORGANIZATION_VARIABLE})",
    )
