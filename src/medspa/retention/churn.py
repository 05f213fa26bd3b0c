"""Membership lapse risk: the time-to-churn model (`retention.survival`) trained on a clinic's own
memberships and served to its active members.

The book: one row per membership started by the clinic's today (`membership_frame`), its `tenure` in
months (of 365.25 / 12 days) until `ended_on` (`event` 1) or, while it is active or its end is still
ahead, until today (`event` 0, censored). Covariates are what was known when it started: the plan
(`x_plan`) and the monthly price paid (`x_monthly_price_cents`, which also tells a founding or
introductory rate apart). Nothing that grows with the tenure (visits so far, spend so far) is offered,
and `survival.cross_validate` would refuse it anyway. A client's age is not used: it would open every
member's date of birth (PHI) for the model.

Training (`train_churn`) cross-validates both candidates as `medspa models evaluate churn` does, fits the
one with the higher mean concordance on the whole book, and keeps it as plain numbers: the design, the
risk function (Cox coefficients, or the boosted model's trees) and the Breslow baseline cumulative
hazard H0. So the artifact is JSON under the registry's MAC, like every other model, and serving needs
no pickled estimator.

Served (`lapse_risks`): for an active member with current tenure t, the membership lapse risk is the
chance of ending within the next `HORIZON_MONTHS` given that it has lasted t,

    1 - S(t + 3 | x) / S(t | x) = 1 - exp(-(H0(t + 3) - H0(t)) * exp(risk(x))),

conditional on the tenure so far, not the unconditional 1 - S(t + 3). A member gets no figure, with the
reason, where the book cannot support one: t + 3 past the longest tenure the model saw, or fewer than
`MIN_EVENT_TIMES` tenures within (t, t + 3] at which a membership of the book ended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd

from medspa.memberships.schemas import MembershipRead
from medspa.retention.evaluation import json_safe
from medspa.retention.survival import (
    MIN_CLIENTS,
    MIN_EVENTS,
    Design,
    FloatArray,
    cross_validate,
    fit_survival,
)

CHURN_KIND: Final = "churn"
HORIZON_MONTHS: Final = 3
DAYS_PER_MONTH: Final = 365.25 / 12
FOLDS: Final = 5
COVARIATES: Final = ("x_plan", "x_monthly_price_cents")
MIN_EVENT_TIMES: Final = 3  # tenures with an ending within the horizon, for a served figure


def membership_frame(memberships: Sequence[MembershipRead], *, today: date) -> pd.DataFrame:
    """The clinic's memberships started by `today` as a `client-survival` frame (tenure in months), with
    `membership_id` and `is_active` beside: active = no end recorded, or an end still ahead."""
    rows = []
    for m in memberships:
        if m.started_on > today:
            continue
        ended = m.ended_on is not None and m.ended_on <= today
        until = m.ended_on if ended and m.ended_on is not None else today
        rows.append(
            {
                "client_id": str(m.client_id),
                "membership_id": str(m.id),
                "tenure": (until - m.started_on).days / DAYS_PER_MONTH,
                "event": int(ended),
                "is_active": m.ended_on is None,
                "x_plan": m.plan,
                "x_monthly_price_cents": float(m.monthly_price_cents),
            }
        )
    columns = ["client_id", "membership_id", "tenure", "event", "is_active", *COVARIATES]
    return pd.DataFrame(rows, columns=columns)


def _step(x: FloatArray, y: FloatArray, at: FloatArray) -> FloatArray:
    """A right-continuous step function (value y[i] from x[i] on, 0 before x[0]) at `at`."""
    index = np.searchsorted(x, at, side="right") - 1
    return np.where(index >= 0, y[np.clip(index, 0, None)], 0.0)


@dataclass
class ChurnModel:
    """A fitted candidate kept as numbers: `design` (how covariates become a matrix), `coefficients`
    (Cox) or `trees` (boosted: each `[left, right, feature, threshold, value]` on the design matrix, their
    sum scaled by `learning_rate`, from zero), and the Breslow baseline cumulative hazard
    (`baseline_times`, `baseline_hazard`). `max_tenure` is the longest tenure in training (months)."""

    name: str
    design: Design
    baseline_times: list[float]
    baseline_hazard: list[float]
    max_tenure: float
    coefficients: list[float] | None = None
    trees: list[list[list[float]]] | None = None
    learning_rate: float = 0.0
    memberships: int = 0
    churned: int = 0
    training_window: dict[str, str] = field(default_factory=dict)
    data_sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def risk(self, frame: pd.DataFrame) -> FloatArray:
        """The log relative hazard (higher = sooner churn), as the fitted estimator's `predict`."""
        matrix = self.design.matrix(frame)
        if self.coefficients is not None:
            return np.asarray(matrix @ np.asarray(self.coefficients), dtype=np.float64)
        # The trees compare in single precision: a value on a threshold goes the way it went in training.
        values = matrix.astype(np.float32)
        total = np.zeros(len(matrix), dtype=np.float64)
        for tree in self.trees or []:
            left, right = np.asarray(tree[0], dtype=np.int64), np.asarray(tree[1], dtype=np.int64)
            feature, threshold = np.asarray(tree[2], dtype=np.int64), np.asarray(tree[3])
            node = np.zeros(len(matrix), dtype=np.int64)
            inner = left[node] >= 0
            while inner.any():
                rows = np.nonzero(inner)[0]
                here = node[rows]
                goes_left = values[rows, feature[here]] <= threshold[here]
                node[rows] = np.where(goes_left, left[here], right[here])
                inner = left[node] >= 0
            total += self.learning_rate * np.asarray(tree[4])[node]
        return total

    def cumulative_hazard(self, frame: pd.DataFrame, tenures: FloatArray) -> FloatArray:
        """H(t | x) = H0(t) exp(risk(x)), one tenure per row."""
        base = _step(np.asarray(self.baseline_times), np.asarray(self.baseline_hazard), tenures)
        return np.asarray(base * np.exp(self.risk(frame)), dtype=np.float64)

    def lapse_risks(
        self, frame: pd.DataFrame, *, horizon: float = HORIZON_MONTHS
    ) -> list[tuple[float | None, str | None]]:
        """Per row: (P(ending within `horizon` months | lasted `frame.tenure` months so far), None), or
        (None, why) where the model cannot say: tenure + horizon past `max_tenure` (the baseline is
        unknown there), or fewer than `MIN_EVENT_TIMES` tenures at which a training membership ended
        within (tenure, tenure + horizon] (the Breslow baseline is flat between them, and a flat stretch
        would read as "no risk at all" where it only means "no one of this small book ended then")."""
        tenures = frame["tenure"].to_numpy(dtype=float)
        now = self.cumulative_hazard(frame, tenures)
        later = self.cumulative_hazard(frame, tenures + horizon)
        risks = 1.0 - np.exp(-(later - now))
        times, hazard = np.asarray(self.baseline_times), np.asarray(self.baseline_hazard)
        event_times = times[np.diff(hazard, prepend=0.0) > 0]
        out: list[tuple[float | None, str | None]] = []
        for tenure, risk in zip(tenures, risks, strict=True):
            events = int(((event_times > tenure) & (event_times <= tenure + horizon)).sum())
            if tenure + horizon > self.max_tenure:
                longest = f"{self.max_tenure:.0f} months"
                out.append((None, f"a member longer than the churn model has seen (its longest: {longest})"))
            elif events < MIN_EVENT_TIMES:
                span = f"{tenure:.0f} and {tenure + horizon:.0f} months"
                out.append((None, f"too few of this clinic's memberships ended between {span} to say"))
            else:
                out.append((float(risk), None))
        return out

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = json_safe(
            {
                "kind": CHURN_KIND,
                "model": self.name,
                "design": {
                    "numeric": {k: list(v) for k, v in self.design.numeric.items()},
                    "categorical": {k: list(v) for k, v in self.design.categorical.items()},
                },
                "coefficients": self.coefficients,
                "trees": self.trees,
                "learning_rate": self.learning_rate,
                "baseline": {"times": self.baseline_times, "cumulative_hazard": self.baseline_hazard},
                "max_tenure_months": self.max_tenure,
                "horizon_months": HORIZON_MONTHS,
                "memberships": self.memberships,
                "churned": self.churned,
                "training_window": self.training_window,
                "data_sha256": self.data_sha256,
                "metrics": self.metrics,
            }
        )
        return payload

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> ChurnModel:
        if payload.get("kind") != CHURN_KIND:
            raise ValueError(f"not a churn model: kind={payload.get('kind')!r}")
        design = payload["design"]
        return ChurnModel(
            name=str(payload["model"]),
            design=Design(
                numeric={k: (float(a), float(b), float(c)) for k, (a, b, c) in design["numeric"].items()},
                categorical={k: tuple(str(level) for level in v) for k, v in design["categorical"].items()},
            ),
            baseline_times=[float(t) for t in payload["baseline"]["times"]],
            baseline_hazard=[float(h) for h in payload["baseline"]["cumulative_hazard"]],
            max_tenure=float(payload["max_tenure_months"]),
            coefficients=payload.get("coefficients"),
            trees=payload.get("trees"),
            learning_rate=float(payload.get("learning_rate", 0.0)),
            memberships=int(payload["memberships"]),
            churned=int(payload["churned"]),
            training_window=dict(payload["training_window"]),
            data_sha256=str(payload["data_sha256"]),
            metrics=dict(payload.get("metrics", {})),
        )


