"""Keeping the stored model outputs fresh, and training a clinic's models on its own history.

`refresh_scores` is what the worker, the demo seed and the model commands call. It reads in one unit of
work, computes outside any transaction, and writes in a short second one, so that on SQLite the
database's single write lock is never held while a model runs (bookings would queue behind it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.ids import new_id
from medspa.kit.tz import to_local
from medspa.memberships import service as memberships
from medspa.resources import service as resources
from medspa.retention import export, repository
from medspa.retention import next_best_action as nba
from medspa.retention.churn import CHURN_KIND, HORIZON_MONTHS, membership_frame, train_churn
from medspa.retention.formats import history_frame
from medspa.retention.noshow import MODEL_KIND as NOSHOW_KIND
from medspa.retention.noshow import refit_noshow
from medspa.retention.registry import ArtifactIntegrityError, ModelNotFoundError
from medspa.retention.serving import (
    RETURN_HORIZON_DAYS,
    RETURNS_KIND,
    ActiveModel,
    ModelCache,
    score_no_shows,
    train_clinic_noshow,
    train_returns,
)
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor, system_actor

logger = logging.getLogger(__name__)

MODELS_ACTOR = "models"
_PER_CLIENT_QUERIES = 20  # above this many clients, read the organization's visits at once


def clinic_today(session: Session, *, actor: Actor) -> date:
    """Today on the clinic's clock: the latest local date among its locations (UTC without any)."""
    now = clock.now()
    zones = [loc.time_zone for loc in resources.list_locations(session, actor=actor, limit=500).items]
    return max((to_local(now, zone).date() for zone in zones), default=now.date())


@dataclass
class ScoringReport:
    """What a refresh did for one organization; `errors` name models that were refused."""

    appointments_scored: int = 0
    clients_scored: int = 0
    noshow_version: str | None = None
    returns_version: str | None = None
    members_scored: int = 0
    churn_version: str | None = None
    errors: list[str] = field(default_factory=list)


def _active(
    cache: ModelCache, organization_id: uuid.UUID, kind: str, report: ScoringReport
) -> ActiveModel | None:
    try:
        return cache.active(organization_id, kind)
    except (ArtifactIntegrityError, ModelNotFoundError, ValueError) as error:
        # A refused artifact leaves the outputs unscored; it must never stop the clinic's work.
        logger.error("organization %s: %s model refused: %s", organization_id, kind, error)
        report.errors.append(f"{kind}: {error}")
        return None


