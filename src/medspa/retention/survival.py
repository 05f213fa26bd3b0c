"""Time to churn of memberships and packages: Cox proportional hazards and gradient-boosted survival,
chosen by cross-validated concordance, on the `client-survival` format (`formats.read_client_survival`).

Each row is one client's membership: `tenure` (in the file's unit, days or months) until the churn
(`event` 1) or until observation ended while still a member (`event` 0, censored), and `x_*` covariates
known at the start. A covariate that encodes the tenure itself (a lifetime total, visits so far: it grows
with the time the client has stayed) would let a model read the answer from its input; every numeric
covariate whose rank correlation with the tenure reaches `MAX_TENURE_CORRELATION` is refused, with the
figure, before anything is fitted.

Candidates (scikit-survival): `cox`, Cox proportional hazards with a small ridge penalty on standardized
covariates (categorical ones one-hot), and `boosted`, gradient-boosted trees on the Cox partial
likelihood. `cross_validate` splits the clients into k folds, fits each candidate on k - 1 and predicts
the held-out fold, so every client gets an out-of-fold prediction; the candidate with the higher mean
concordance (Harrell's C) over the folds is chosen. `risk` is higher for sooner churn; `survival_t` is
P(still a member after t units of tenure). The calibration of those probabilities is reported against
Kaplan-Meier estimates within groups of clients with similar predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from medspa.retention.schemas import SURVIVAL_MIN_CLIENTS, SURVIVAL_MIN_EVENTS

FloatArray = npt.NDArray[np.float64]

CANDIDATES: Final = ("cox", "boosted")
SURVIVAL_TIMES: Final = (3, 6, 12)
MAX_TENURE_CORRELATION: Final = 0.8
CALIBRATION_GROUPS: Final = 5
MIN_CLIENTS: Final = SURVIVAL_MIN_CLIENTS
MIN_EVENTS: Final = SURVIVAL_MIN_EVENTS


@dataclass(frozen=True)
class Design:
    """How covariates become a numeric matrix, learnt on training rows: numeric columns with their
    training median (for missing values) and scale, categorical columns with their training levels."""

    numeric: dict[str, tuple[float, float, float]]  # column -> (median, mean, standard deviation)
    categorical: dict[str, tuple[str, ...]]

    @staticmethod
    def learn(frame: pd.DataFrame, columns: list[str]) -> Design:
        numeric: dict[str, tuple[float, float, float]] = {}
        categorical: dict[str, tuple[str, ...]] = {}
        for column in columns:
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values):
                median = float(values.median()) if values.notna().any() else 0.0
                filled = values.fillna(median).astype(float)
                numeric[column] = (median, float(filled.mean()), float(filled.std(ddof=0)) or 1.0)
            else:
                levels = sorted(values.dropna().astype(str).unique().tolist())
                categorical[column] = tuple(levels[1:])  # the first level is the reference
        return Design(numeric=numeric, categorical=categorical)

    def matrix(self, frame: pd.DataFrame) -> FloatArray:
        parts: list[npt.NDArray[Any]] = []
        for column, (median, mean, scale) in self.numeric.items():
            values = frame[column].fillna(median).astype(float).to_numpy()
            parts.append((values - mean) / scale)
            parts.append(frame[column].isna().to_numpy(dtype=float))
        for column, levels in self.categorical.items():
            texts = frame[column].astype(object).where(frame[column].notna(), None).astype(str)
            parts.extend((texts == level).to_numpy(dtype=float) for level in levels)
        if not parts:
            return np.zeros((len(frame), 1), dtype=np.float64)
        return np.asarray(np.column_stack(parts), dtype=np.float64)


def refused_covariates(frame: pd.DataFrame) -> dict[str, str]:
    """Covariates that encode the tenure: numeric `x_*` columns whose Spearman rank correlation with the
    tenure is at least `MAX_TENURE_CORRELATION` in absolute value, with the reason."""
    refused: dict[str, str] = {}
    for column in (c for c in frame.columns if c.startswith("x_")):
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or values.nunique(dropna=True) < 2:
            continue
        present = values.notna()
        rho = float(values[present].rank().corr(frame.loc[present, "tenure"].rank()))
        if np.isfinite(rho) and abs(rho) >= MAX_TENURE_CORRELATION:
            refused[column] = (
                f"encodes the tenure (rank correlation {rho:+.2f} with it; a covariate must be known at the "
                f"start, not grow with the time a client stays)"
            )
    return refused


def _targets(frame: pd.DataFrame) -> Any:
    from sksurv.util import Surv

    # A zero tenure (churned at once) is kept, a hair above zero: the partial likelihood needs t > 0.
    return Surv.from_arrays(frame["event"].to_numpy(dtype=bool), np.maximum(frame["tenure"].to_numpy(), 1e-6))


@dataclass
class SurvivalModel:
    """A fitted candidate with its design; predicts risk and survival at given tenures."""

    name: str
    design: Design
    estimator: Any
    max_tenure: float

    def risk(self, frame: pd.DataFrame) -> FloatArray:
        """Higher for sooner churn (the model's log relative hazard)."""
        return np.asarray(self.estimator.predict(self.design.matrix(frame)), dtype=np.float64)

    def survival(self, frame: pd.DataFrame, times: tuple[float, ...]) -> FloatArray:
        """P(still a member after each of `times`), one column per time. Beyond the longest tenure seen
        in training the curve is held at its last value (nothing is known past it)."""
        functions = self.estimator.predict_survival_function(self.design.matrix(frame))
        out = np.ones((len(functions), len(times)), dtype=np.float64)
        for row, function in enumerate(functions):
            low, high = function.domain
            for column, time in enumerate(times):
                if time >= low:
                    out[row, column] = float(function(min(time, high)))
        return out


def fit_survival(name: str, frame: pd.DataFrame, columns: list[str], *, seed: int = 7) -> SurvivalModel:
    """Fit candidate `name` on `frame` (tenure, event and the covariate `columns`)."""
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    design = Design.learn(frame, columns)
    estimator: Any
    if name == "cox":
        estimator = CoxPHSurvivalAnalysis(alpha=0.1, ties="efron")
    elif name == "boosted":
        estimator = GradientBoostingSurvivalAnalysis(
            loss="coxph",
            n_estimators=200,
            learning_rate=0.05,
            max_depth=3,
            min_samples_leaf=10,
            subsample=0.8,
            random_state=seed,
        )
    else:
        raise ValueError(f"unknown survival model {name!r}; choose from {', '.join(CANDIDATES)}")
    estimator.fit(design.matrix(frame), _targets(frame))
    return SurvivalModel(name, design, estimator, float(frame["tenure"].max()))


def concordance(risk: FloatArray, frame: pd.DataFrame) -> float:
    """Harrell's C of `risk` (higher = sooner churn) against the observed tenures and events."""
    from sksurv.metrics import concordance_index_censored

    result = concordance_index_censored(
        frame["event"].to_numpy(dtype=bool), frame["tenure"].to_numpy(dtype=float), risk
    )
    return float(result[0])


@dataclass
class CrossValidation:
    """Out-of-fold predictions of every candidate and their concordance per fold."""

    folds: int
    covariates: list[str]
    refused: dict[str, str]
    concordance: dict[str, list[float]] = field(default_factory=dict)
    risk: dict[str, FloatArray] = field(default_factory=dict)
    survival: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def chosen(self) -> str:
        """The candidate with the highest mean out-of-fold concordance."""
        return max(self.concordance, key=lambda name: float(np.mean(self.concordance[name])))


def cross_validate(
    frame: pd.DataFrame, *, folds: int = 5, seed: int = 7, times: tuple[float, ...] = SURVIVAL_TIMES
) -> CrossValidation:
    """k-fold cross-validation by client (one row per client): every candidate predicts every client
    from a model that never saw them. Raises `ValueError` with fewer than `MIN_CLIENTS` clients or
    `MIN_EVENTS` churns, fewer clients than folds, or no covariate left that differs between clients
    (after those encoding the tenure are refused)."""
    from sklearn.model_selection import StratifiedKFold

    clients, events = len(frame), int(frame["event"].sum())
    if clients < MIN_CLIENTS or events < MIN_EVENTS or clients - events < 1:
        raise ValueError(
            f"{clients} clients and {events} churns; time to churn needs {MIN_CLIENTS} clients, "
            f"{MIN_EVENTS} churns and at least one client still a member"
        )
    if folds < 2 or min(events, clients - events) < folds:
        raise ValueError(f"{folds} folds need at least {folds} churned and {folds} continuing clients")
    refused = refused_covariates(frame)
    covariates = [c for c in frame.columns if c.startswith("x_") and c not in refused]
    if not any(frame[c].nunique(dropna=False) > 1 for c in covariates):
        said = "; ".join(f"{column} {reason}" for column, reason in refused.items())
        raise ValueError(
            "no covariate tells the clients apart (every client would get the same curve and the risk "
            "would rank no one); add x_ columns known at the start" + (f"; refused: {said}" if said else "")
        )
    result = CrossValidation(folds=folds, covariates=covariates, refused=refused)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(clients), frame["event"].to_numpy()))
    for name in CANDIDATES:
        risk = np.zeros(clients, dtype=np.float64)
        survival = np.zeros((clients, len(times)), dtype=np.float64)
        scores: list[float] = []
        for train, test in splits:
            model = fit_survival(name, frame.iloc[train], covariates, seed=seed)
            held_out = frame.iloc[test]
            risk[test] = model.risk(held_out)
            survival[test] = model.survival(held_out, times)
            scores.append(concordance(risk[test], held_out))
        result.concordance[name] = scores
        result.risk[name] = risk
        result.survival[name] = survival
    return result


