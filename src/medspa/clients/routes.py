"""HTTP routes for clients."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.clients import service
from medspa.clients.schemas import ClientCreate, ClientRead, ClientUpdate, EmailQuery, PhoneQuery
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
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ClientRead]:
    return service.list_clients(session, actor=actor, email=email, phone=phone, limit=limit, offset=offset)


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
