"""`medspa <records> list|show|create|update|deactivate` for every entity of the system of record.

Payloads are JSON (inline or `@file.json`) validated by the same schemas as the API, and each command
calls the same service function as the API, as the organization's system actor.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape

from medspa.kit.cli_options import organization_option
from medspa.kit.schemas import MAX_OFFSET

console = Console()
# Errors are one line each, however narrow the terminal.
errors = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True)
class Records:
    """How the CLI reaches one kind of record. Modules are imported when a command runs, so that
    `medspa` starts fast for the commands that need none of them."""

    name: str
    noun: str
    domain: str

    @property
    def id_argument(self) -> str:
        return f"{self.noun}_id"

    def schema(self, suffix: str) -> type[BaseModel]:
        schema: type[BaseModel] = getattr(
            importlib.import_module(f"medspa.{self.domain}.schemas"), f"{self.noun.capitalize()}{suffix}"
        )
        return schema

    def function(self, verb: str) -> Callable[..., Any]:
        name = f"list_{self.name}" if verb == "list" else f"{verb}_{self.noun}"
        function: Callable[..., Any] = getattr(importlib.import_module(f"medspa.{self.domain}.service"), name)
        return function


RECORDS = [
    Records("locations", "location", "resources"),
    Records("providers", "provider", "resources"),
    Records("rooms", "room", "resources"),
    Records("devices", "device", "resources"),
    Records("services", "service", "catalog"),
    Records("clients", "client", "clients"),
]

OrganizationOption = organization_option()
DataOption = typer.Option(..., "--data", "-d", help="JSON payload, or @path/to/file.json")


def problems(error: ValidationError, options: dict[str, str] | None = None) -> str:
    """The problems of a payload on one line, `field: what is wrong; ...`; `options` names the command
    line option that gave a field."""
    named = options or {}
    return "; ".join(
        f"{named.get(field, field)}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
        for field in [".".join(str(p) for p in e["loc"]) or "--data"]
    )


def _payload(text: str, schema: type[BaseModel]) -> BaseModel:
    try:
        raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
        return schema.model_validate(json.loads(raw))
    except (OSError, UnicodeDecodeError) as error:
        errors.print("[red]error:[/red] ", escape(f"--data: cannot read {text[1:]} ({error})"), sep="")
        raise typer.Exit(2) from error
    except json.JSONDecodeError as error:
        errors.print(f"[red]error:[/red] --data: not JSON ({error.msg} at line {error.lineno})")
        raise typer.Exit(2) from error
    except ValidationError as error:
        errors.print("[red]error:[/red] ", escape(problems(error)), sep="")
        raise typer.Exit(2) from error


def _run(organization: str, write: bool, call: Callable[[Any, Any], Any]) -> None:
    """Run one call as the organization's system actor in one unit of work and print its JSON."""
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    try:
        with unit_of_work(write=write) as session:
            actor = system_actor(security.get_organization(session, slug=organization).id, "cli")
            result = call(session, actor)
    except MedspaError as error:
        errors.print(f"[red]error:[/red] {error.detail}")
        raise typer.Exit(2 if error.status_code in (404, 422) else 1) from error
    document = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    console.print_json(json.dumps(document))


def _commands(records: Records) -> typer.Typer:
    group = typer.Typer(
        help=f"{records.name.capitalize()}: list, show, create, update, deactivate.", no_args_is_help=True
    )
    key = records.id_argument

    @group.command("list")
    def list_records(
        organization: str = OrganizationOption,
        limit: int = typer.Option(50, min=1, max=500),
        offset: int = typer.Option(0, min=0, max=MAX_OFFSET),
    ) -> None:
        """One page of records as JSON."""
        _run(
            organization, False, lambda s, a: records.function("list")(s, actor=a, limit=limit, offset=offset)
        )

    @group.command("show")
    def show(record_id: uuid.UUID, organization: str = OrganizationOption) -> None:
        """One record as JSON."""
        _run(organization, False, lambda s, a: records.function("get")(s, actor=a, **{key: record_id}))

    @group.command("create")
    def create(data: str = DataOption, organization: str = OrganizationOption) -> None:
        """Create a record from a JSON payload (the API's schema)."""
        payload = _payload(data, records.schema("Create"))
        _run(organization, True, lambda s, a: records.function("create")(s, actor=a, data=payload))

    @group.command("update")
    def update(record_id: uuid.UUID, data: str = DataOption, organization: str = OrganizationOption) -> None:
        """Change the fields given in a JSON payload."""
        payload = _payload(data, records.schema("Update"))
        _run(
            organization,
            True,
            lambda s, a: records.function("update")(s, actor=a, data=payload, **{key: record_id}),
        )

    @group.command("deactivate")
    def deactivate(record_id: uuid.UUID, organization: str = OrganizationOption) -> None:
        """Mark a record inactive; its history stays."""
        _run(organization, True, lambda s, a: records.function("deactivate")(s, actor=a, **{key: record_id}))

    return group


def register(app: typer.Typer) -> None:
    for records in RECORDS:
        app.add_typer(_commands(records), name=records.name)
    orgs = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)

    @orgs.command("create")
    def create_organization(
        slug: str = typer.Option(..., help="short unique name, e.g. lumen"),
        name: str = typer.Option(..., help="display name"),
    ) -> None:
        """Create an organization (a tenant)."""
        from medspa.kit.db import unit_of_work
        from medspa.kit.errors import MedspaError
        from medspa.security import service as security

        try:
            with unit_of_work() as session:
                created = security.create_organization(session, slug=slug, name=name)
        except MedspaError as error:
            errors.print(f"[red]error:[/red] {error.detail}")
            raise typer.Exit(1) from error
        console.print_json(created.model_dump_json())

    app.add_typer(orgs, name="organizations")
