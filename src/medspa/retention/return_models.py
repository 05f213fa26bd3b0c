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

For the last three, P(return) is sigmoid(a + b log E[visits]), a logistic curve learnt inside the period
(the base model fitted `curve_days` before its end, against who visited in those days), because
expected visits rank "any visit" better than the models' own probabilities (docs/models.md); without a
usable inner period the base model's own P(return) is used, and a forecast whose probabilities do not
separate anyone is refused (`ValueError`).

`rolling_backtest` fits every candidate at several origins inside the calibration period and scores each
on a window after its origin shaped like the real task (`backtest_windows`); `choose_return_model` takes
the lowest mean Poisson deviance over the windows. A candidate that cannot be
fitted on the history (too short, too few clients) is left out and the reason is reported; BG/NBD, the
simplest, is the last resort. Nothing after the calibration end is read.
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
    }


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
    _booster: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def base_model(self) -> BgNbd | ParetoNbd:
        return BgNbd(**self.params) if self.base == "bgnbd" else ParetoNbd(**self.params)

    def forecast(self, transactions: pd.DataFrame, *, as_of: date, horizon_days: float) -> ReturnsForecast:
        """E[visits] and P(any visit) in (as_of, as_of + horizon_days] for every client with a visit by
        `as_of`, from their visits up to then."""
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
        }

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> FittedReturnModel:
        if payload.get("name") not in CANDIDATES or payload.get("base") not in {"bgnbd", "pareto_nbd"}:
            raise ValueError(f"not a return model: {payload.get('name')!r}")
        curve = payload.get("curve")
        return FittedReturnModel(
            name=str(payload["name"]),
            base=str(payload["base"]),
            params={str(k): float(v) for k, v in payload["params"].items()},
            calibration_end=date.fromisoformat(str(payload["calibration_end"])),
            scale=float(payload.get("scale", 1.0)),
            booster=None if payload.get("booster") is None else str(payload["booster"]),
            curve=None if curve is None else (float(curve[0]), float(curve[1])),
            notes=[str(n) for n in payload.get("notes", [])],
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
        fitted.check_separates(fits.transactions, as_of=calibration_end, horizon_days=horizon_days)
    except ShortHistoryError:
        raise
    except (ValueError, np.linalg.LinAlgError) as error:
        raise ShortHistoryError(f"{name} could not be fitted: {error}") from error
    return fitted


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
    scored on the visits of the window. Only visits up to `calibration_end` are read. Returns
    {"windows": [...], "candidates": {name: {"windows": [metrics per window], "mean_poisson_deviance":
    float} or {"refused": reason}}}."""
    known = transactions[transactions["date"].dt.normalize() <= pd.Timestamp(calibration_end)]
    if known.empty:
        raise ValueError(f"no visits on or before {calibration_end}")
    windows = backtest_windows(known["date"].min().date(), calibration_end, horizon_days)
    result: dict[str, Any] = {"windows": [{"origin": str(o), "end": str(e)} for o, e in windows]}
    result["candidates"] = {}
    fits = {end: BaseFits(known[known["date"].dt.normalize() <= pd.Timestamp(end)]) for _, end in windows}
    for name in candidates:
        per_window: list[dict[str, Any]] = []
        try:
            for origin, end in windows:
                horizon = float((end - origin).days)
                window_fits = fits[end]
                forecast = fit_return_model(
                    name, window_fits, calibration_end=origin, horizon_days=horizon
                ).forecast(window_fits.transactions, as_of=origin, horizon_days=horizon)
                observed = window_fits.returned(origin, end)
                per_window.append(
                    {"origin": str(origin), "end": str(end)}
                    | return_metrics(forecast.expected_visits, forecast.probability_return, observed)
                )
        except ValueError as error:
            result["candidates"][name] = {"refused": str(error)}
            continue
        deviance = float(np.mean([w["poisson_deviance"] for w in per_window]))
        result["candidates"][name] = {"windows": per_window, "mean_poisson_deviance": deviance}
    return result


def return_model_preference(backtest: dict[str, Any]) -> list[str]:
    """Candidates in the order to try them: by mean Poisson deviance over the backtest's windows (lowest
    first), then the refused ones from the simplest (BG/NBD, then Pareto/NBD): a short history that no
    window can score still gets the simplest model that fits it whole."""
    scored = sorted(
        (float(result["mean_poisson_deviance"]), name)
        for name, result in backtest["candidates"].items()
        if math.isfinite(float(result.get("mean_poisson_deviance", float("nan"))))
    )
    chosen = [name for _, name in scored]
    return chosen + [name for name in ("bgnbd", "pareto_nbd") if name not in chosen]


def choose_return_model(backtest: dict[str, Any]) -> str:
    """The candidate with the lowest mean Poisson deviance over the backtest's windows; BG/NBD when none
    could be scored (a refused candidate is not eligible)."""
    return return_model_preference(backtest)[0]
