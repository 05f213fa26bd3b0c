"""The Integrations tab of the settings (`/locations/{id}/settings/integrations`): the organization's
connections to Zenoti, Mindbody and Standard Webhooks senders, which of our locations, services and
providers their ids are, and the deliveries that came in from each.

The connections are the organization's, not the location's: like the services, their tab sits under a
location for the top bar, and the times of the deliveries are shown in that location's zone. Whoever may
read the integrations sees the page; only whoever may manage them is offered the forms, and every form
declares that permission (403 otherwise).

Every form goes through the function the API calls (`service.add_connection`,
`service.deactivate_connection`, `mappings.set_mapping`, `service.retry_inbox_event`) in a savepoint,
as the other settings pages do (`settings.Here.save`): bad input answers 422 with the page and the
reason, a refusal of the service its status and message, and nothing is written. A connection's secret
is never shown, not even back in the form after a mistake.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.catalog import service as catalog
from medspa.integrations import mappings, service
from medspa.integrations.schemas import ConnectionCreate, ConnectionRead, MappingSet, PollingSet
from medspa.kit.errors import ValidationFailedError
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.forms import LIST_LIMIT
from medspa.web.guards import PageActor, PageRoute, SameOrigin
from medspa.web.settings import Here

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE = "/locations/{location_id}/settings/integrations"
CONNECTIONS_SHOWN = 100
MAPPINGS_SHOWN = 200
# The newest deliveries of each connection the page lists (the API pages through all of them).
DELIVERIES_SHOWN = 20
# The kinds of our records a source's id can be mapped to, as the form's select groups them.
KIND_TITLES = {"location": "Locations", "service": "Services", "provider": "Providers"}
Shown = Literal["all", "failed"]


class IntegrationsHere(Here):
    """A settings request of the Integrations tab: which deliveries to list (`?inbox=failed`: only the
    failed ones), and what the tab shows."""

    def __init__(
        self,
        request: Request,
        session: SessionDep,
        actor: PageActor,
        location_id: uuid.UUID,
        inbox: Annotated[Shown, Query()] = "all",
    ) -> None:
        super().__init__(request, session, actor, location_id)
        self.inbox = inbox

    def section(self, name: str, location: LocationRead) -> dict[str, Any]:
        session, actor = self.session, self.actor
        records = _our_records(session, actor)
        names = {record_id: name for choices in records.values() for record_id, name in choices}
        base = str(self.request.base_url).rstrip("/")
        connections = []
        for connection in service.list_connections(session, actor=actor, limit=CONNECTIONS_SHOWN).items:
            links = mappings.list_mappings(
                session, actor=actor, connection_id=connection.id, limit=MAPPINGS_SHOWN
            ).items
            deliveries = service.list_inbox(
                session,
                actor=actor,
                connection_id=connection.id,
                state="failed" if self.inbox == "failed" else None,
                limit=DELIVERIES_SHOWN,
            )
            connections.append((connection, base + connection.webhook_path, links, deliveries))
        return {
            "connections": connections,
            "records": records,
            "record_names": names,
            "kind_titles": KIND_TITLES,
            "inbox": self.inbox,
            "can_manage": actor.can("integrations", "manage"),
        }


Integrations = Annotated[IntegrationsHere, Depends()]


def _our_records(session: Session, actor: Actor) -> dict[str, list[tuple[uuid.UUID, str]]]:
    """The organization's active locations, services and providers a source's ids can be mapped to."""
    locations = resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items
    services = catalog.list_services(session, actor=actor, limit=LIST_LIMIT).items
    providers = resources.list_providers(session, actor=actor, limit=LIST_LIMIT).items
    where = {r.id: r.name for r in locations}
    return {
        "location": [(r.id, r.name) for r in locations],
        "service": [(r.id, r.name) for r in services],
        # A provider works at one location: two of one name are told apart by it.
        "provider": [(r.id, f"{r.name}, {where.get(r.location_id, 'another location')}") for r in providers],
    }


def _connection_label(connection: ConnectionRead) -> str:
    return f"{connection.name} ({connection.connector})"


@permits("integrations", "read")
def show_integrations(here: Integrations) -> Response:
    return here.page("integrations")


router.add_api_route(PAGE, show_integrations)


@router.post(PAGE, dependencies=SameOrigin)
@permits("integrations", "manage")
def add_connection(
    here: Integrations,
    connector: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    secret: Annotated[str, Form()] = "",
    signature_header: Annotated[str, Form()] = "",
    signature_encoding: Annotated[str, Form()] = "base64",
) -> Response:
    """Connect the organization to a system; the page then gives the address it should deliver to."""

    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        fields = {
            "connector": connector.strip(),
            "secret": secret,
            "signature_header": signature_header.strip() or None,
            "signature_encoding": signature_encoding.strip(),
        }
        if name.strip():
            fields["name"] = name.strip()
        added = service.add_connection(session, actor=actor, data=ConnectionCreate.model_validate(fields))
        address = str(here.request.base_url).rstrip("/") + added.webhook_path
        return f"Saved: connected {_connection_label(added)}. Give it this address: {address}"

    return here.save("integrations", change)


@router.post(f"{PAGE}/{{connection_id}}/polling", dependencies=SameOrigin)
@permits("integrations", "manage")
def set_polling(
    here: Integrations,
    connection_id: uuid.UUID,
    poll_url: Annotated[str, Form()] = "",
    poll_account: Annotated[str, Form()] = "",
    poll_key: Annotated[str, Form()] = "",
) -> Response:
    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        settings = PollingSet.model_validate(
            {"poll_url": poll_url.strip(), "poll_account": poll_account.strip(), "poll_key": poll_key}
        )
        polled = service.set_polling(session, actor=actor, connection_id=connection_id, data=settings)
        return f"Saved: {_connection_label(polled)} is polled at {polled.poll_url} from the next pass."

    return here.save("integrations", change)


@router.post(f"{PAGE}/{{connection_id}}/polling/stop", dependencies=SameOrigin)
@permits("integrations", "manage")
def stop_polling(here: Integrations, connection_id: uuid.UUID) -> Response:
    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        stopped = service.set_polling(session, actor=actor, connection_id=connection_id, data=None)
        return f"Saved: {_connection_label(stopped)} is no longer polled; its webhooks are still taken."

    return here.save("integrations", change)


@router.post(f"{PAGE}/{{connection_id}}/deactivate", dependencies=SameOrigin)
@permits("integrations", "manage")
def deactivate_connection(here: Integrations, connection_id: uuid.UUID) -> Response:
    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        stopped = service.deactivate_connection(session, actor=actor, connection_id=connection_id)
        return f"Saved: {_connection_label(stopped)} is no longer taken; what it sent stays."

    return here.save("integrations", change)


def _record_choice(value: str) -> tuple[str, str]:
    """A choice of the form's select (`service:<id>`) as its kind and id; the kind and id are checked
    by `MappingSet`."""
    kind, colon, record_id = value.strip().partition(":")
    if not colon:
        raise ValidationFailedError("Our record", "choose one of our locations, services or providers")
    return kind, record_id


@router.post(f"{PAGE}/{{connection_id}}/mappings", dependencies=SameOrigin)
@permits("integrations", "manage")
def set_mapping(
    here: Integrations,
    connection_id: uuid.UUID,
    external_id: Annotated[str, Form()] = "",
    record: Annotated[str, Form()] = "",
) -> Response:
    """Say which of our records is the source's id; setting an id again moves it."""

    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        kind, record_id = _record_choice(record)
        data = MappingSet.model_validate(
            {"kind": kind, "external_id": external_id.strip(), "record_id": record_id}
        )
        mappings.set_mapping(session, actor=actor, connection_id=connection_id, data=data)
        ours = dict(_our_records(session, actor)[data.kind]).get(data.record_id, "ours")
        return f"Saved: their {data.kind} {data.external_id} is {ours}."

    return here.save("integrations", change)


@router.post(f"{PAGE}/inbox/{{inbox_id}}/retry", dependencies=SameOrigin)
@permits("integrations", "manage")
def retry_inbox_event(here: Integrations, inbox_id: uuid.UUID) -> Response:
    """Send a failed or skipped delivery back to be applied on the worker's next pass."""

    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        event = service.retry_inbox_event(session, actor=actor, inbox_id=inbox_id)
        return f"Sent back: the {event.event_type} delivery is applied on the worker's next pass."

    return here.save("integrations", change)
