"""Return-time candidates, fitted on a calibration period, and the rolling backtest that chooses one.

Every candidate forecasts, for each client with a visit by the calibration end, E[visits] in the next
`horizon_days` and P(at least one visit) there. Each is fitted on visits up to the calibration end only:

- `bgnbd`: BG/NBD (`returns.fit_bgnbd`), its own conditional expectation and P(return).
- `pareto_nbd`: Pareto/NBD (`returns.fit_pareto_nbd`), its conditional expectation.
- `pareto_nbd_scaled`: Pareto/NBD times a *half-period scale*: a Pareto/NBD fitted to the first half of
  the period forecasts the second half, and actual / forecast visits is the scale. It learns, inside the
  calibration period, how far a stationary model misses a horizon as long as what it was fitted on.
- `boosted`: a Poisson LightGBM that corrects Pareto/NBD per client. It is trained at three cuts inside
  the period (`BOOSTED_CUT_FRACTIONS` of the way through it): at each cut a Pareto/NBD fitted to the cut
  forecasts the rest of the period, its log is the booster's offset (`init_score`), the client's
  covariates at the cut are its inputs and the visits after the cut its target. At the calibration end
  the booster's correction multiplies the Pareto/NBD forecast over the requested horizon.

For every candidate, P(return) is sigmoid(a + b log E[visits]), a logistic curve learnt inside the period
(the base model fitted `CURVE_FRACTION` of the period before its end, against who visited in those
days), because expected visits rank "any visit" better than the models' own probabilities
(docs/models.md). Without a usable inner period, or when the curve gives every client one probability
(learnt over a third of a short history and applied over a longer horizon, it can saturate at 1), the
base model's own P(return) is used and the model's notes say so; a forecast whose probabilities still do
not separate anyone is refused (`ValueError`).

`rolling_backtest` fits every candidate at several origins inside the calibration period and scores each
on a window after its origin shaped like the real task (`backtest_windows`), then scores their stack
(convex weights of their expected visits, each window scored with weights fitted on the others).
`choose_return_model` takes, for the expected visits, the lowest mean Poisson deviance over the windows
(a single candidate, or the stack when its held-out figure is lower), and for P(return) the candidate
whose probability has the highest mean ROC AUC there; a choice that differs from one candidate is served
as `STACKED` (`fit_choice`). `select_return_model` is the one path for evaluation and serving. A
candidate that cannot be fitted on the history (too short, too few clients) is left out and the reason is
reported; BG/NBD, the simplest, is the last resort. Nothing after the calibration end is read.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from medspa.retention import metrics
from medspa.retention.returns import (
    BgNbd,
    ClientSummary,
    ParetoNbd,
    ReturnsForecast,
    fit_bgnbd,
    fit_pareto_nbd,
    holdout_visits,
    summarize,
    visits,
)

FloatArray = npt.NDArray[np.float64]

CANDIDATES: Final = ("bgnbd", "pareto_nbd", "pareto_nbd_scaled", "boosted")
STACKED: Final = "stacked"
_MIN_STACK_WEIGHT: Final = 0.01
BACKTEST_ORIGINS: Final = (0.8, 0.9, 1.0)
BOOSTED_CUT_FRACTIONS: Final = (0.42, 0.5, 0.58)
CURVE_FRACTION: Final = 1 / 3
MIN_PERIOD_DAYS: Final = 21
MIN_INNER_DAYS: Final = 7
MIN_REPEAT_CLIENTS: Final = 10
MIN_BOOSTED_CLIENTS: Final = 200
MIN_BOOSTED_RETURNS: Final = 20
_MIN_PROBABILITY_SPREAD: Final = 0.01
_BOOSTED_PARAMS: Final[dict[str, Any]] = {
    "objective": "poisson",
    "n_estimators": 300,
    "learning_rate": 0.02,
    "num_leaves": 15,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.7,
    "n_jobs": 1,
    "random_state": 7,
    "verbose": -1,
}


class ShortHistoryError(ValueError):
    """The history cannot fit this candidate (too short, too few clients or returns)."""


def poisson_deviance(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Mean Poisson deviance 2 (y log(y / mu) - (y - mu)) of mean forecasts mu for counts y (0 is
    perfect); mu is floored at 1e-9, as the acceptance check does."""
    mu = np.maximum(np.asarray(expected, dtype=float), 1e-9)
    y = np.asarray(actual, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(np.mean(2.0 * (log_term - (y - mu))))


def return_metrics(
    expected: npt.ArrayLike, probability: npt.ArrayLike, actual: npt.ArrayLike
) -> dict[str, float]:
    """Aggregate relative error of the visit total, mean Poisson deviance, per-client MAE, ROC AUC of
    "any visit" (by the probability and by the expected visits), and the mean probability beside the
    share that returned."""
    e = np.asarray(expected, dtype=float)
    p = np.asarray(probability, dtype=float)
    y = np.asarray(actual, dtype=float)
    total = float(y.sum())
    returned = (y > 0).astype(float)
    return {
        "clients": float(len(y)),
        "mean_probability_return": float(p.mean()),
        "share_returned": float(returned.mean()),
        "predicted_visits": float(e.sum()),
        "actual_visits": total,
        "aggregate_error": (float(e.sum()) - total) / total if total else float("nan"),
        "poisson_deviance": poisson_deviance(e, y),
        "mae": float(np.mean(np.abs(e - y))),
        "roc_auc": metrics.roc_auc(p, returned),
        "roc_auc_expected_visits": metrics.roc_auc(e, returned),
        "log_loss": _log_loss(p, returned),
    }


def _log_loss(probability: FloatArray, returned: FloatArray) -> float:
    """Mean negative log-likelihood of "any visit" under P(return), clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(probability, 1e-6, 1 - 1e-6)
    return float(-np.mean(returned * np.log(q) + (1 - returned) * np.log(1 - q)))


class BaseFits:
    """Base-model fits of one transaction frame, memoized by cut day (a rolling backtest refits the same
    cuts many times)."""

    def __init__(self, transactions: pd.DataFrame) -> None:
        self.transactions = transactions
        self.first_day: date = transactions["date"].min().date()
        self._summaries: dict[date, ClientSummary] = {}
        self._pareto: dict[date, ParetoNbd] = {}
        self._bgnbd: dict[date, BgNbd] = {}

    def summary(self, cut: date) -> ClientSummary:
        if cut not in self._summaries:
            self._summaries[cut] = summarize(self.transactions, calibration_end=cut)
        return self._summaries[cut]

    def pareto_nbd(self, cut: date) -> ParetoNbd:
        if cut not in self._pareto:
            self._pareto[cut] = fit_pareto_nbd(_repeating(self.summary(cut), cut))
        return self._pareto[cut]

    def base(self, name: str, cut: date) -> BgNbd | ParetoNbd:
        return self.pareto_nbd(cut) if name == "pareto_nbd" else self.bgnbd(cut)

    def bgnbd(self, cut: date) -> BgNbd:
        if cut not in self._bgnbd:
            self._bgnbd[cut] = fit_bgnbd(_repeating(self.summary(cut), cut))
        return self._bgnbd[cut]

    def returned(self, cut: date, end: date) -> npt.NDArray[np.float64]:
        """Visits in (cut, end] of every client known at `cut`, in `summary(cut)` order."""
        actual = holdout_visits(self.transactions, calibration_end=cut, holdout_end=end)
        index = self.summary(cut).frame.index
        return np.asarray(actual.reindex(index, fill_value=0.0).to_numpy(), dtype=np.float64)


def _repeating(summary: ClientSummary, cut: date) -> ClientSummary:
    """`summary`, refused when too few clients came back to identify a dropout process."""
    repeating = int((summary.frequency > 0).sum())
    if repeating < MIN_REPEAT_CLIENTS:
        raise ShortHistoryError(
            f"{repeating} clients came back by {cut}; a return model needs {MIN_REPEAT_CLIENTS}"
        )
    return summary


def _period_days(fits: BaseFits, end: date) -> int:
    return (end - fits.first_day).days


def _cut_at(fits: BaseFits, end: date, fraction: float) -> date:
    """The day `fraction` of the way from the first visit to `end`."""
    return fits.first_day + timedelta(days=round(_period_days(fits, end) * fraction))


@dataclass
class FittedReturnModel:
    """A fitted candidate: what the registry stores and what serving scores with.

    `base` is "bgnbd" or "pareto_nbd" with its `params`; `scale` multiplies the base forecast
    (`pareto_nbd_scaled`); `booster` is the LightGBM correction's model text (`boosted`); `curve` is
    (slope, intercept) of P(return) on log E[visits], or None for the base model's own P(return)."""

    name: str
    base: str
    params: dict[str, float]
    calibration_end: date
    scale: float = 1.0
    booster: str | None = None
    curve: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    # A combination (`STACKED`): E[visits] is the weighted sum of the components' (weights sum to 1),
    # P(return) is that of the component named `probability_from`. Empty for a single candidate.
    components: list[tuple[float, FittedReturnModel]] = field(default_factory=list)
    probability_from: str | None = None
    _booster: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def base_model(self) -> BgNbd | ParetoNbd:
        return BgNbd(**self.params) if self.base == "bgnbd" else ParetoNbd(**self.params)

    def forecast(self, transactions: pd.DataFrame, *, as_of: date, horizon_days: float) -> ReturnsForecast:
        """E[visits] and P(any visit) in (as_of, as_of + horizon_days] for every client with a visit by
        `as_of`, from their visits up to then."""
        if self.components:
            return self._combined_forecast(transactions, as_of=as_of, horizon_days=horizon_days)
        summary = summarize(transactions, calibration_end=as_of)
        model = self.base_model()
        x, t_x, age = summary.frequency, summary.recency, summary.age
        expected = model.expected_visits(horizon_days, x, t_x, age) * self.scale
        if self.booster is not None:
            covariates = client_covariates(transactions, summary, as_of, model, horizon_days)
            correction = self._correction(covariates)
            expected = expected * correction
        if self.curve is not None:
            slope, intercept = self.curve
            probability = metrics.sigmoid(slope * np.log(np.maximum(expected, 1e-12)) + intercept)
        else:
            probability = model.probability_return(horizon_days, x, t_x, age)
        probability = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
        return ReturnsForecast(
            client_ids=[str(c) for c in summary.frame.index],
            expected_visits=np.asarray(expected, dtype=np.float64),
            probability_return=probability,
        )

    def _combined_forecast(
        self, transactions: pd.DataFrame, *, as_of: date, horizon_days: float
    ) -> ReturnsForecast:
        forecasts = {
            component.name: component.forecast(transactions, as_of=as_of, horizon_days=horizon_days)
            for _, component in self.components
        }
        expected = sum(
            (weight * forecasts[component.name].expected_visits for weight, component in self.components),
            start=np.zeros(len(next(iter(forecasts.values())).client_ids)),
        )
        chosen = forecasts[self.probability_from or self.components[0][1].name]
        return ReturnsForecast(
            client_ids=chosen.client_ids,
            expected_visits=np.asarray(expected, dtype=np.float64),
            probability_return=chosen.probability_return,
        )

    def check_separates(self, transactions: pd.DataFrame, *, as_of: date, horizon_days: float) -> None:
        """Raise `ValueError` when clients with different histories up to `as_of` all get one P(return)
        (a degenerate fit: it would tell no one apart)."""
        summary = summarize(transactions, calibration_end=as_of)
        histories = summary.frame[["frequency", "recency", "age"]].drop_duplicates()
        if len(histories) < 2:
            return
        probability = self.forecast(transactions, as_of=as_of, horizon_days=horizon_days).probability_return
        if float(np.ptp(probability)) < _MIN_PROBABILITY_SPREAD:
            raise ValueError(
                f"{self.name} gives every client P(return) = {probability[0]:.3f}; it tells no one apart"
            )

    def _correction(self, covariates: pd.DataFrame) -> FloatArray:
        with self._lock:  # parsed once; the model is shared by threads
            if self._booster is None:
                import lightgbm as lgb

                self._booster = lgb.Booster(model_str=self.booster)
        raw = self._booster.predict(covariates, raw_score=True, num_threads=1)
        return np.asarray(np.exp(raw), dtype=np.float64)

    def to_payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "params": dict(self.params),
            "calibration_end": str(self.calibration_end),
            "scale": self.scale,
            "booster": self.booster,
            "curve": list(self.curve) if self.curve is not None else None,
            "notes": list(self.notes),
            "components": [{"weight": w, "model": c.to_payload()} for w, c in self.components],
            "probability_from": self.probability_from,
        }

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> FittedReturnModel:
        known_name = payload.get("name") in (*CANDIDATES, STACKED)
        if not known_name or payload.get("base") not in {"bgnbd", "pareto_nbd"}:
            raise ValueError(f"not a return model: {payload.get('name')!r}")
        curve = payload.get("curve")
        probability_from = payload.get("probability_from")
        return FittedReturnModel(
            name=str(payload["name"]),
            base=str(payload["base"]),
            params={str(k): float(v) for k, v in payload["params"].items()},
            calibration_end=date.fromisoformat(str(payload["calibration_end"])),
            scale=float(payload.get("scale", 1.0)),
            booster=None if payload.get("booster") is None else str(payload["booster"]),
            curve=None if curve is None else (float(curve[0]), float(curve[1])),
            notes=[str(n) for n in payload.get("notes", [])],
            components=[
                (float(c["weight"]), FittedReturnModel.from_payload(c["model"]))
                for c in payload.get("components", [])
            ],
            probability_from=None if probability_from is None else str(probability_from),
        )