def calibration_table(
    survival: FloatArray, frame: pd.DataFrame, time: float, *, groups: int = CALIBRATION_GROUPS
) -> dict[str, Any]:
    """Predicted against observed P(still a member after `time`): clients in `groups` equal-count groups
    by their predicted probability; in each, the mean prediction and the Kaplan-Meier estimate at `time`
    (which accounts for censoring). `error` is the client-weighted mean absolute difference."""
    from sksurv.nonparametric import kaplan_meier_estimator

    order = np.argsort(survival, kind="mergesort")
    rows: list[dict[str, Any]] = []
    for chunk in np.array_split(order, groups):
        if len(chunk) == 0:
            continue
        part = frame.iloc[chunk]
        times, estimate = kaplan_meier_estimator(
            part["event"].to_numpy(dtype=bool), part["tenure"].to_numpy(dtype=float)
        )
        seen = times <= time
        observed = float(estimate[seen][-1]) if seen.any() else 1.0
        reaches = bool((part["tenure"] >= time).any()) or bool(
            (part.loc[part["tenure"] < time, "event"] == 1).all()
        )
        rows.append(
            {
                "clients": len(chunk),
                "predicted": float(survival[chunk].mean()),
                "observed_kaplan_meier": observed if reaches else None,
            }
        )
    scored = [r for r in rows if r["observed_kaplan_meier"] is not None]
    total = sum(r["clients"] for r in scored)
    error = (
        sum(r["clients"] * abs(r["predicted"] - r["observed_kaplan_meier"]) for r in scored) / total
        if total
        else float("nan")
    )
    return {"time": time, "groups": rows, "error": error}
