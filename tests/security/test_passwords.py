"""Passwords are stored as argon2id hashes at or above OWASP's minimum parameters."""

from __future__ import annotations

import uuid

from argon2 import extract_parameters
from argon2.low_level import Type
from sqlalchemy import Engine, select

from medspa.kit.db import unit_of_work
from medspa.security import service as security
from medspa.security.actors import Actor, Role
from medspa.security.models import User
from medspa.security.schemas import UserCreate

# OWASP Password Storage Cheat Sheet: argon2id with at least 19 MiB of memory, 2 iterations, parallelism 1.
OWASP_MEMORY_KIB, OWASP_ITERATIONS = 19 * 1024, 2


def test_a_password_is_stored_as_argon2id_at_owasp_strength_or_more(engine: Engine, owner: Actor) -> None:
    email = f"ana-{uuid.uuid4().hex[:8]}@clinic.example"
    with unit_of_work(engine) as session:
        security.create_user(
            session,
            actor=owner,
            data=UserCreate(
                email=email, display_name="Ana", role=Role.FRONT_DESK, password="correct horse battery"
            ),
        )
    with unit_of_work(engine, write=False) as session:
        stored = session.scalar(select(User.password_hash).where(User.email == email))
    assert stored is not None
    assert "correct horse" not in stored
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    assert parameters.memory_cost >= OWASP_MEMORY_KIB
    assert parameters.time_cost >= OWASP_ITERATIONS
    assert parameters.parallelism >= 1
