"""HTTP routes: the webhook receivers (public: the signature is the credential) and the connections and
inbox an owner manages."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.integrations import mappings, service
from medspa.integrations.intake import intake_for
from medspa.integrations.receiving import DeliveryRefusedError
from medspa.integrations.schemas import (
    ConnectionCreate,
    ConnectionRead,
    Connector,
    DeliveryRead,
    DeliveryState,
    InboxRead,
    InboxState,
    MappingRead,
    MappingSet,
    PollingSet,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
)
from medspa.kit import clock
from medspa.kit.schemas import Page
from medspa.security.permissions import permits, public

router = APIRouter(prefix="/api/v1", tags=["integrations"])
# The receivers have a router of their own, which the application matches before all others: routes are
# tried in order, and a sender posting hundreds of deliveries a second should not wait while its path is
# compared with every other route first (about a tenth of a receipt's time when it came last).
webhooks_router = APIRouter(prefix="/api/v1", tags=["integrations"])

REFUSALS = {400: "validation_failed", 401: "unauthenticated", 404: "not_found", 415: "unsupported_media_type"}


@webhooks_router.post(
    "/webhooks/{connector}/{connection_id}",
    status_code=202,
    responses={
        200: {"description": "a duplicate: stored before, nothing more done"},
        400: {"description": "the body is not the connector's JSON envelope; nothing stored"},
        401: {"description": "a bad or missing signature, or a stale timestamp; nothing stored"},
        404: {"description": "no such active connection of this connector"},
        413: {"description": "a body over 1 MB"},
        415: {"description": "a body that is not application/json"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "the connected system's event, verified on these exact bytes",
        }
    },
)
@public
async def receive_webhook(
    connector: Annotated[Connector, Path()], connection_id: uuid.UUID, request: Request
) -> Response:
    """A delivery from Mindbody, Zenoti or a Standard Webhooks sender, verified on its raw body and
    stored in the inbox before the answer: 202 when new, 200 for a duplicate (nothing more done). 401
    for a bad or missing signature or a stale timestamp, 400 for malformed JSON, 415 for another
    content type, 413 for a body over 1 MB, 404 for an unknown or inactive connection; nothing stored."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return _refused(
            DeliveryRefusedError(415, "a webhook's body is application/json"), connector, connection_id
        )
    body = await request.body()
    delivery = service.Incoming(connector, connection_id, body, request.headers, clock.now())
    try:
        # Stored together with the deliveries arriving beside it (`integrations.intake`), off the loop.
        receipt = await asyncio.wrap_future(intake_for(request.app.state.engine).submit(delivery))
    except DeliveryRefusedError as refusal:
        return _refused(refusal, connector, connection_id, logged=True)
    return JSONResponse(
        {"id": str(receipt.inbox_id), "duplicate": receipt.duplicate}, status_code=receipt.status
    )


def _refused(
    refusal: DeliveryRefusedError, connector: str, connection_id: uuid.UUID, *, logged: bool = False
) -> Response:
    if not logged:
        service.log_refusal(connector, connection_id, refusal)
    body = {"error": REFUSALS.get(refusal.status, "refused"), "detail": refusal.reason}
    return JSONResponse(body, status_code=refusal.status)


@router.post("/integrations/connections", status_code=201)
@permits("integrations", "manage")
def add_connection(data: ConnectionCreate, session: SessionDep, actor: ActorDep) -> ConnectionRead:
    """Connect the organization to Mindbody, Zenoti or a Standard Webhooks sender; the answer's
    `webhook_path` is where the source should deliver. The secret is stored sealed and never shown."""
    return service.add_connection(session, actor=actor, data=data)


@router.get("/integrations/connections")
@permits("integrations", "read")
def list_connections(
    session: SessionDep, actor: ActorDep, limit: Limit = 50, offset: Offset = 0
) -> Page[ConnectionRead]:
    return service.list_connections(session, actor=actor, limit=limit, offset=offset)


