"""The day optimizer's pages through FastAPI's TestClient: the waitlist on the day view, optimizing a day
(a job the worker runs; here it runs as soon as it is handed over), the job's page, a proposal beside the
schedule, and applying the chosen changes (all or nothing)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import date, timedelta

from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, func, select, update

from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.money import format_cents
from medspa.kit.tz import local_day_bounds
from medspa.resources import service as resources
from medspa.resources.schemas import PeriodCreate
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import OptimizationJob, ScheduleProposal
from medspa.scheduling.schemas import (
    BookingRequest,
    ProposalItem,
    ProposalRead,
    WaitlistCreate,
    WaitlistRead,
)
from tests.factories import make_client
from tests.web.conftest import Demo, appointments_on, first_day_with_a_waitlist

HTMX = {"HX-Request": "true"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CHECKBOX = re.compile(r'type="checkbox" name="requests" value="([^"]+)"')


def _waitlist(engine: Engine, demo: Demo, day: date, status: str = "waiting") -> list[WaitlistRead]:
    with unit_of_work(engine, write=False) as session:
        return scheduling.list_waitlist(
            session, actor=demo.actor, location_id=demo.location_id, service_date=day, status=status
        )


def _proposal(engine: Engine, demo: Demo, proposal_id: uuid.UUID) -> ProposalRead:
    with unit_of_work(engine, write=False) as session:
        return scheduling.get_proposal(session, actor=demo.actor, proposal_id=proposal_id)


def _optimize(engine: Engine, demo: Demo, day: date) -> ProposalRead:
    proposal = scheduling.optimize_day(
        engine, actor=demo.actor, location_id=demo.location_id, service_date=day, time_limit_seconds=1
    )
    assert _placements(proposal), "the demo's waitlist day should leave room to place someone"
    return proposal


def _job_page_then_proposal(signed_in: TestClient, response_location: str) -> uuid.UUID:
    """Follow the optimize form's answer: the job's page, which (the job being done) leads to the
    proposal; the proposal's id."""
    assert re.fullmatch(r"/optimization-jobs/" + UUID.pattern, response_location)
    job_page = signed_in.get(response_location, follow_redirects=False)
    assert job_page.status_code == 303
    assert re.fullmatch(r"/proposals/" + UUID.pattern, job_page.headers["location"])
    return uuid.UUID(job_page.headers["location"].rsplit("/", 1)[1])


def _proposal_count(engine: Engine) -> int:
    with unit_of_work(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(ScheduleProposal)) or 0


def _placements(proposal: ProposalRead) -> list[ProposalItem]:
    return [i for i in proposal.items if i.kind == "waitlist" and i.status == "booked"]


