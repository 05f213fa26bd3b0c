"""Bounds on HTTP input that no schema sees: the text of query and form parameters (ADR 9; the payloads
themselves are bounded by `kit.schemas`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from medspa.kit.schemas import storable_text_problem

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_unstorable_parameters(request: Request) -> None:
    """A dependency of every route: no query or form parameter (name or value) may hold a NUL
    character; 422 naming it. (Payloads in JSON are checked by `kit.schemas.Schema`; a query string is
    decoded with replacement, so an unpaired surrogate cannot reach here.)"""
    problems: list[dict[str, Any]] = []
    parameters: list[tuple[str, str, Any]] = [
        ("query", name, value) for name, value in request.query_params.multi_items()
    ]
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await request.form()
        parameters += [("body", name, value) for name, value in form.multi_items()]
    for where, name, value in parameters:
        problem = storable_text_problem(name) or (
            storable_text_problem(value) if isinstance(value, str) else None
        )
        if problem:
            problems.append({"type": "value_error", "loc": (where, name), "msg": problem, "input": None})
    if problems:
        raise RequestValidationError(problems)