@router.delete("/integrations/connections/{connection_id}")
@permits("integrations", "manage")
def deactivate_connection(connection_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ConnectionRead:
    return service.deactivate_connection(session, actor=actor, connection_id=connection_id)


@router.put("/integrations/connections/{connection_id}/polling")
@permits("integrations", "manage")
def set_polling(
    connection_id: uuid.UUID, data: PollingSet, session: SessionDep, actor: ActorDep
) -> ConnectionRead:
    """Poll a Mindbody or Zenoti connection's API with these settings from the worker's next pass. A new
    address or account starts polling from the beginning; the key is stored sealed and never shown."""
    return service.set_polling(session, actor=actor, connection_id=connection_id, data=data)


@router.delete("/integrations/connections/{connection_id}/polling")
@permits("integrations", "manage")
def stop_polling(connection_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ConnectionRead:
    """Stop polling the connection's API (its webhooks are still taken)."""
    return service.set_polling(session, actor=actor, connection_id=connection_id, data=None)


@router.get("/integrations/inbox")
@permits("integrations", "read")
def list_inbox(
    session: SessionDep,
    actor: ActorDep,
    connection_id: uuid.UUID | None = None,
    state: InboxState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[InboxRead]:
    """Deliveries as they arrived, newest first, and what became of each (never their bodies)."""
    return service.list_inbox(
        session, actor=actor, connection_id=connection_id, state=state, limit=limit, offset=offset
    )


@router.post(
    "/integrations/inbox/{inbox_id}/retry",
    responses={404: {"description": "no such delivery"}, 409: {"description": "not failed or skipped"}},
)
@permits("integrations", "manage")
def retry_inbox_event(inbox_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> InboxRead:
    """Send a failed or skipped delivery back to be applied again (after a mapping was made, say)."""
    return service.retry_inbox_event(session, actor=actor, inbox_id=inbox_id)


@router.put(
    "/integrations/connections/{connection_id}/mappings",
    responses={404: {"description": "no such connection, or no such record of ours"}},
)
@permits("integrations", "manage")
def set_mapping(
    connection_id: uuid.UUID, data: MappingSet, session: SessionDep, actor: ActorDep
) -> MappingRead:
    """Say which of our locations, services or providers is the source's `external_id`: appointments
    from the source are booked with it."""
    return mappings.set_mapping(session, actor=actor, connection_id=connection_id, data=data)


@router.get(
    "/integrations/connections/{connection_id}/mappings",
    responses={404: {"description": "no such connection"}},
)
@permits("integrations", "read")
def list_mappings(
    connection_id: uuid.UUID, session: SessionDep, actor: ActorDep, limit: Limit = 50, offset: Offset = 0
) -> Page[MappingRead]:
    return mappings.list_mappings(
        session, actor=actor, connection_id=connection_id, limit=limit, offset=offset
    )


@router.post("/webhook-subscriptions", status_code=201)
@permits("integrations", "manage")
def add_subscription(data: SubscriptionCreate, session: SessionDep, actor: ActorDep) -> SubscriptionCreated:
    """Send the organization's events (`topics`: `*`, `appointment.*`, `client.merged`...) to `url` in
    the Standard Webhooks format, signed with the `secret` in this answer: shown once, never again."""
    return service.add_subscription(session, actor=actor, data=data)


@router.get("/webhook-subscriptions")
@permits("integrations", "read")
def list_subscriptions(
    session: SessionDep, actor: ActorDep, limit: Limit = 50, offset: Offset = 0
) -> Page[SubscriptionRead]:
    return service.list_subscriptions(session, actor=actor, limit=limit, offset=offset)


@router.delete("/webhook-subscriptions/{subscription_id}")
@permits("integrations", "manage")
def deactivate_subscription(
    subscription_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> SubscriptionRead:
    return service.deactivate_subscription(session, actor=actor, subscription_id=subscription_id)


@router.get("/webhook-deliveries")
@permits("integrations", "read")
def list_deliveries(
    session: SessionDep,
    actor: ActorDep,
    subscription_id: uuid.UUID | None = None,
    state: DeliveryState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryRead]:
    """Our events' deliveries to subscribers, newest first: attempts, the last answer, the state."""
    return service.list_deliveries(
        session, actor=actor, subscription_id=subscription_id, state=state, limit=limit, offset=offset
    )