def client_covariates(
    transactions: pd.DataFrame,
    summary: ClientSummary,
    cut: date,
    model: BgNbd | ParetoNbd,
    horizon_days: float,
) -> pd.DataFrame:
    """The boosted correction's inputs per client known at the end of `cut` (rows in `summary` order).

    Recency, frequency, age and the days since the last visit (days); visits in the last 30/60/90/180
    days; the first, last and total amounts; transactions per visit day; the day of the year of the first
    visit (acquisition season); the base model's P(alive) and log E[visits over `horizon_days`]; and the
    horizon itself (days)."""
    end = pd.Timestamp(cut)
    frame = summary.frame.drop(columns=["first_visit"]).copy()
    known = visits(transactions)
    known = known[known["day"] <= end].sort_values(["client_id", "day"])
    for window in (30, 60, 90, 180):
        recent = known[known["day"] > end - pd.Timedelta(days=window)]
        frame[f"visits_last_{window}_days"] = (
            recent.groupby("client_id").size().reindex(frame.index, fill_value=0)
        )
    grouped = known.groupby("client_id")
    frame["first_amount"] = grouped["amount"].first()
    frame["last_amount"] = grouped["amount"].last()
    frame["total_amount"] = grouped["amount"].sum()
    frame["first_visit_day_of_year"] = summary.frame["first_visit"].dt.day_of_year
    frame["days_since_last_visit"] = frame["age"] - frame["recency"]
    in_period = transactions[transactions["date"].dt.normalize() <= end]
    per_client = in_period.groupby("client_id").size().reindex(frame.index)
    frame["transactions_per_visit"] = per_client / (frame["frequency"] + 1)
    x, t_x, age = summary.frequency, summary.recency, summary.age
    frame["probability_alive"] = model.probability_alive(x, t_x, age)
    expected = model.expected_visits(horizon_days, x, t_x, age)
    frame["log_expected_visits"] = np.log(np.maximum(expected, 1e-12))
    frame["horizon_days"] = float(horizon_days)
    return frame.astype(float)