def _as_numbers(name: str, fitted: Any) -> dict[str, Any]:
    """The fitted scikit-survival estimator's risk function and Breslow baseline as plain numbers."""
    estimator = fitted.estimator
    baseline = estimator._baseline_model.cum_baseline_hazard_  # the Breslow estimate it predicts with
    out: dict[str, Any] = {
        "baseline_times": [float(t) for t in baseline.x],
        "baseline_hazard": [float(h) for h in baseline.y],
    }
    if name == "cox":
        out["coefficients"] = [float(c) for c in estimator.coef_]
    else:
        trees = []
        for (tree,) in estimator.estimators_:
            t = tree.tree_
            trees.append(
                [
                    [int(v) for v in t.children_left],
                    [int(v) for v in t.children_right],
                    [int(v) for v in t.feature],
                    [float(v) for v in t.threshold],
                    [float(v) for v in t.value[:, 0, 0]],
                ]
            )
        if estimator.init_ != "zero" or hasattr(estimator, "_scale"):
            raise ValueError("only a boosted model started from zero, without dropout, is kept as numbers")
        out["trees"] = trees
        out["learning_rate"] = float(estimator.learning_rate)
    return out


def train_churn(frame: pd.DataFrame, *, today: date, folds: int = FOLDS, seed: int = 7) -> ChurnModel:
    """The clinic's churn model: both candidates cross-validated on its memberships (`survival.
    cross_validate`), the one with the higher mean concordance fitted on all of them. Raises `ValueError`
    with the reason, and nothing is trained, for fewer than `MIN_CLIENTS` memberships or `MIN_EVENTS`
    ended ones, or when no covariate tells the memberships apart (every member would get one risk)."""
    book = frame[["client_id", "tenure", "event", *COVARIATES]].reset_index(drop=True)
    memberships, churned = len(book), int(book["event"].sum())
    if memberships < MIN_CLIENTS or churned < MIN_EVENTS:
        raise ValueError(
            f"{memberships} memberships and {churned} ended; the churn model needs {MIN_CLIENTS} "
            f"memberships and {MIN_EVENTS} ended"
        )
    validation = cross_validate(book, folds=folds, seed=seed, times=(float(HORIZON_MONTHS),))
    chosen = validation.chosen
    fitted = fit_survival(chosen, book, validation.covariates, seed=seed)
    numbers = _as_numbers(chosen, fitted)
    digest = hashlib.sha256(book.to_csv(index=False).encode("utf-8")).hexdigest()
    return ChurnModel(
        name=chosen,
        design=fitted.design,
        max_tenure=float(book["tenure"].max()),
        memberships=memberships,
        churned=churned,
        training_window={"through": today.isoformat(), "tenure_unit": "months"},
        data_sha256=digest,
        metrics={
            "chosen": chosen,
            "chosen_by": f"mean concordance over {folds} folds",
            "concordance": dict(validation.concordance),
            "mean_concordance": {
                name: float(np.mean(scores)) for name, scores in validation.concordance.items()
            },
            "covariates": validation.covariates,
            "refused": validation.refused,
        },
        **numbers,
    )
