"""Before a client is added: the records it may duplicate (same e-mail, same phone in any format, or the
same name and birth date), through the API and in the booking form."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_the_records_a_new_client_may_duplicate(api: TestClient) -> None:
    first = api.post(
        "/api/v1/clients",
        json={
            "first_name": "Nova",
            "last_name": "Campbell",
            "email": "nova.campbell@example.org",
            "phone": "(555) 010-2233",
            "date_of_birth": "1990-04-02",
        },
    ).json()
    other = api.post(
        "/api/v1/clients", json={"first_name": "Ines", "last_name": "Moreau", "phone": "555 010 9999"}
    ).json()

    def dupes(**details: object) -> list[str]:
        answer = api.post("/api/v1/clients/duplicates", json={"first_name": "X", "last_name": "Y", **details})
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()]

    assert dupes(email="NOVA.campbell@example.org") == [first["id"]]
    assert dupes(phone="+1 555-010-2233") == [first["id"]]
    assert dupes(first_name="nova", last_name="CAMPBELL", date_of_birth="1990-04-02") == [first["id"]]
    assert dupes(first_name="Nova", last_name="Campbell", date_of_birth="1991-04-02") == []  # another Nova
    assert dupes(first_name="Nova", last_name="Campbell") == []  # a name alone is not enough
    assert dupes(email="nova@example.org", phone="555 010 9999") == [other["id"]]
    assert (
        api.post("/api/v1/clients/duplicates", json={"first_name": "", "last_name": "Y"}).status_code == 422
    )
    api.delete(f"/api/v1/clients/{first['id']}")
    assert dupes(email="nova.campbell@example.org") == []  # deactivated records are not offered
    total = api.get("/api/v1/clients").json()["total"]
    assert total == 1  # the checks created nothing