def refresh_scores(
    engine: Engine,
    *,
    organization_id: uuid.UUID,
    cache: ModelCache,
    appointment_ids: Iterable[uuid.UUID] = (),
    client_ids: Iterable[uuid.UUID] = (),
    everything: bool = False,
) -> ScoringReport:
    """Score, with the organization's active models, the given appointments (those not yet happened),
    the given clients (their retention score, and P(no-show) of their appointments not yet happened, whose
    features read the client's history), or with `everything` all of them. Idempotent: the same database
    state gives the same stored values. A model refused by the registry is logged and skipped."""
    actor = system_actor(organization_id, MODELS_ACTOR)
    report = ScoringReport()
    if everything:
        refresh_membership_lapse(engine, organization_id=organization_id, cache=cache, report=report)
    noshow = _active(cache, organization_id, NOSHOW_KIND, report)
    returns = _active(cache, organization_id, RETURNS_KIND, report)
    wanted_appointments = {str(i) for i in appointment_ids}
    wanted_clients = {str(i) for i in client_ids}
    if not (everything or wanted_appointments or wanted_clients) or not (noshow or returns):
        return report
    scored_at = clock.now()
    history: pd.DataFrame | None = None
    transactions: pd.DataFrame | None = None
    with unit_of_work(engine, write=False) as session:
        today = clinic_today(session, actor=actor)
        if noshow is not None and not everything:
            # The appointments the targets' features read; the whole history when there are many targets.
            nearby = scheduling.scoring_neighbourhood(
                session,
                actor=actor,
                appointment_ids=[uuid.UUID(i) for i in wanted_appointments],
                client_ids=[uuid.UUID(i) for i in wanted_clients],
            )
            history = export.live_history_frame(session, actor=actor, appointments=nearby)
        elif noshow is not None or everything or returns is not None:
            # (the next-best-action of a scored client reads whether they have a booking to come)
            history = export.live_history_frame(session, actor=actor)
        if returns is not None:
            transactions = _visits(session, actor, None if everything else wanted_clients)
        zones = [loc.time_zone for loc in resources.list_locations(session, actor=actor, limit=500).items]
    probabilities: dict[uuid.UUID, float] = {}
    if noshow is not None and history is not None:
        targets: set[str] | None = None
        if not everything:
            of_clients = history["client_id"].isin(wanted_clients) & history["status"].isin(
                list(scheduling.NOT_HAPPENED)
            )
            targets = wanted_appointments | set(history.loc[of_clients, "appointment_id"])
        probabilities = score_no_shows(noshow.model, history, targets)
    score_rows: list[dict[str, Any]] = []
    if returns is not None and transactions is not None:
        if everything and history is not None:
            wanted_clients = set(history["client_id"]) | set(transactions["client_id"])
        score_rows = _score_rows(returns, transactions, wanted_clients, organization_id, today, scored_at)
        booked_ahead = set() if history is None else _clients_with_bookings_to_come(history)
        recommend_for_scored(score_rows, booked_ahead, now=scored_at, time_zone=zones[0] if zones else "UTC")
    with unit_of_work(engine) as session:
        if noshow is not None and probabilities:
            report.appointments_scored = scheduling.store_no_show_scores(
                session,
                actor=actor,
                probabilities=probabilities,
                model_version=noshow.version,
                scored_at=scored_at,
            )
        repository.upsert_scores(session, score_rows)
    report.clients_scored = len(score_rows)
    report.noshow_version = noshow.version if noshow else None
    report.returns_version = returns.version if returns else None
    return report


def refresh_membership_lapse(
    engine: Engine, *, organization_id: uuid.UUID, cache: ModelCache, report: ScoringReport
) -> None:
    """Score every active member with the organization's active churn model (`retention.churn`): the
    membership lapse risk, P(ending within `HORIZON_MONTHS` months | the tenure so far), replaces every
    stored one. Without an active churn model nothing is stored and old scores are removed: a clinic
    whose model was refused serves no figure rather than a stale one. Reads, computes and writes in
    separate steps, like the other scores."""
    actor = system_actor(organization_id, MODELS_ACTOR)
    churn = _active(cache, organization_id, CHURN_KIND, report)
    rows: list[dict[str, Any]] = []
    if churn is not None:
        with unit_of_work(engine, write=False) as session:
            today = clinic_today(session, actor=actor)
            book = memberships.memberships_started_by(session, actor=actor, on=today)
        frame = membership_frame(book, today=today)
        members = frame[frame["is_active"]].reset_index(drop=True)
        risks = churn.model.lapse_risks(members) if not members.empty else []
        scored_at = clock.now()
        for member, (risk, reason) in zip(members.itertuples(index=False), risks, strict=True):
            rows.append(
                {
                    "id": new_id(),
                    "organization_id": organization_id,
                    "client_id": uuid.UUID(str(member.client_id)),
                    "membership_id": uuid.UUID(str(member.membership_id)),
                    "tenure_months": float(str(member.tenure)),
                    "horizon_months": HORIZON_MONTHS,
                    "lapse_risk": risk,
                    "reason": reason,
                    "model_version": churn.version,
                    "memberships": churn.model.memberships,
                    "scored_at": scored_at,
                }
            )
    with unit_of_work(engine) as session:
        repository.replace_membership_scores(session, organization_id, rows)
    report.members_scored = len(rows)
    report.churn_version = churn.version if churn else None


def _clients_with_bookings_to_come(history: pd.DataFrame) -> set[str]:
    return set(history.loc[history["status"].isin(list(scheduling.NOT_HAPPENED)), "client_id"].astype(str))