def _visible_text(page: str) -> str:
    """The page's text as a reader sees it: no tags (so no ids in attributes), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# --- the waitlist on the day view ---------------------------------------------------------------------


def test_day_view_lists_the_waitlist_and_offers_to_optimize_the_day(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    waiting = _waitlist(engine, demo_template, day)
    with unit_of_work(engine, write=False) as session:
        names = clients.client_names(
            session, actor=demo_template.actor, client_ids={w.client_id for w in waiting}
        )

    page = signed_in.get(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}")

    assert page.status_code == 200
    assert f"{len(waiting)} waiting" in page.text
    assert f'<a href="#waitlist">{len(waiting)} on the waitlist</a>' in page.text
    listed = page.text.split('<ul class="waiting">', 1)[1].split("</ul>", 1)[0]
    assert listed.count("<li>") == len(waiting)
    for name in names.values():
        assert html.escape(name) in page.text
    assert f'action="/locations/{demo_template.location_id}/proposals"' in page.text
    assert f'name="date" value="{day.isoformat()}"' in page.text
    assert "Optimize this day" in page.text


def test_a_past_day_offers_no_optimizer(signed_in: TestClient, demo_template: Demo) -> None:
    page = signed_in.get(f"/locations/{demo_template.location_id}/day?date=2020-01-06")
    assert page.status_code == 200
    assert "0 waiting" in page.text
    assert "Optimize this day" not in page.text


# --- optimizing a day ---------------------------------------------------------------------------------


def test_optimize_this_day_stores_a_proposal_books_nothing_and_opens_it(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    booked_before = {a.id for a in appointments_on(engine, demo_template, day)}
    waiting_before = {w.id for w in _waitlist(engine, demo_template, day)}

    response = signed_in.post(
        f"/locations/{demo_template.location_id}/proposals",
        data={"date": day.isoformat(), "time_limit_seconds": "1"},
        follow_redirects=False,
    )

    assert response.status_code == 303
    proposal = _proposal(
        engine, demo_template, _job_page_then_proposal(signed_in, response.headers["location"])
    )
    assert proposal.service_date == day
    assert proposal.status == "proposed"
    # Shadow mode: the schedule and the waitlist are as they were.
    assert {a.id for a in appointments_on(engine, demo_template, day)} == booked_before
    assert {w.id for w in _waitlist(engine, demo_template, day)} == waiting_before


def test_the_day_view_can_replan_with_a_move_limit_and_refuses_a_bad_one(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    url = f"/locations/{demo_template.location_id}/proposals"
    replanned = signed_in.post(
        url,
        data={"date": day.isoformat(), "time_limit_seconds": "1", "max_moves": "2"},
        follow_redirects=False,
    )
    assert replanned.status_code == 303
    proposal = _proposal(
        engine, demo_template, _job_page_then_proposal(signed_in, replanned.headers["location"])
    )
    statuses = {item.status for item in proposal.items if item.kind == "appointment"}
    assert statuses <= {"kept", "moved", "dropped", "locked"}
    assert statuses & {"kept", "moved"}  # replanned: without a limit every booking would be "locked"
    bad = signed_in.post(url, data={"date": day.isoformat(), "time_limit_seconds": "1", "max_moves": "-1"})
    assert bad.status_code == 422
    assert "number of bookings that may move" in bad.text


def test_optimizing_from_htmx_redirects_the_browser_to_the_job_then_the_proposal(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    response = signed_in.post(
        f"/locations/{demo_template.location_id}/proposals",
        data={"date": day.isoformat(), "time_limit_seconds": "1"},
        headers=HTMX,
    )
    assert response.status_code == 200
    job_url = response.headers["HX-Redirect"]
    assert re.fullmatch(r"/optimization-jobs/" + UUID.pattern, job_url)
    polled = signed_in.get(job_url, headers=HTMX)  # the job page's poll, once the job is done
    assert polled.status_code == 200
    assert re.fullmatch(r"/proposals/" + UUID.pattern, polled.headers["HX-Redirect"])


def test_the_job_page_shows_progress_while_running_and_says_when_no_worker_took_the_job(
    engine: Engine, demo_template: Demo, signed_in: TestClient
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    with unit_of_work(engine) as session:  # a job nobody has run
        job = scheduling.request_optimization(
            session, actor=demo_template.actor, location_id=demo_template.location_id, service_date=day
        )
        session.execute(
            update(OptimizationJob)
            .where(OptimizationJob.id == job.id)
            .values(created_at=job.created_at - timedelta(seconds=30))
        )
    waiting = signed_in.get(f"/optimization-jobs/{job.id}")
    assert waiting.status_code == 200
    assert 'data-status="queued"' in waiting.text
    # 30 s and the time the request took (on a busy machine the page may say 31 s)
    waited = re.search(r"No worker has started this optimization after (\d+) s", waiting.text)
    assert waited is not None
    assert 30 <= int(waited.group(1)) <= 40
    assert 'hx-trigger="every 5s"' in waiting.text  # it keeps asking, less often
    with unit_of_work(engine) as session:  # now a worker runs it and has found a schedule
        session.execute(
            update(OptimizationJob)
            .where(OptimizationJob.id == job.id)
            .values(status="running", started_at=clock.now(), best_value_cents=123456, improvements=3)
        )
    running = signed_in.get(f"/optimization-jobs/{job.id}", headers=HTMX)
    assert running.text.lstrip().startswith('<section id="job"')
    assert 'hx-trigger="every 1s"' in running.text
    assert "Searching: 0 s of 10 s." in running.text
    assert "Best schedule so far: $1,234.56 (3 found)." in running.text
    assert "the worker may have stopped" not in running.text
    with unit_of_work(engine) as session:  # ... and then nothing more for minutes
        session.execute(
            update(OptimizationJob)
            .where(OptimizationJob.id == job.id)
            .values(started_at=clock.now() - timedelta(seconds=100))
        )
    stalled = signed_in.get(f"/optimization-jobs/{job.id}", headers=HTMX)
    assert "This has run 90 s past its time limit: the worker may have stopped." in stalled.text


def test_a_day_that_cannot_be_optimized_shows_why_on_the_job_page(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    url = f"/locations/{demo_template.location_id}/proposals"
    closed = signed_in.post(url, data={"date": "2020-01-05", "time_limit_seconds": "1"})
    assert closed.status_code == 200  # the job's page, which ran and failed
    assert 'data-status="failed"' in closed.text
    assert (
        "The day could not be optimized: the location is closed on Sunday, 2020-01-05 "
        "(it has no opening hours on Sundays)." in closed.text
    )
    assert "hx-trigger" not in closed.text  # nothing more to wait for

    day = first_day_with_a_waitlist(engine, demo_template)
    for limit in ("soon", "0", "nan", "121"):
        page = signed_in.post(url, data={"date": day.isoformat(), "time_limit_seconds": limit})
        assert (limit, page.status_code) == (limit, 422)
        assert "<!doctype html>" in page.text
        assert 'class="flash error"' in page.text
    assert _proposal_count(engine) == 0


# --- a proposal's page --------------------------------------------------------------------------------


def test_the_proposal_page_shows_values_gain_terms_and_every_request_by_name(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    proposal = _optimize(engine, demo_template, day)

    page = signed_in.get(f"/proposals/{proposal.id}")

    assert page.status_code == 200
    text = _visible_text(page.text)
    assert f"Proposal for {day.strftime('%A, %B')} {day.day}, {day.year}" in text
    assert format_cents(proposal.current_value_cents) in text
    assert format_cents(proposal.proposed_value_cents) in text
    gain = ("+" if proposal.gain_cents > 0 else "") + format_cents(proposal.gain_cents)
    assert f'<strong id="gain">{gain}</strong>' in page.text
    for term in ("Expected margin", "Continuity", "Member priority", "Waiting cost", "Total"):
        assert term in text
    assert format_cents(round(proposal.objective_terms["total"] * 100)) in text
    # Every request is a row, with its reason; the placements are checked for applying.
    assert page.text.count("<tr data-request=") == len(proposal.items)
    for item in proposal.items:
        assert str(escape(item.reason[1:])) in page.text  # escaped as Jinja escapes (' -> &#39;)
    assert set(CHECKBOX.findall(page.text)) == {i.request for i in _placements(proposal)}
    assert "Apply selected" in page.text
    # Names, not ids: clients, services, providers, rooms and devices are named; no id is shown.
    assert UUID.search(text) is None
    waiting = _waitlist(engine, demo_template, day)
    with unit_of_work(engine, write=False) as session:
        names = clients.client_names(
            session, actor=demo_template.actor, client_ids={w.client_id for w in waiting}
        )
    for name in names.values():
        assert name in text
    assert "(unknown" not in text


def test_a_waiting_client_name_with_markup_is_escaped_on_the_day_and_the_proposal(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    evil = "<script>alert('pwned')</script>"
    day = first_day_with_a_waitlist(engine, demo_template)
    like = _waitlist(engine, demo_template, day)[0]
    with unit_of_work(engine) as session:
        client = clients.create_client(
            session,
            actor=demo_template.actor,
            data=ClientCreate(first_name=evil, last_name="Doe", email="evil@example.com"),
        )
        scheduling.add_to_waitlist(
            session,
            actor=demo_template.actor,
            data=WaitlistCreate(
                client_id=client.id,
                service_id=like.service_id,
                location_id=demo_template.location_id,
                service_date=day,
                window_starts_at=like.window_starts_at,
                window_ends_at=like.window_ends_at,
            ),
        )
    proposal = _optimize(engine, demo_template, day)

    for page in (
        signed_in.get(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}"),
        signed_in.get(f"/proposals/{proposal.id}"),
    ):
        assert page.status_code == 200
        assert evil not in page.text
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; Doe" in page.text


def test_an_unknown_proposal_is_a_not_found_page(signed_in: TestClient) -> None:
    page = signed_in.get(f"/proposals/{uuid.uuid4()}")
    assert page.status_code == 404
    assert "<!doctype html>" in page.text
    assert "proposal" in page.text


# --- applying -----------------------------------------------------------------------------------------


def test_applying_selected_placements_books_them_and_shows_the_applied_proposal(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    proposal = _optimize(engine, demo_template, day)
    placements = _placements(proposal)
    chosen = placements[0]
    booked_before = {a.id for a in appointments_on(engine, demo_template, day)}

    page = signed_in.post(f"/proposals/{proposal.id}/apply", data={"requests": [chosen.request]})

    assert page.status_code == 200
    assert "Booked 1 placement from the waitlist." in page.text
    assert "Apply selected" not in page.text
    assert CHECKBOX.findall(page.text) == []
    assert f'href="/locations/{demo_template.location_id}/day?date={day.isoformat()}"' in page.text
    expected = "applied" if len(placements) == 1 else "partially_applied"
    assert _proposal(engine, demo_template, proposal.id).status == expected
    # The chosen entry is booked, at the proposed time with the proposed provider; the others still wait.
    (entry,) = _waitlist(engine, demo_template, day, status="booked")
    assert entry.id == chosen.record_id
    new = [a for a in appointments_on(engine, demo_template, day) if a.id not in booked_before]
    assert [(a.id, a.client_id, a.starts_at, a.provider_id, a.room_id) for a in new] == [
        (entry.appointment_id, entry.client_id, chosen.starts_at, chosen.provider_id, chosen.room_id)
    ]
    still_waiting = {w.id for w in _waitlist(engine, demo_template, day)}
    assert {p.record_id for p in placements[1:]} <= still_waiting
    assert page.text.count('class="tag tag-booked"') == 1
    assert page.text.count('class="tag tag-left_out"') == len(placements) - 1

    again = signed_in.get(f"/proposals/{proposal.id}")
    assert "Apply selected" not in again.text
    assert "cannot be applied again" in again.text


def test_applying_every_placement_marks_the_proposal_applied(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    proposal = _optimize(engine, demo_template, day)
    form = signed_in.get(f"/proposals/{proposal.id}").text

    page = signed_in.post(f"/proposals/{proposal.id}/apply", data={"requests": CHECKBOX.findall(form)})

    count = len(_placements(proposal))
    assert page.status_code == 200
    assert f"Booked {count} placement{'' if count == 1 else 's'} from the waitlist." in page.text
    assert _proposal(engine, demo_template, proposal.id).status == "applied"
    booked = _waitlist(engine, demo_template, day, status="booked")
    assert {e.id for e in booked} == {p.record_id for p in _placements(proposal)}
    assert all(e.appointment_id is not None for e in booked)

    replay = signed_in.post(f"/proposals/{proposal.id}/apply", data={"requests": CHECKBOX.findall(form)})
    assert replay.status_code == 409
    assert "already been applied, so nothing more was booked" in replay.text
    assert len(_waitlist(engine, demo_template, day, status="booked")) == count


def test_applying_after_the_day_changed_answers_409_and_books_nothing(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    proposal = _optimize(engine, demo_template, day)
    placements = _placements(proposal)
    taken = placements[0]
    entry = next(w for w in _waitlist(engine, demo_template, day) if w.id == taken.record_id)
    with unit_of_work(engine) as session:  # meanwhile the front desk books that provider and room then
        other = make_client(session, actor=demo_template.actor)
        assert taken.starts_at is not None
        assert taken.provider_id is not None
        assert taken.room_id is not None
        scheduling.book_appointment(
            session,
            actor=demo_template.actor,
            data=BookingRequest(
                client_id=other.id,
                service_id=entry.service_id,
                location_id=demo_template.location_id,
                starts_at=taken.starts_at,
                provider_id=taken.provider_id,
                room_id=taken.room_id,
                device_id=taken.device_id,
            ),
        )
    booked_before = {a.id for a in appointments_on(engine, demo_template, day)}

    page = signed_in.post(
        f"/proposals/{proposal.id}/apply", data={"requests": [p.request for p in placements]}
    )

    assert page.status_code == 409
    assert "<!doctype html>" in page.text
    assert "Nothing was changed: the day has changed since this proposal was made:" in page.text
    assert f"{html.escape(other.first_name)} {html.escape(other.last_name)}" in page.text
    assert {a.id for a in appointments_on(engine, demo_template, day)} == booked_before
    assert _waitlist(engine, demo_template, day, status="booked") == []
    assert _proposal(engine, demo_template, proposal.id).status == "proposed"


def test_applying_nothing_chosen_or_an_unknown_request_books_nothing(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    proposal = _optimize(engine, demo_template, day)
    booked_before = {a.id for a in appointments_on(engine, demo_template, day)}

    empty = signed_in.post(f"/proposals/{proposal.id}/apply", data={})
    unknown = signed_in.post(f"/proposals/{proposal.id}/apply", data={"requests": ["w-000000000000"]})

    assert empty.status_code == 422
    assert "Choose at least one change to apply." in empty.text
    assert unknown.status_code == 422
    assert "w-000000000000" in unknown.text
    assert {a.id for a in appointments_on(engine, demo_template, day)} == booked_before
    assert _proposal(engine, demo_template, proposal.id).status == "proposed"


# --- guards -------------------------------------------------------------------------------------------


def test_proposal_pages_need_a_session(client: TestClient, demo_template: Demo) -> None:
    proposal_id = uuid.uuid4()
    for method, path in (
        ("GET", f"/proposals/{proposal_id}"),
        ("POST", f"/proposals/{proposal_id}/apply"),
        ("POST", f"/locations/{demo_template.location_id}/proposals"),
    ):
        response = client.request(method, path, follow_redirects=False)
        assert (method, path, response.status_code) == (method, path, 303)
        assert response.headers["location"] == "/login"


def test_a_cross_site_post_optimizes_nothing_and_applies_nothing(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    proposal = _optimize(engine, demo_template, day)
    booked_before = {a.id for a in appointments_on(engine, demo_template, day)}
    evil = {"Origin": "https://evil.example"}

    optimize = signed_in.post(
        f"/locations/{demo_template.location_id}/proposals",
        data={"date": day.isoformat(), "time_limit_seconds": "1"},
        headers=evil,
        follow_redirects=False,
    )
    apply = signed_in.post(
        f"/proposals/{proposal.id}/apply",
        data={"requests": [p.request for p in _placements(proposal)]},
        headers=evil,
    )

    assert optimize.status_code == 403
    assert _proposal_count(engine) == 1
    assert apply.status_code == 403
    assert "cross-site request refused" in apply.text
    assert {a.id for a in appointments_on(engine, demo_template, day)} == booked_before
    assert _proposal(engine, demo_template, proposal.id).status == "proposed"


# --- replanning after a call-out ------------------------------------------------------------------------


def test_a_call_out_is_replanned_on_the_page_and_the_moves_applied_from_it(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    # given a day on which one provider, with bookings still to come, calls out for the whole day
    day = first_day_with_a_waitlist(engine, demo_template) + timedelta(days=1)
    while not appointments_on(engine, demo_template, day):
        day += timedelta(days=1)
    upcoming = [
        a
        for a in appointments_on(engine, demo_template, day)
        if a.status in ("booked", "confirmed") and a.starts_at > clock.now()
    ]
    provider_id = upcoming[0].provider_id
    stranded = {a.id for a in upcoming if a.provider_id == provider_id}
    start, end = local_day_bounds(day, "America/New_York")
    with unit_of_work(engine) as session:
        resources.add_time_off(
            session,
            actor=demo_template.actor,
            provider_id=provider_id,
            data=PeriodCreate(starts_at=start, ends_at=end, reason="sick"),
        )
    # when the day is replanned from the day view, allowing as many moves as there are bookings
    response = signed_in.post(
        f"/locations/{demo_template.location_id}/proposals",
        data={"date": day.isoformat(), "time_limit_seconds": "2", "max_moves": str(len(upcoming))},
    )
    # then the proposal page lists each of that provider's bookings as moved (with a box to apply it, and
    # the provider it had) or as one that cannot stay (left as booked: call the client)
    assert response.status_code == 200
    page = response.text
    proposal_id = uuid.UUID(re.findall(r'action="/proposals/(' + UUID.pattern + ')/apply"', page)[0])
    proposal = _proposal(engine, demo_template, proposal_id)
    changed = {i.record_id: i for i in proposal.items if i.status in ("moved", "dropped")}
    assert stranded <= set(changed)  # others may move too, within the limit, to make room
    assert all(changed[i].status == "moved" for i in set(changed) - stranded)  # they fit: never dropped
    assert proposal.moves == len(changed) <= (proposal.max_moves or 0)
    moved = [i for i in changed.values() if i.status == "moved"]
    dropped = [i for i in changed.values() if i.status == "dropped"]
    assert set(CHECKBOX.findall(page)) == {i.request for i in moved} | {
        i.request for i in _placements(proposal)
    }
    assert f"Replanning: {len(changed)} of at most {len(upcoming)} bookings change" in _visible_text(page)
    assert page.count('<small class="block was">was ') >= len(moved)
    if dropped:
        assert "left exactly as it is when you apply, with its provider, room and device" in page
    # and applying the moves from the page gives those bookings their new provider; the others stay
    if not moved:
        return
    applied = signed_in.post(f"/proposals/{proposal_id}/apply", data={"requests": [i.request for i in moved]})
    assert applied.status_code == 200, _visible_text(applied.text)[:2000]
    assert f"Moved {len(moved)} booking{'' if len(moved) == 1 else 's'}." in applied.text
    now = {a.id: a for a in appointments_on(engine, demo_template, day)}
    for item in moved:
        assert (now[item.record_id].provider_id, now[item.record_id].starts_at) == (
            item.provider_id,
            item.starts_at,
        )
    for item in dropped:
        assert item.record_id in stranded
        assert now[item.record_id].provider_id == provider_id


def test_replanning_the_demo_days_with_up_to_three_moves_keeps_the_limit_drops_nothing_and_applies(
    engine: Engine, demo_template: Demo
) -> None:
    # given the demo clinic's days with clients waiting (nobody has called out)
    first = first_day_with_a_waitlist(engine, demo_template)
    days = [
        first + timedelta(days=n)
        for n in range(3)
        if _waitlist(engine, demo_template, first + timedelta(days=n))
    ]
    for day in days:
        # when each is replanned with "move up to 3 bookings"
        proposal = scheduling.optimize_day(
            engine,
            actor=demo_template.actor,
            location_id=demo_template.location_id,
            service_date=day,
            time_limit_seconds=2,
            max_moves=3,
        )
        # then at most 3 bookings change as the proposal counts them, none is dropped, and all of it applies
        statuses = [i.status for i in proposal.items if i.kind == "appointment"]
        assert statuses.count("moved") == proposal.moves <= 3, (day, statuses)
        assert "dropped" not in statuses
        with unit_of_work(engine) as session:
            applied = scheduling.apply_proposal(session, actor=demo_template.actor, proposal_id=proposal.id)
        assert applied.status == "applied"
        now = {a.id: a for a in appointments_on(engine, demo_template, day)}
        for item in proposal.items:
            if item.kind == "appointment" and item.status in ("kept", "moved"):
                a = now[item.record_id]
                assert (a.provider_id, a.room_id, a.device_id) == (
                    item.provider_id,
                    item.room_id,
                    item.device_id,
                )