def _curve(fits: BaseFits, end: date, base: str) -> tuple[tuple[float, float] | None, str | None]:
    """P(return) on log E[visits] learnt on the last third of the period: the base model fitted to
    `CURVE_FRACTION` of the period before `end`, against who visited after. None (with the reason) when
    that inner period cannot be used."""
    days = round(_period_days(fits, end) * CURVE_FRACTION)
    cut = end - timedelta(days=days)
    if days < MIN_INNER_DAYS:
        return None, f"no return curve: {days} inner days"
    try:
        model = fits.pareto_nbd(cut) if base == "pareto_nbd" else fits.bgnbd(cut)
        summary = fits.summary(cut)
        expected = model.expected_visits(days, summary.frequency, summary.recency, summary.age)
        labels = (fits.returned(cut, end) > 0).astype(float)
        if labels.min() == labels.max():
            return None, "no return curve: everyone or no one returned in the inner period"
        slope, intercept = metrics.fit_logistic_curve(np.log(np.maximum(expected, 1e-12)), labels)
    except (ValueError, np.linalg.LinAlgError) as error:
        return None, f"no return curve: {error}"
    if not slope > 0:
        return None, f"no return curve: slope {slope:.3g} does not rank by expected visits"
    return (slope, intercept), None


def _with_curve(fitted: FittedReturnModel, fits: BaseFits, end: date) -> FittedReturnModel:
    curve, note = _curve(fits, end, fitted.base)
    fitted.curve = curve
    if note:
        fitted.notes.append(note)
    return fitted


