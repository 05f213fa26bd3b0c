"""The error answers of the API in its OpenAPI document: every operation names the statuses it can
answer besides success, each with the one error body (`{"error": code, "detail": message}`, and for 422
the `fields` at fault), so that a client generated from the document knows them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field


class ErrorRead(BaseModel):
    """An error: a stable code to act on and a message for people."""

    error: str = Field(description="stable code, e.g. not_found, conflict, resource_busy, forbidden")
    detail: str


class ValidationErrorRead(ErrorRead):
    """Bad input (422): nothing was stored; `fields` names the fields or parameters at fault."""

    fields: list[str]


ERRORS = {
    "401": "no valid credentials (send `Authorization: Bearer <token>`)",
    "403": "the role does not allow it",
    "404": "a record named in the request does not exist (or belongs to another organization)",
    "409": "a business rule or the current state refuses it (e.g. the time is already booked)",
    "413": "the request body is larger than the limit (`MEDSPA_MAX_BODY_BYTES`, 1 MB by default)",
    "422": "bad input: nothing was stored",
    "503": "the database could not be reached; retry",
}
UNAUTHENTICATED = {"/api/v1/health"}


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` list the error answers of every operation (413 only where a body is
    taken; none for the routes that need no credentials)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                routes=app.routes,
                tags=app.openapi_tags,
                description=app.description,
            )
            _add_errors(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_errors(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorRead, ValidationErrorRead):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document.get("paths", {}).items():
        if path in UNAUTHENTICATED:
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                if status == "413" and "requestBody" not in operation:
                    continue
                model = ValidationErrorRead if status == "422" else ErrorRead
                responses[status] = {
                    "description": description,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                    },
                }