def recommend_for_scored(
    score_rows: list[dict[str, Any]], booked_ahead: set[str], *, now: datetime, time_zone: str
) -> None:
    """Run the next-best-action policy for every scored client and put its recommendation in the score
    row (`next_action`, `next_action_reason`, `next_action_send_after`); each recommendation of an action
    is logged, and a count per action. A client without a completed visit has no lapse risk: no action
    ("no_visit_yet"). The policy is not given the client's contact consent or contact history: the
    clients domain records consent but offers no read of it that does not open the client's PHI, and the
    messages sent are engagement's, which reads these scores. So it is told consent is unknown (it
    recommends, and the reason ends "consent not checked": engagement checks consent, quiet hours and
    caps when it sends) and that there were no contacts; the cadence is the client's mean days between
    visits, or the score's horizon with fewer than two visits."""
    counts: dict[str, int] = {}
    for row in score_rows:
        client = str(row["client_id"])
        if row["lapse_risk"] is None or row["last_visit_on"] is None:
            action, reason, send_after = nba.Action.NONE.value, "no_visit_yet", None
        else:
            days_since = float((now.date() - row["last_visit_on"]).days)
            state = nba.ClientState(
                client_id=client,
                lapse_risk=min(max(float(row["lapse_risk"]), 0.0), 1.0),
                days_since_last_visit=days_since,
                cadence_days=float(row.pop("cadence_days", None) or row["horizon_days"]),
                has_future_booking=client in booked_ahead,
                consent_email=None,
                consent_sms=None,
                time_zone=time_zone,
            )
            recommendation = nba.recommend(state, now=now)
            action, reason = recommendation.action.value, recommendation.reason
            if not recommendation.consent_recorded:
                reason += "; consent not checked"
            send_after = recommendation.send_after
            if action != nba.Action.NONE.value:
                logger.info("next best action for client %s: %s (%s)", client, action, reason)
        row.pop("cadence_days", None)
        row |= {"next_action": action, "next_action_reason": reason, "next_action_send_after": send_after}
        counts[action] = counts.get(action, 0) + 1
    if counts:
        logger.info("next best actions: %s", ", ".join(f"{a} {n}" for a, n in sorted(counts.items())))


def _visits(session: Session, actor: Actor, client_ids: set[str] | None) -> pd.DataFrame:
    """The visits of these clients (all clients: None) as a `visit-transactions` frame."""
    if client_ids is None or len(client_ids) > _PER_CLIENT_QUERIES:
        frame = export.live_transactions_frame(session, actor=actor)
        return frame if client_ids is None else frame[frame["client_id"].isin(client_ids)]
    frames = [
        export.live_transactions_frame(session, actor=actor, client_id=uuid.UUID(c))
        for c in sorted(client_ids)
    ]
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else export.live_transactions_frame(session, actor=actor)
    )


def _score_rows(
    returns: ActiveModel,
    transactions: pd.DataFrame,
    client_ids: set[str],
    organization_id: uuid.UUID,
    today: date,
    scored_at: datetime,
) -> list[dict[str, Any]]:
    """One score row per client; clients without a visit get null model outputs."""
    scored = returns.model.score(transactions, today=today) if not transactions.empty else pd.DataFrame()
    horizon = int(getattr(returns.model, "horizon_days", RETURN_HORIZON_DAYS))
    rows: list[dict[str, Any]] = []
    for client in sorted(client_ids):
        row: dict[str, Any] = {
            "id": new_id(),
            "organization_id": organization_id,
            "client_id": uuid.UUID(client),
            "visits": 0,
            "last_visit_on": None,
            "expected_next_visit_on": None,
            "horizon_days": horizon,
            "probability_return": None,
            "expected_visits": None,
            "lapse_risk": None,
            "model_version": returns.version,
            "scored_at": scored_at,
            "cadence_days": None,
        }
        if client in scored.index:
            values: dict[Any, Any] = scored.loc[client].to_dict()
            row |= {
                "visits": int(values["visits"]),
                "last_visit_on": values["last_visit_on"],
                "expected_next_visit_on": values["expected_next_visit_on"],
                "probability_return": float(values["probability_return"]),
                "expected_visits": float(values["expected_visits"]),
                "lapse_risk": float(values["lapse_risk"]),
                "cadence_days": values.get("mean_days_between_visits"),
            }
        rows.append(row)
    return rows


