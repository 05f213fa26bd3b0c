"""A service's follow-up window and course of sessions over the API: stored, read back, cleared, and
refused (422, nothing written) when they do not hold together."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

SERVICE = {
    "name": "Laser hair removal",
    "category": "laser",
    "duration_minutes": 45,
    "required_skill": "laser",
    "room_types": ["laser"],
    "price_cents": 25000,
}
CADENCE = {"follow_up_days": 270, "follow_up_days_max": 365, "series_sessions": 6, "series_interval_days": 28}


def test_a_window_and_a_series_are_stored_and_cleared(api: TestClient) -> None:
    created = api.post("/api/v1/services", json={**SERVICE, **CADENCE})
    assert created.status_code == 201, created.text
    url = f"/api/v1/services/{created.json()['id']}"
    assert {key: api.get(url).json()[key] for key in CADENCE} == CADENCE
    cleared = api.patch(
        url, json={"follow_up_days_max": None, "series_sessions": None, "series_interval_days": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert {key: api.get(url).json()[key] for key in CADENCE} == {
        "follow_up_days": 270,
        "follow_up_days_max": None,
        "series_sessions": None,
        "series_interval_days": None,
    }


@pytest.mark.parametrize(
    ("cadence", "field", "words"),
    [
        ({"follow_up_days": 90, "follow_up_days_max": 60}, "follow_up_days_max", "not be before"),
        ({"follow_up_days_max": 60}, "follow_up_days_max", "needs the earliest day"),
        ({"follow_up_days": 90, "follow_up_days_max": 731}, "follow_up_days_max", "less than or equal"),
        ({"series_sessions": 6}, "series_interval_days", "both"),
        ({"series_interval_days": 28}, "series_sessions", "both"),
        ({"series_sessions": 1, "series_interval_days": 28}, "series_sessions", "greater than or equal"),
    ],
)
def test_a_window_or_series_that_does_not_hold_together_is_422_and_stores_nothing(
    api: TestClient, cadence: dict[str, Any], field: str, words: str
) -> None:
    response = api.post("/api/v1/services", json={**SERVICE, **cadence})
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"
    assert response.json()["fields"] == [field]
    assert words in response.json()["detail"]
    assert api.get("/api/v1/services").json()["total"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"follow_up_days_max": 200}, "follow_up_days_max"),  # before the stored earliest day, 270
        ({"follow_up_days": 400}, "follow_up_days_max"),  # after the stored latest day, 365
        ({"follow_up_days": None}, "follow_up_days_max"),  # the latest day kept without the earliest
        ({"series_interval_days": None}, "series_interval_days"),  # sessions kept without the interval
    ],
)
def test_a_change_that_breaks_the_stored_window_or_series_is_422_and_changes_nothing(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    created = api.post("/api/v1/services", json={**SERVICE, **CADENCE})
    url = f"/api/v1/services/{created.json()['id']}"
    before = api.get(url).json()
    response = api.patch(url, json={**change, "price_cents": 1})
    assert response.status_code == 422
    assert response.json()["fields"] == [field]
    assert api.get(url).json() == before