def _fit_bgnbd(fits: BaseFits, end: date, horizon_days: float) -> FittedReturnModel:
    return _with_curve(FittedReturnModel("bgnbd", "bgnbd", dict(fits.bgnbd(end).__dict__), end), fits, end)


def _fit_pareto_nbd(fits: BaseFits, end: date, horizon_days: float) -> FittedReturnModel:
    fitted = FittedReturnModel("pareto_nbd", "pareto_nbd", dict(fits.pareto_nbd(end).__dict__), end)
    return _with_curve(fitted, fits, end)


def _half_period_scale(fits: BaseFits, end: date, base: str = "pareto_nbd") -> float:
    """Actual / forecast visits of the base model fitted to the first half of the period and scored on
    the second."""
    middle = _cut_at(fits, end, 0.5)
    if (end - middle).days < MIN_INNER_DAYS:
        raise ShortHistoryError(f"a half-period scale needs {2 * MIN_INNER_DAYS} days of history")
    summary = fits.summary(middle)
    model = fits.base(base, middle)
    forecast = float(
        model.expected_visits((end - middle).days, summary.frequency, summary.recency, summary.age).sum()
    )
    actual = float(fits.returned(middle, end).sum())
    if not (forecast > 0 and actual > 0):
        raise ShortHistoryError("no visits in the second half of the period to learn a scale from")
    return actual / forecast