def train_models(
    engine: Engine,
    *,
    organization_id: uuid.UUID,
    cache: ModelCache,
    kinds: Iterable[str] = (NOSHOW_KIND, RETURNS_KIND, CHURN_KIND),
    train_end: date | None = None,
    activate: bool = False,
) -> dict[str, str]:
    """Train the organization's models on its own history before `train_end` (default: the clinic's
    today), store each as a new version in its registry, and activate them if asked. Returns the new
    version per kind. Raises `ValueError` when the history cannot train a model."""
    actor = system_actor(organization_id, MODELS_ACTOR)
    kinds = list(kinds)
    with unit_of_work(engine, write=False) as session:
        end = train_end or clinic_today(session, actor=actor)
        history = history_frame(export.history_rows(session, actor=actor))
        transactions = export.live_transactions_frame(session, actor=actor)
        book = memberships.memberships_started_by(session, actor=actor, on=end) if CHURN_KIND in kinds else []
    registry = cache.registry(organization_id)
    versions: dict[str, str] = {}
    for kind in kinds:
        if kind == NOSHOW_KIND:
            payload = train_clinic_noshow(history, train_end=end).to_payload()
        elif kind == RETURNS_KIND:
            # Visits of `end` itself are not over yet; the fit ends the day before, like the no-show model.
            payload = train_returns(transactions, calibration_end=end - timedelta(days=1)).to_payload()
        elif kind == CHURN_KIND:
            # Memberships started by `end`, their ends up to `end` known; censored at `end` otherwise.
            payload = train_churn(membership_frame(book, today=end), today=end).to_payload()
        else:
            raise ValueError(
                f"unknown model kind {kind!r}; choose {NOSHOW_KIND}, {RETURNS_KIND} or {CHURN_KIND}"
            )
        versions[kind] = registry.save(kind, payload, now=clock.now())
        if activate:
            registry.activate(kind, versions[kind])
    return versions


def refit_noshow_model(engine: Engine, *, organization_id: uuid.UUID, cache: ModelCache) -> str | None:
    """The organization's active no-show model with its booster refitted on every outcome known before
    the clinic's today (`noshow.refit_noshow`: same settings, the calibration map it was trained with),
    stored as a new version, activated, and every score refreshed with it: what `models evaluate noshow`
    measures. Returns the new version, or None when there is no active model or it already saw every
    day before today. Training a new model (a new map, new settings) stays explicit."""
    actor = system_actor(organization_id, MODELS_ACTOR)
    report = ScoringReport()
    active = _active(cache, organization_id, NOSHOW_KIND, report)
    if active is None:
        return None
    model = active.model
    with unit_of_work(engine, write=False) as session:
        today = clinic_today(session, actor=actor)
        history = history_frame(export.history_rows(session, actor=actor))
    if date.fromisoformat(model.training_window["train_end_exclusive"]) >= today:
        return None
    try:
        refitted = refit_noshow(model, history, train_end=today)
    except ValueError as error:
        logger.warning(
            "organization %s: no-show model %s not refitted: %s", organization_id, active.version, error
        )
        return None
    refitted.metrics = {"refit_of": active.version, "holdout": model.metrics.get("holdout", {})}
    registry = cache.registry(organization_id)
    version = registry.save(NOSHOW_KIND, refitted.to_payload(), now=clock.now())
    registry.activate(NOSHOW_KIND, version)
    refresh_scores(engine, organization_id=organization_id, cache=cache, everything=True)
    logger.info("organization %s: no-show model %s refitted as %s", organization_id, active.version, version)
    return version
