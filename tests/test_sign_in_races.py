"""The sign-in throttle under attempts made at the same moment (real threads; PostgreSQL when set)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from medspa.kit.db import unit_of_work
from medspa.kit.errors import AuthenticationError, RateLimitedError
from medspa.security import service as security
from medspa.security.actors import Role, system_actor
from medspa.security.schemas import UserCreate
from tests.hashing import CountingHasher

RIGHT = "medspa-demo"


def test_sign_ins_made_at_once_cannot_all_pass_the_count(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten wrong sign-ins to one account at the same moment, each on a thread and a transaction of its own
    (PostgreSQL runs them truly at once): exactly five are checked against the password, five wait."""
    with unit_of_work(engine) as session:
        organization = security.create_organization(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="T")
        owner = system_actor(organization.id, "test")
        data = UserCreate(email="desk@t.example", display_name="Desk", role=Role.FRONT_DESK, password=RIGHT)
        security.create_user(session, actor=owner, data=data)
    counting = CountingHasher(security._hasher)
    monkeypatch.setattr(security, "_hasher", counting)
    start = threading.Barrier(10)

    # On PostgreSQL the attempts meet with their transactions open; SQLite admits one writer at a time,
    # so there they start together and queue.
    together = engine.dialect.name == "postgresql"

    def attempt(_: int) -> str:
        if not together:
            start.wait(10)
        with unit_of_work(engine) as session:
            if together:
                start.wait(10)
            try:
                security.sign_in(
                    session, organization_slug=organization.slug, email="desk@t.example", password="wrong"
                )
            except (AuthenticationError, RateLimitedError) as refused:
                return refused.code
        return "signed in"

    with ThreadPoolExecutor(10) as pool:
        answers = sorted(pool.map(attempt, range(10)))
    assert answers == ["rate_limited"] * 5 + ["unauthenticated"] * 5
    assert counting.computed == 5
