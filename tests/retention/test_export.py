"""Export of the live database to the portable formats, read back by the same readers the models use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.retention.export import export_appointment_history, export_visit_transactions
from medspa.retention.formats import read_appointment_history, read_visit_transactions
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest
from medspa.security.actors import Actor
from tests.scheduling.test_availability import NOW, build

DAY_ONE = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York


def test_finished_appointments_round_trip_through_both_formats(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    clinic = build(engine, owner, shift=("09:00", "17:00"))
    starts = [DAY_ONE + timedelta(hours=h) for h in range(5)]
    ids = []
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        for starts_at in starts:
            request = BookingRequest(
                client_id=clinic.client_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                starts_at=starts_at,
            )
            ids.append(scheduling.book_appointment(session, actor=owner, data=request).id)
    with clock.frozen_at(starts[0] + timedelta(hours=2)), unit_of_work(engine) as session:
        scheduling.check_in(session, actor=owner, appointment_id=ids[0])
        scheduling.start_service(session, actor=owner, appointment_id=ids[0])
        scheduling.complete_appointment(session, actor=owner, appointment_id=ids[0])
        scheduling.mark_no_show(session, actor=owner, appointment_id=ids[1])
        scheduling.cancel_appointment(
            session, actor=owner, appointment_id=ids[2], reason="unwell"
        )  # 1 h ahead
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        scheduling.cancel_appointment(
            session, actor=owner, appointment_id=ids[3], reason="travel"
        )  # 2 days ahead
    history, visits = tmp_path / "history.csv", tmp_path / "visits.csv"
    with unit_of_work(engine, write=False) as session:
        assert export_appointment_history(session, actor=owner, path=history) == 4
        assert export_visit_transactions(session, actor=owner, path=visits) == 1
    rows = read_appointment_history(history).frame
    statuses = dict(zip(rows["appointment_id"].astype(str), rows["status"], strict=True))
    assert statuses == {
        str(ids[0]): "completed",
        str(ids[1]): "no_show",
        str(ids[2]): "late_cancelled",
        str(ids[3]): "cancelled",
    }
    first = rows[rows["appointment_id"].astype(str) == str(ids[0])].iloc[0]
    assert str(first["starts_at"]).startswith("2026-03-03 10:00")  # local wall-clock time
    transactions = read_visit_transactions(visits).frame
    assert list(transactions["amount"]) == [450.0]
    assert str(transactions["date"].iloc[0])[:10] == "2026-03-03"
