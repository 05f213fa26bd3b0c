"""Tenant-scoped lookups shared by the domains' repositories.

Every query here filters by organization: a record of another organization is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, func, select, true
from sqlalchemy.orm import Session

from medspa.kit.errors import NotFoundError


class Owned(Protocol):
    id: Any
    organization_id: Any


T = TypeVar("T", bound=Owned)


def get_owned(
    session: Session,
    model: type[T],
    organization_id: uuid.UUID,
    record_id: uuid.UUID,
    kind: str,
    *,
    lock: bool = False,
) -> T:
    """The record, or NotFoundError when it is missing or belongs to another organization. With `lock`,
    read afresh and its row locked until the transaction ends (PostgreSQL; SQLite serializes writers),
    so that changes of one record happen one after the other."""
    record = session.get(model, record_id, with_for_update=lock, populate_existing=lock)
    if record is None or record.organization_id != organization_id:
        raise NotFoundError(kind, record_id)
    return record


# The kinds of record `prefetch` can load, by the name `get_owned` reports them under ("client",
# "service", ...). Each domain registers its own models (`owned_kind`), so that a domain can warm the
# session with another's records without importing that domain's models.
_KINDS: dict[str, type[Any]] = {}
M = TypeVar("M")


def owned_kind(kind: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: `prefetch` may load records of this model as `kind`."""

    def register(model: type[M]) -> type[M]:
        _KINDS[kind] = model
        return model

    return register


def prefetch(session: Session, organization_id: uuid.UUID, *wanted: tuple[str, uuid.UUID]) -> list[Any]:
    """Load several of the organization's records, given as (kind, id), in one round trip, so that the
    lookups that follow (each domain's own `get_x`) find them in the session. The caller keeps the
    returned list while it works: the session holds records only weakly. Empty when any is missing or
    foreign (then the lookup says which)."""
    query = _prefetch_query(tuple(_KINDS[kind] for kind, _ in wanted))
    params: dict[str, Any] = {"organization_id": organization_id}
    params.update({f"id_{i}": record_id for i, (_, record_id) in enumerate(wanted)})
    row = session.execute(query, params).first()
    return list(row) if row is not None else []


@lru_cache(maxsize=32)
def _prefetch_query(models: tuple[type[Any], ...]) -> Select[Any]:
    query = select(*models).select_from(models[0])
    for model in models[1:]:
        query = query.join(model, true())
    for i, model in enumerate(models):
        query = query.where(
            model.id == bindparam(f"id_{i}"), model.organization_id == bindparam("organization_id")
        )
    return query


def list_owned(
    session: Session,
    model: type[T],
    organization_id: uuid.UUID,
    *filters: ColumnElement[bool],
    order_by: Any,
    limit: int,
    offset: int,
) -> tuple[list[T], int]:
    """One page of the organization's records and the total count matching the filters.

    `order_by` is a column or a tuple of columns; the id breaks ties so pages never overlap."""
    conditions = [model.organization_id == organization_id, *filters]
    total = session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    ordering = order_by if isinstance(order_by, tuple) else (order_by,)
    query = select(model).where(*conditions).order_by(*ordering, model.id).limit(limit).offset(offset)
    rows = session.scalars(query).all()
    return list(rows), total
