"""Serving the models to a clinic: training them on its own history, loading the active versions, and
scoring its bookings and clients from frames of the live database (`export.live_history_frame`,
`export.live_transactions_frame`) with the same feature code as training.

Tenancy: models belong to an organization. Each organization has its own registry directory,
`<model dir>/<organization id>/<kind>/` (`registry_for`), and its bookings are scored only with the
versions active there, so one clinic's model never scores another's bookings; an organization without
an active version gets no scores (null columns), not another's.

No-show (`noshow`): P(no-show) of every appointment not yet happened (held, booked, confirmed), from
the features `build_features` computes over the organization's whole history, as of the appointment's
scoring instant (the start of its day, or its booking time for a same-day booking; ADR 3).

Return time (`returns`): what the clinic's own rolling backtest chose (`return_models`: a candidate, or
a stack of them with the best-ranking candidate's P(return)), fitted on its visits; per client over the
next `horizon_days` (90): P(any visit), E[visits], and lapse risk = 1 - P(any visit), a fixed horizon
because most aesthetic treatments recur within three months and the clinic has no per-client cadence
yet. The expected next visit date is the median wait of a client who is still active,
`(alpha + T) * (2 ** (1 / (r + x)) - 1)` days after today (from the Gamma posterior of their visit
rate), left null beyond two years.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from medspa.retention import metrics
from medspa.retention.churn import CHURN_KIND, ChurnModel
from medspa.retention.evaluation import json_safe
from medspa.retention.features import MISSED, build_features
from medspa.retention.noshow import (
    MODEL_KIND as NOSHOW_KIND,
)
from medspa.retention.noshow import (
    NoShowConfig,
    NoShowModel,
    frame_sha256,
    labelled_mask,
    noshow_config_for,
    train_noshow,
)
from medspa.retention.registry import FileRegistry, ModelNotFoundError, model_key
from medspa.retention.return_models import FittedReturnModel, select_return_model
from medspa.retention.returns import summarize
from medspa.scheduling import service as scheduling

logger = logging.getLogger(__name__)

RETURNS_KIND: Final = "returns"
RETURN_HORIZON_DAYS: Final = 90
DEFAULT_CACHED_MODELS: Final = 64
NEXT_VISIT_LIMIT_DAYS: Final = 730
NOSHOW_HOLDOUT_DAYS: Final = 7
MIN_TRAINING_NO_SHOWS: Final = 20


def registry_for(root: Path, organization_id: uuid.UUID, *, key: bytes | None = None) -> FileRegistry:
    """The organization's own registry under the model directory, under the directory's MAC key
    (`registry.model_key`) unless one is given."""
    return FileRegistry(root / str(organization_id), key=key if key is not None else model_key(root))


# --- no-show -------------------------------------------------------------------------------------------


def train_clinic_noshow(history: pd.DataFrame, *, train_end: date) -> NoShowModel:
    """The no-show model on a clinic's finished appointments before `train_end`, with holdout metrics.

    The metrics come from a model trained the same way up to `NOSHOW_HOLDOUT_DAYS` earlier and scored on
    the appointments of those last days (empty when the history is too short for that); the model
    returned is then trained on everything. Raises `ValueError` when the history cannot train a model."""
    starts = history["starts_at"].dt.normalize()
    labelled = labelled_mask(history)
    training = labelled & (starts < pd.Timestamp(train_end)).to_numpy()
    no_shows = int((history.loc[training, "status"] == MISSED).sum())
    if no_shows < MIN_TRAINING_NO_SHOWS:
        raise ValueError(
            f"{no_shows} no-shows before {train_end}; the no-show model needs {MIN_TRAINING_NO_SHOWS}"
        )
    config = noshow_config_for(int(training.sum()))
    features = build_features(history, config.scoring)
    with np.errstate(over="ignore"):  # extreme logits saturate to 0 or 1, which is the right value
        model = _train_with_holdout(history, features, config, labelled, starts, train_end)
    observed = float((history.loc[training, "status"] == MISSED).mean())
    model.metrics["training"] = {"rows": int(training.sum()), "no_show_rate": observed}
    return model


def _train_with_holdout(
    history: pd.DataFrame,
    features: pd.DataFrame,
    config: NoShowConfig,
    labelled: npt.NDArray[np.bool_],
    starts: pd.Series,
    train_end: date,
) -> NoShowModel:
    """The model on everything before `train_end`, its metrics those of the same training ending
    `NOSHOW_HOLDOUT_DAYS` earlier on those days; refused when its calibration is degenerate."""
    holdout_start = train_end - timedelta(days=NOSHOW_HOLDOUT_DAYS)
    held_out: dict[str, Any] = {}
    try:
        early = train_noshow(history, train_end=holdout_start, config=config, features=features)
    except ValueError as error:
        held_out = {"skipped": str(error)}
    else:
        rows = labelled & (starts >= pd.Timestamp(holdout_start)).to_numpy()
        rows &= (starts < pd.Timestamp(train_end)).to_numpy()
        if rows.any():
            predicted = early.predict_features(features[rows])
            outcome = (history.loc[rows, "status"] == MISSED).to_numpy(dtype=float)
            held_out = {"from": str(holdout_start), "to_exclusive": str(train_end)}
            held_out |= metrics.summary(predicted, outcome)
    model = train_noshow(history, train_end=train_end, config=config, features=features)
    # A booster without signal gives near-constant scores; the Platt map fitted on them saturates every
    # probability or reverses the ranking. Training then falls back to a level-only map (the same guard
    # `models evaluate noshow` applies), but a clinic is not served such a model.
    if model.calibration_method != "platt":
        raise ValueError(
            f"the no-show scores do not rank the last training days' outcomes ({model.calibration_method}); "
            f"more history is needed"
        )
    model.metrics = json_safe({"holdout": held_out})
    return model


def score_no_shows(
    model: NoShowModel, history: pd.DataFrame, appointment_ids: set[str] | None = None
) -> dict[uuid.UUID, float]:
    """P(no-show) of the appointments in `history` not yet happened (those in `appointment_ids`, if
    given), keyed by appointment id. `history` is the organization's whole live frame: the features of
    one appointment read the client's other appointments and the clinic's recent days."""
    targets = history["status"].isin(list(scheduling.NOT_HAPPENED))
    if appointment_ids is not None:
        targets &= history["appointment_id"].isin(appointment_ids)
    if not targets.any():
        return {}
    probabilities = model.predict(history, targets.to_numpy())
    ids = history.loc[targets, "appointment_id"]
    return {uuid.UUID(str(i)): float(p) for i, p in zip(ids, probabilities, strict=True)}


# --- return time ---------------------------------------------------------------------------------------


@dataclass
class ReturnModel:
    """The clinic's return model: the candidate its own rolling backtest chose (`return_models`), fitted
    on all its visits, with the horizon and provenance (training window, data hash, backtest metrics)."""

    model: FittedReturnModel
    horizon_days: int
    training_window: dict[str, str]
    data_sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "kind": RETURNS_KIND,
            "model": self.model.to_payload(),
            "horizon_days": self.horizon_days,
            "training_window": self.training_window,
            "data_sha256": self.data_sha256,
            "metrics": self.metrics,
        }

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> ReturnModel:
        if payload.get("kind") != RETURNS_KIND:
            raise ValueError(f"not a return model: kind={payload.get('kind')!r}")
        stored = payload["model"]
        window = dict(payload["training_window"])
        if stored == "bgnbd":  # an artifact from before the candidates: BG/NBD with its own P(return)
            end = date.fromisoformat(window["calibration_end"])
            params = {k: float(v) for k, v in payload["params"].items()}
            model = FittedReturnModel("bgnbd", "bgnbd", params, end)
        else:
            model = FittedReturnModel.from_payload(stored)
        return ReturnModel(
            model=model,
            horizon_days=int(payload["horizon_days"]),
            training_window=window,
            data_sha256=str(payload["data_sha256"]),
            metrics=dict(payload.get("metrics", {})),
        )

    def score(self, transactions: pd.DataFrame, *, today: date) -> pd.DataFrame:
        """Per client with a visit by `today` (index `client_id`): `visits`, `last_visit_on`,
        `probability_return`, `expected_visits`, `lapse_risk` over the horizon, `expected_next_visit_on`
        (from the base model's posterior visit rate of a client still active)."""
        summary = summarize(transactions, calibration_end=today)
        forecast = self.model.forecast(transactions, as_of=today, horizon_days=self.horizon_days)
        x, age = summary.frequency, summary.age
        base = self.model.base_model()
        with np.errstate(over="ignore"):
            wait = (base.alpha + age) * (np.power(2.0, 1.0 / (base.r + x)) - 1.0)
        frame = summary.frame
        out = pd.DataFrame(index=frame.index.astype(str))
        out["visits"] = (frame["frequency"].to_numpy() + 1).astype(int)
        out["last_visit_on"] = [
            (first + pd.Timedelta(days=float(r))).date()
            for first, r in zip(frame["first_visit"], frame["recency"], strict=True)
        ]
        out["probability_return"] = forecast.probability_return
        out["expected_visits"] = forecast.expected_visits
        out["lapse_risk"] = 1.0 - forecast.probability_return
        # NaN with one visit; the mean gap between visits otherwise (the next-best-action's cadence).
        out["mean_days_between_visits"] = (frame["recency"] / frame["frequency"]).where(
            frame["frequency"] > 0
        )
        out["expected_next_visit_on"] = [
            today + timedelta(days=math.ceil(w)) if math.isfinite(w) and w <= NEXT_VISIT_LIMIT_DAYS else None
            for w in wait
        ]
        return out


def train_returns(
    transactions: pd.DataFrame, *, calibration_end: date, horizon_days: int = RETURN_HORIZON_DAYS
) -> ReturnModel:
    """The return model a clinic is served: what a rolling backtest on its own visits up to
    `calibration_end` (inclusive) chooses (`return_models.select_return_model`, as `models evaluate
    returns` does: a candidate or the stack for the expected visits, P(return) from the candidate that
    ranks best), fitted on all of them; with too short a history for any backtest window, the simplest
    candidate that fits (said so in `metrics["chosen_by"]`). Raises `ValueError` (naming every reason)
    when no candidate can be fitted."""
    known = transactions[transactions["date"] <= pd.Timestamp(calibration_end)]
    if known.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    selection = select_return_model(known, calibration_end=calibration_end, horizon_days=horizon_days)
    fitted, backtest = selection.model, selection.backtest
    summary: dict[str, Any] = {
        name: result.get("mean_poisson_deviance", result.get("refused"))
        for name, result in backtest["candidates"].items()
    }
    summary["stack"] = backtest["stack"].get("mean_poisson_deviance", backtest["stack"].get("refused"))
    chosen_windows = backtest["candidates"].get(fitted.name, {}).get("windows", [])
    first = known["date"].min().date()
    visit_days = known.assign(day=known["date"].dt.normalize()).drop_duplicates(["client_id", "day"])
    return ReturnModel(
        model=fitted,
        horizon_days=horizon_days,
        training_window={
            "first_visit": str(first),
            "calibration_end": str(calibration_end),
            "clients": str(known["client_id"].nunique()),
            "visits": str(len(visit_days)),
        },
        data_sha256=frame_sha256(known),
        metrics=json_safe(
            {
                "chosen": fitted.name,
                "components": {c.name: w for w, c in fitted.components},
                "probability_from": fitted.probability_from,
                "chosen_by": selection.chosen_by,
                "refused": [f"{f['model']}: {f['reason']}" for f in selection.fallbacks],
                "backtest": {"mean_poisson_deviance": summary, "chosen_windows": chosen_windows},
            }
        ),
    )


# --- the active versions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveModel:
    version: str
    model: Any  # NoShowModel, ReturnModel or ChurnModel


class ModelCache:
    """Active models per organization, loaded through the registry (MAC-checked) and kept while their
    artifact file is unchanged: an edited file is loaded again, and refused if its MAC does not match
    (`ArtifactIntegrityError`).

    Shared by the worker's threads and the web process: a lock guards the table, a model is loaded
    outside it (two threads may load the same version at once; both get an equal model and one is
    kept), and at most `max_models` are kept, the least recently used dropped first."""

    def __init__(self, root: Path, *, max_models: int = DEFAULT_CACHED_MODELS) -> None:
        if max_models < 1:
            raise ValueError("the model cache must hold at least one model")
        self.root = root
        self.max_models = max_models
        self._key = model_key(root)
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[uuid.UUID, str, str], tuple[tuple[int, int], ActiveModel]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded)

    def registry(self, organization_id: uuid.UUID) -> FileRegistry:
        """The organization's registry, under this cache's key."""
        return registry_for(self.root, organization_id, key=self._key)

    def active(self, organization_id: uuid.UUID, kind: str) -> ActiveModel | None:
        """The organization's active model of `kind`, or None when it has none."""
        registry = self.registry(organization_id)
        try:
            version = registry.active_version(kind)
        except ModelNotFoundError:
            return None
        path = registry.root / kind / f"{version}.json"
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ModelNotFoundError(f"active {kind} model {version} is missing") from None
        key, stamp = (organization_id, kind, version), (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._loaded.get(key)
            if cached is not None and cached[0] == stamp:
                self._loaded.move_to_end(key)
                return cached[1]
        payload = registry.load(kind, version)
        model: NoShowModel | ReturnModel | ChurnModel
        if kind == NOSHOW_KIND:
            model = NoShowModel.from_payload(payload)
        elif kind == CHURN_KIND:
            model = ChurnModel.from_payload(payload)
        else:
            model = ReturnModel.from_payload(payload)
        loaded = ActiveModel(version, model)
        with self._lock:
            self._loaded[key] = (stamp, loaded)
            self._loaded.move_to_end(key)
            while len(self._loaded) > self.max_models:
                self._loaded.popitem(last=False)
        return loaded
