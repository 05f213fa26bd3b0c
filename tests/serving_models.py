"""Small trained models for the serving tests (trained once per test session) and a clinic to score."""

from __future__ import annotations

import functools
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxConsumer, head_event_id, move_cursor
from medspa.retention.serving import ModelCache, registry_for, train_clinic_noshow, train_returns
from medspa.worker import ModelEventHandler
from tests.retention.factories import simulate_history


@functools.cache
def noshow_payload() -> dict[str, Any]:
    history, _ = simulate_history(clients=300, days=30)
    return train_clinic_noshow(history, train_end=date(2024, 3, 28)).to_payload()


@functools.cache
def returns_payload() -> dict[str, Any]:
    rng = np.random.default_rng(5)
    start = date(2025, 6, 1)
    rows = [
        (f"c{client}", start + timedelta(days=int(day)), 100.0)
        for client in range(200)
        for day in rng.choice(270, size=int(rng.integers(1, 6)), replace=False)
    ]
    frame = pd.DataFrame(rows, columns=["client_id", "date", "amount"])
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return train_returns(frame, calibration_end=start + timedelta(days=270)).to_payload()


def install(root: Path, organization_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> str:
    """Store `payload` in the organization's registry and make it the active version."""
    registry = registry_for(root, organization_id)
    version = registry.save(kind, payload)
    registry.activate(kind, version)
    return version


def consumer_at_head(engine: Engine, cache: ModelCache) -> OutboxConsumer:
    """The model consumer's handler under a name of its own, starting after every event so far (the
    test database is shared by the whole suite)."""
    name, head = f"test-{uuid.uuid4().hex[:12]}", head_event_id(engine)
    with unit_of_work(engine) as session:
        move_cursor(session, name, head)
    return OutboxConsumer(engine, name, ModelEventHandler(engine, cache))
