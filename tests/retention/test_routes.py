"""The retention score of a client through the API."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.retention.scoring import refresh_scores
from medspa.retention.serving import ModelCache
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor
from tests.factories import make_client
from tests.scheduling.test_availability import NOW, build
from tests.scheduling.test_booking import request as booking_request
from tests.serving_models import install, returns_payload
from tests.test_worker import TEN


def test_a_clients_retention_score_is_read_through_the_api(
    engine: Engine, owner: Actor, api: TestClient, tmp_path: Path
) -> None:
    # given a clinic with an active return model and a booked client, scored
    version = install(tmp_path, owner.organization_id, "returns", returns_payload())
    with clock.frozen_at(NOW):
        clinic = build(engine, owner)
        with unit_of_work(engine) as session:
            scheduling.book_appointment(session, actor=owner, data=booking_request(clinic, TEN))
            unscored = make_client(session, actor=owner)
        refresh_scores(
            engine, organization_id=owner.organization_id, cache=ModelCache(tmp_path), everything=True
        )
    # when it is read, then it carries the model version, the horizon and no prediction without a visit
    response = api.get(f"/api/v1/clients/{clinic.client_id}/retention")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "client_id": str(clinic.client_id),
        "visits": 0,
        "last_visit_on": None,
        "expected_next_visit_on": None,
        "horizon_days": 90,
        "probability_return": None,
        "expected_visits": None,
        "lapse_risk": None,
        "model_version": version,
        "scored_at": NOW.isoformat().replace("+00:00", "Z"),
        "next_action": "none",
        "next_action_reason": "no_visit_yet",
        "next_action_send_after": None,
    }
    # a client never scored, and an unknown (or another clinic's) client, are not found
    assert api.get(f"/api/v1/clients/{unscored.id}/retention").json()["error"] == "not_found"
    assert api.get(f"/api/v1/clients/{uuid.uuid4()}/retention").status_code == 404
