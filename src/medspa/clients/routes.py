"""HTTP routes for clients."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.clients import merge, service
from medspa.clients.schemas import (
    ClientCreate,
    ClientErasureRead,
    ClientRead,
    ClientUpdate,
    EmailQuery,
    ErasureRequest,
    ErasureState,
    MergeRequest,
    PhoneQuery,
    SearchQuery,
)
from medspa.kit.schemas import Page
from medspa.security.permissions import permits

router = APIRouter(prefix="/api/v1", tags=["clients"])


@router.post("/clients", status_code=201)
@permits("clients", "create")
def create_client(data: ClientCreate, session: SessionDep, actor: ActorDep) -> ClientRead:
    return service.create_client(session, actor=actor, data=data)


@router.get("/clients")
@permits("clients", "read")
def list_clients(
    session: SessionDep,
    actor: ActorDep,
    email: EmailQuery | None = None,
    phone: PhoneQuery | None = None,
    q: SearchQuery | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ClientRead]:
    """Active clients in the order they were registered; `email` and `phone` filter by exact match
    (case and punctuation ignored); `q` searches instead, best match first: a prefix of any word of the
    name or the e-mail, or a phone number in any format (or its first or last digits)."""
    if q is not None:
        return service.search_clients(session, actor=actor, query=q, limit=limit, offset=offset)
    return service.list_clients(session, actor=actor, email=email, phone=phone, limit=limit, offset=offset)


@router.post("/clients/duplicates")
@permits("clients", "read")
def find_duplicates(data: ClientCreate, session: SessionDep, actor: ActorDep) -> list[ClientRead]:
    """The clients a new record with these details may duplicate (same e-mail, same phone, or same name
    and birth date), to ask before creating it; nothing is created."""
    return service.find_duplicates(session, actor=actor, data=data)


@router.post("/clients/{client_id}/merge")
@permits("clients", "merge")
def merge_client(
    client_id: uuid.UUID, data: MergeRequest, session: SessionDep, actor: ActorDep
) -> ClientRead:
    """Merge the record `duplicate_id` into this client (managers, owners): its appointments, waitlist
    entries and messages move here, each appointment with a line in its history; the second record
    becomes inactive and points here. 409 with the reason (two birth dates, an erased or merged record,
    an erasure waiting) and nothing written."""
    return merge.merge_clients(session, actor=actor, keep_id=client_id, duplicate_id=data.duplicate_id)


@router.get("/clients/{client_id}")
@permits("clients", "read")
def get_client(client_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ClientRead:
    return service.get_client(session, actor=actor, client_id=client_id)


@router.patch("/clients/{client_id}")
@permits("clients", "update")
def update_client(
    client_id: uuid.UUID, data: ClientUpdate, session: SessionDep, actor: ActorDep
) -> ClientRead:
    return service.update_client(session, actor=actor, client_id=client_id, data=data)


@router.delete("/clients/{client_id}")
@permits("clients", "deactivate")
def deactivate_client(client_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ClientRead:
    return service.deactivate_client(session, actor=actor, client_id=client_id)


@router.post("/clients/{client_id}/erasure-requests", status_code=201)
@permits("clients", "request_erasure")
def request_erasure(
    client_id: uuid.UUID, data: ErasureRequest, session: SessionDep, actor: ActorDep
) -> ClientErasureRead:
    """Ask that the client be erased (right to delete). A manager other than the one who asked approves
    it; until then nothing changes."""
    return service.request_erasure(session, actor=actor, client_id=client_id, data=data)


@router.get("/erasure-requests")
@permits("clients", "list_erasures")
def list_erasures(
    session: SessionDep,
    actor: ActorDep,
    state: ErasureState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ClientErasureRead]:
    return service.list_erasures(session, actor=actor, state=state, limit=limit, offset=offset)


@router.post("/erasure-requests/{erasure_id}/approve")
@permits("clients", "erase")
def approve_erasure(erasure_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ClientErasureRead:
    """Erase the client now: its record key is destroyed and its PHI emptied, for good; a tombstone
    (id and dates) stays, and its appointments show "(erased client)"."""
    return service.decide_erasure(session, actor=actor, erasure_id=erasure_id, approve=True)


@router.post("/erasure-requests/{erasure_id}/refuse")
@permits("clients", "erase")
def refuse_erasure(erasure_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ClientErasureRead:
    return service.decide_erasure(session, actor=actor, erasure_id=erasure_id, approve=False)