def _fit_scaled(
    fits: BaseFits, end: date, horizon_days: float, base: str = "pareto_nbd"
) -> FittedReturnModel:
    scale = _half_period_scale(fits, end, base)
    fitted = FittedReturnModel(
        "pareto_nbd_scaled", base, dict(fits.base(base, end).__dict__), end, scale=scale
    )
    return _with_curve(fitted, fits, end)


def _fit_boosted(
    fits: BaseFits, end: date, horizon_days: float, base: str = "pareto_nbd"
) -> FittedReturnModel:
    import lightgbm as lgb

    inputs: list[pd.DataFrame] = []
    targets: list[FloatArray] = []
    offsets: list[FloatArray] = []
    for fraction in BOOSTED_CUT_FRACTIONS:
        cut = _cut_at(fits, end, fraction)
        inner_days = (end - cut).days
        summary = fits.summary(cut)
        target = fits.returned(cut, end)
        if inner_days < MIN_INNER_DAYS or len(target) < MIN_BOOSTED_CLIENTS:
            raise ShortHistoryError(
                f"the boosted correction needs {MIN_BOOSTED_CLIENTS} clients and {MIN_INNER_DAYS} days after "
                f"each inner cut; at {cut}: {len(target)} clients, {inner_days} days"
            )
        if int((target > 0).sum()) < MIN_BOOSTED_RETURNS:
            raise ShortHistoryError(f"{int((target > 0).sum())} clients returned after {cut}")
        model = fits.base(base, cut)
        covariates = client_covariates(fits.transactions, summary, cut, model, inner_days)
        inputs.append(covariates)
        targets.append(target)
        offsets.append(covariates["log_expected_visits"].to_numpy())
    rows = sum(len(t) for t in targets)
    params = dict(_BOOSTED_PARAMS, min_child_samples=max(20, min(100, rows // 50)))
    booster = lgb.LGBMRegressor(**params)
    booster.fit(pd.concat(inputs), np.concatenate(targets), init_score=np.concatenate(offsets))
    fitted = FittedReturnModel(
        "boosted",
        base,
        dict(fits.base(base, end).__dict__),
        end,
        booster=booster.booster_.model_to_string(),
    )
    return _with_curve(fitted, fits, end)


_FITTERS: Final[dict[str, Callable[[BaseFits, date, float], FittedReturnModel]]] = {
    "bgnbd": _fit_bgnbd,
    "pareto_nbd": _fit_pareto_nbd,
    "pareto_nbd_scaled": _fit_scaled,
    "boosted": _fit_boosted,
}


def fit_return_model(
    name: str, transactions: pd.DataFrame | BaseFits, *, calibration_end: date, horizon_days: float
) -> FittedReturnModel:
    """Fit candidate `name` on the visits up to `calibration_end` (inclusive) for forecasts over
    `horizon_days`. Raises `ShortHistoryError` when the history cannot fit it, or when the fit gives
    every client one P(return); `ValueError` for an unknown name."""
    if name not in _FITTERS:
        raise ValueError(f"unknown return model {name!r}; choose from {', '.join(CANDIDATES)}")
    fits = transactions if isinstance(transactions, BaseFits) else BaseFits(transactions)
    period = _period_days(fits, calibration_end)
    if period < MIN_PERIOD_DAYS:
        raise ShortHistoryError(
            f"{period} days of visits before {calibration_end}; a return model needs {MIN_PERIOD_DAYS}"
        )
    try:
        fitted = _FITTERS[name](fits, calibration_end, horizon_days)
        _check_separates_or_drop_curve(fitted, fits, calibration_end, horizon_days)
    except ShortHistoryError:
        raise
    except (ValueError, np.linalg.LinAlgError) as error:
        raise ShortHistoryError(f"{name} could not be fitted: {error}") from error
    return fitted


def _check_separates_or_drop_curve(
    fitted: FittedReturnModel, fits: BaseFits, calibration_end: date, horizon_days: float
) -> None:
    """Refuse a fit whose P(return) is one value for everyone, after one fallback: a return curve
    learnt over the inner period (a third of the history) and applied to expected visits over a longer
    horizon can saturate (every client at 1.000 on a few months of regular visits), so the base model's
    own P(return), which is computed for the horizon, replaces it, and the notes say so."""
    try:
        fitted.check_separates(fits.transactions, as_of=calibration_end, horizon_days=horizon_days)
    except ValueError as error:
        if fitted.curve is None:
            raise
        fitted.curve = None
        fitted.notes.append(f"return curve dropped ({error}): the base model's own P(return)")
        fitted.check_separates(fits.transactions, as_of=calibration_end, horizon_days=horizon_days)


def backtest_windows(first_day: date, calibration_end: date, horizon_days: float) -> list[tuple[date, date]]:
    """(origin, end) of each backtest window: the task's shape, scaled down to fit inside the period.

    The task forecasts `horizon_days` after a history of P days, a ratio rho = horizon / P. A window
    fitted on the visits up to origin c forecasts rho * (c - first day) days after it, so that it
    extrapolates as far, relative to what it has seen, as the real forecast will; the latest origin
    whose window still ends inside the period is c* = P / (1 + rho) days in, and the origins are at
    `BACKTEST_ORIGINS` of c* (the last window ends at the calibration end)."""
    period = (calibration_end - first_day).days
    ratio = float(horizon_days) / max(period, 1)
    latest = period / (1.0 + ratio)
    windows: list[tuple[date, date]] = []
    for share in BACKTEST_ORIGINS:
        origin_days = round(latest * share)
        length = min(round(ratio * origin_days), period - origin_days)
        origin = first_day + timedelta(days=origin_days)
        windows.append((origin, origin + timedelta(days=length)))
    return sorted(set(windows))


def rolling_backtest(
    transactions: pd.DataFrame,
    *,
    calibration_end: date,
    horizon_days: float,
    candidates: tuple[str, ...] = CANDIDATES,
) -> dict[str, Any]:
    """Every candidate fitted at each window's origin (`backtest_windows`) on the visits up to it, and
    scored on the visits of the window; then the stack of the candidates (`_fit_stack`) and the
    probability's choice (`_choose_probability`). Only visits up to `calibration_end` are read. Returns
    {"windows": [...], "candidates": {name: {"windows": [metrics per window], "mean_poisson_deviance":
    float} or {"refused": reason}}, "stack": {...}, "probability": {...}}."""
    known = transactions[transactions["date"].dt.normalize() <= pd.Timestamp(calibration_end)]
    if known.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    windows = backtest_windows(known["date"].min().date(), calibration_end, horizon_days)
    result: dict[str, Any] = {"windows": [{"origin": str(o), "end": str(e)} for o, e in windows]}
    result["candidates"] = {}
    fits = {end: BaseFits(known[known["date"].dt.normalize() <= pd.Timestamp(end)]) for _, end in windows}
    forecasts: dict[str, list[tuple[FloatArray, FloatArray]]] = {}
    for name in candidates:
        per_window: list[dict[str, Any]] = []
        scored: list[tuple[FloatArray, FloatArray]] = []
        try:
            for origin, end in windows:
                horizon = float((end - origin).days)
                window_fits = fits[end]
                forecast = fit_return_model(
                    name, window_fits, calibration_end=origin, horizon_days=horizon
                ).forecast(window_fits.transactions, as_of=origin, horizon_days=horizon)
                observed = window_fits.returned(origin, end)
                scored.append((forecast.expected_visits, observed))
                per_window.append(
                    {"origin": str(origin), "end": str(end)}
                    | return_metrics(forecast.expected_visits, forecast.probability_return, observed)
                )
        except ValueError as error:
            result["candidates"][name] = {"refused": str(error)}
            continue
        deviance = float(np.mean([w["poisson_deviance"] for w in per_window]))
        result["candidates"][name] = {"windows": per_window, "mean_poisson_deviance": deviance}
        forecasts[name] = scored
    result["stack"] = _fit_stack(forecasts, windows)
    result["probability"] = _choose_probability(result["candidates"])
    return result


def _stack_weights(
    forecasts: dict[str, list[tuple[FloatArray, FloatArray]]], names: list[str], windows: list[int]
) -> FloatArray:
    """Convex weights of `names` minimizing the mean Poisson deviance of the weighted sum of their
    expected visits over the windows numbered `windows` (softmax parameters, Nelder-Mead)."""
    from scipy.optimize import minimize

    def deviance(parameters: FloatArray) -> float:
        weights = np.exp(parameters - parameters.max())
        weights = weights / weights.sum()
        return float(
            np.mean(
                [
                    poisson_deviance(
                        sum(w * forecasts[n][i][0] for w, n in zip(weights, names, strict=True)),
                        forecasts[names[0]][i][1],
                    )
                    for i in windows
                ]
            )
        )

    found = minimize(
        deviance,
        np.zeros(len(names)),
        method="Nelder-Mead",
        options={"xatol": 1e-3, "fatol": 1e-7, "maxiter": 200 * len(names)},
    )
    weights = np.exp(found.x - found.x.max())
    weights = weights / weights.sum()
    weights = np.where(weights < _MIN_STACK_WEIGHT, 0.0, weights)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _fit_stack(
    forecasts: dict[str, list[tuple[FloatArray, FloatArray]]], windows: list[tuple[date, date]]
) -> dict[str, Any]:
    """The stack of the candidates that scored every window: convex weights of their expected visits
    that minimize the mean window deviance. Its figure is honest: each window is scored with weights
    fitted on the other windows (leave one window out), so it competes with the single candidates on
    windows it was not fitted to. {"refused": reason} with fewer than two candidates or windows."""
    names = list(forecasts)
    if len(names) < 2 or len(windows) < 2:
        counts = f"{len(names)} and {len(windows)}"
        return {"refused": f"a stack needs two scored candidates and two windows, not {counts}"}
    every = list(range(len(windows)))
    held_out: list[dict[str, Any]] = []
    for i, (origin, end) in enumerate(windows):
        weights = _stack_weights(forecasts, names, [j for j in every if j != i])
        expected = sum(w * forecasts[n][i][0] for w, n in zip(weights, names, strict=True))
        observed = forecasts[names[0]][i][1]
        held_out.append(
            {
                "origin": str(origin),
                "end": str(end),
                "weights": dict(zip(names, weights.tolist(), strict=True)),
                "poisson_deviance": poisson_deviance(expected, observed),
                "aggregate_error": float((np.sum(expected) - observed.sum()) / observed.sum())
                if observed.sum()
                else float("nan"),
            }
        )
    weights = _stack_weights(forecasts, names, every)
    return {
        "weights": {n: w for n, w in zip(names, weights.tolist(), strict=True) if w > 0},
        "windows": held_out,
        "mean_poisson_deviance": float(np.mean([w["poisson_deviance"] for w in held_out])),
    }


def _choose_probability(candidates: dict[str, Any]) -> dict[str, Any]:
    """P(return) is served from the candidate whose probability ranks "any visit in the window" best:
    the highest mean ROC AUC over the backtest's windows (its mean log loss is reported beside it)."""
    scored = {
        name: result
        for name, result in candidates.items()
        if "windows" in result and all(math.isfinite(w["roc_auc"]) for w in result["windows"])
    }
    auc = {name: float(np.mean([w["roc_auc"] for w in r["windows"]])) for name, r in scored.items()}
    log_loss = {name: float(np.mean([w["log_loss"] for w in r["windows"]])) for name, r in scored.items()}
    chosen = max(auc, key=lambda name: (auc[name], -CANDIDATES.index(name)), default=None)
    return {
        "rule": "highest mean ROC AUC over the windows",
        "chosen": chosen,
        "mean_roc_auc": auc,
        "mean_log_loss": log_loss,
    }


@dataclass(frozen=True)
class ReturnChoice:
    """What the backtest chose: the expected visits as weights of candidates (one candidate at weight 1,
    or the stack), and the candidate whose P(return) is served."""

    expected: tuple[tuple[float, str], ...]
    probability: str

    @property
    def name(self) -> str:
        if len(self.expected) == 1 and self.expected[0][1] == self.probability:
            return self.probability
        return STACKED


def choose_return_model(backtest: dict[str, Any]) -> ReturnChoice:
    """The expected visits with the lowest mean Poisson deviance over the backtest's windows, a single
    candidate or the stack (its held-out figure); P(return) from `backtest["probability"]`. With no
    window scored, BG/NBD alone (a refused candidate is not eligible)."""
    preference = return_model_preference(backtest)
    single = preference[0]
    best = float(backtest["candidates"].get(single, {}).get("mean_poisson_deviance", float("nan")))
    stack = backtest.get("stack", {})
    probability = backtest.get("probability", {}).get("chosen") or single
    if "mean_poisson_deviance" in stack and math.isfinite(best) and stack["mean_poisson_deviance"] < best:
        expected = tuple((float(w), str(n)) for n, w in stack["weights"].items())
        return ReturnChoice(expected, probability)
    if not math.isfinite(best):
        return ReturnChoice(((1.0, single),), single)
    return ReturnChoice(((1.0, single),), probability)


def return_model_preference(backtest: dict[str, Any]) -> list[str]:
    """Single candidates in the order to try them: by mean Poisson deviance over the backtest's windows
    (lowest first), then the refused ones from the simplest (BG/NBD, then Pareto/NBD): a short history
    that no window can score still gets the simplest model that fits it whole."""
    scored = sorted(
        (float(result["mean_poisson_deviance"]), name)
        for name, result in backtest["candidates"].items()
        if math.isfinite(float(result.get("mean_poisson_deviance", float("nan"))))
    )
    chosen = [name for _, name in scored]
    return chosen + [name for name in ("bgnbd", "pareto_nbd") if name not in chosen]


def fit_choice(
    choice: ReturnChoice, fits: BaseFits, *, calibration_end: date, horizon_days: float
) -> FittedReturnModel:
    """Fit what `choice` names on the whole period: a single candidate, or each component of the stack
    and the probability's candidate, combined (`STACKED`; its base model, for the next-visit date, is
    that of its heaviest component). Raises `ShortHistoryError` when one of them cannot be fitted."""
    names = dict.fromkeys([name for _, name in choice.expected] + [choice.probability])
    fitted = {
        name: fit_return_model(name, fits, calibration_end=calibration_end, horizon_days=horizon_days)
        for name in names
    }
    if choice.name != STACKED:
        return fitted[choice.probability]
    heaviest = fitted[max(choice.expected)[1]]
    components = [(weight, fitted[name]) for weight, name in choice.expected]
    if choice.probability not in {name for _, name in choice.expected}:
        components.append((0.0, fitted[choice.probability]))
    return FittedReturnModel(
        STACKED,
        heaviest.base,
        dict(heaviest.params),
        calibration_end,
        components=components,
        probability_from=choice.probability,
    )


@dataclass
class Selection:
    """The served return model and how it was chosen."""

    model: FittedReturnModel
    backtest: dict[str, Any]
    chosen_by: str
    fallbacks: list[dict[str, str]]
    fits: BaseFits


def select_return_model(
    transactions: pd.DataFrame, *, calibration_end: date, horizon_days: float, model: str = "auto"
) -> Selection:
    """One path for evaluation and serving: the rolling backtest on the visits up to `calibration_end`,
    its choice fitted on the whole period (`model="auto"`), or the candidate named. When the choice
    cannot be fitted on the whole period, the next single candidate by the backtest, down to BG/NBD,
    each refusal in `fallbacks`. Raises `ValueError` (naming every reason) when nothing fits."""
    known = transactions[transactions["date"].dt.normalize() <= pd.Timestamp(calibration_end)]
    if known.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    fits = BaseFits(known)
    backtest = rolling_backtest(known, calibration_end=calibration_end, horizon_days=horizon_days)
    if model == "auto":
        choice = choose_return_model(backtest)
        tries = [choice] + [ReturnChoice(((1.0, n),), n) for n in return_model_preference(backtest)]
    else:
        tries = [ReturnChoice(((1.0, model),), model)]
    fallbacks: list[dict[str, str]] = []
    for attempt in dict.fromkeys(tries):
        try:
            fitted = fit_choice(attempt, fits, calibration_end=calibration_end, horizon_days=horizon_days)
        except ValueError as error:
            fallbacks.append({"model": attempt.name, "reason": str(error)})
            continue
        if model != "auto":
            chosen_by = "named with --model"
        elif attempt.name == STACKED or "windows" in backtest["candidates"].get(attempt.name, {}):
            chosen_by = "rolling backtest"
        else:
            # Why the windows could not score it: too short a history, or a fit that told no one apart.
            refusal = backtest["candidates"].get(attempt.name, {}).get("refused", "not a candidate")
            chosen_by = (
                f"fallback: no backtest window could score {attempt.name} ({refusal}); it is the simplest "
                f"model that fits the whole period"
            )
        return Selection(fitted, backtest, chosen_by, fallbacks, fits)
    reasons = "; ".join(f"{f['model']}: {f['reason']}" for f in fallbacks)
    raise ValueError(f"no return model can be fitted on this history ({reasons})")
