from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.app import create_app


def test_health_answers_ok_with_the_version(engine: Engine) -> None:
    with TestClient(create_app(engine)) as client:
        response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0"}
