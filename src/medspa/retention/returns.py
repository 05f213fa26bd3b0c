"""Return-time models: each client's expected visits in a coming period and the probability of any visit.

A *visit* is a distinct day with at least one transaction. Time is measured in days. For each client,
from the visits on or before the calibration end:

- `frequency` x: repeat visits (visits after the first), `recency` t_x: days from the first visit to the
  last, `age` T: days from the first visit to the calibration end (t_x <= T), `monetary`: mean amount per
  visit day.

`fit_bgnbd` fits the BG/NBD model (Fader, Hardie & Lee 2005) by maximum likelihood with scipy;
`BgNbd.expected_visits(h)` is E[visits in (T, T + h]] and `BgNbd.probability_return(h)` is
P(at least one visit in (T, T + h]) = P(alive at T) * (1 - ((alpha + T) / (alpha + T + h)) ** (r + x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def _days(delta: pd.Series) -> pd.Series:
    """A timedelta series in (fractional) days."""
    seconds: pd.Series = delta.dt.total_seconds()
    return seconds / 86400.0


@dataclass(frozen=True)
class ClientSummary:
    """Per-client recency/frequency/age (days) at the calibration end, one row per client_id (sorted)."""

    frame: pd.DataFrame  # index client_id; columns frequency, recency, age, monetary, first_visit

    @property
    def frequency(self) -> FloatArray:
        return np.asarray(self.frame["frequency"].to_numpy(dtype=float), dtype=np.float64)

    @property
    def recency(self) -> FloatArray:
        return np.asarray(self.frame["recency"].to_numpy(dtype=float), dtype=np.float64)

    @property
    def age(self) -> FloatArray:
        return np.asarray(self.frame["age"].to_numpy(dtype=float), dtype=np.float64)


def visits(transactions: pd.DataFrame) -> pd.DataFrame:
    """Distinct (client_id, day) pairs with the day's total amount: one row per visit."""
    frame = transactions.assign(day=transactions["date"].dt.normalize())
    return frame.groupby(["client_id", "day"])["amount"].sum().reset_index()


def summarize(transactions: pd.DataFrame, *, calibration_end: date) -> ClientSummary:
    """Recency/frequency/age at the end of `calibration_end` for every client with a visit by then.

    The calibration end is inclusive: a visit on that day counts, and age T is measured to that day.
    """
    visit_rows = visits(transactions)
    end = pd.Timestamp(calibration_end)
    known = visit_rows[visit_rows["day"] <= end]
    grouped = known.groupby("client_id")
    first = grouped["day"].min()
    last = grouped["day"].max()
    frame = pd.DataFrame(
        {
            "frequency": grouped.size().astype(float) - 1.0,
            "recency": _days(last - first),
            "age": _days(end - first),
            "monetary": grouped["amount"].mean(),
            "first_visit": first,
        }
    ).sort_index()
    return ClientSummary(frame=frame)


def holdout_visits(transactions: pd.DataFrame, *, calibration_end: date, holdout_end: date) -> pd.Series:
    """Visits per client in (calibration_end, holdout_end] (0 for clients without any)."""
    visit_rows = visits(transactions)
    in_holdout = (visit_rows["day"] > pd.Timestamp(calibration_end)) & (
        visit_rows["day"] <= pd.Timestamp(holdout_end)
    )
    return visit_rows[in_holdout].groupby("client_id").size().astype(float)


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rates ~ Gamma(r, alpha) (per day), dropout ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
        """Per-client log-likelihood of (x, t_x, T)."""
        return _bgnbd_log_likelihood(np.array([self.r, self.alpha, self.a, self.b]), x, t_x, age)

    def probability_alive(self, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
        """P(the client has not dropped out by T)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
            odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * np.exp(log_ratio), 0.0)
        return np.asarray(1.0 / (1.0 + odds), dtype=np.float64)

    def expected_visits(
        self, horizon_days: float, x: FloatArray, t_x: FloatArray, age: FloatArray
    ) -> FloatArray:
        """E[visits in (T, T + horizon_days]] given (x, t_x, T) (the conditional expectation)."""
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        h = float(horizon_days)
        z = h / (alpha + age + h)
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, z)
        term = 1.0 - ((alpha + age) / (alpha + age + h)) ** (r + x) * hyper
        numerator = (a + b + x - 1) / (a - 1) * term
        return np.asarray(numerator * self.probability_alive(x, t_x, age), dtype=np.float64)

    def probability_return(
        self, horizon_days: float, x: FloatArray, t_x: FloatArray, age: FloatArray
    ) -> FloatArray:
        """P(at least one visit in (T, T + horizon_days]); dropout happens only right after a visit."""
        no_visit_if_alive = ((self.alpha + age) / (self.alpha + age + float(horizon_days))) ** (self.r + x)
        return np.asarray(self.probability_alive(x, t_x, age) * (1.0 - no_visit_if_alive), dtype=np.float64)


def _bgnbd_log_likelihood(params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    from scipy.special import betaln, gammaln

    r, alpha, a, b = (float(v) for v in params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    first = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore", invalid="ignore"):
        second = np.where(
            x > 0,
            betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return np.asarray(common + np.logaddexp(first, second), dtype=np.float64)


def fit_bgnbd(summary: ClientSummary) -> BgNbd:
    """Maximum-likelihood BG/NBD (L-BFGS-B on log-parameters). Raises `ValueError` if it fails."""
    from scipy.optimize import minimize

    x, t_x, age = summary.frequency, summary.recency, summary.age
    if len(x) == 0:
        raise ValueError("no clients to fit")

    def objective(log_params: FloatArray) -> float:
        value = -float(np.sum(_bgnbd_log_likelihood(np.exp(log_params), x, t_x, age)))
        return value if np.isfinite(value) else 1e300

    start = np.log(np.array([0.5, max(float(np.mean(age)), 1.0), 1.0, 2.0]))
    result = minimize(
        objective, start, method="L-BFGS-B", bounds=[(-8.0, 8.0), (-8.0, 12.0), (-8.0, 8.0), (-8.0, 8.0)]
    )
    if not np.isfinite(result.fun):
        raise ValueError(f"BG/NBD fit failed: {result.message}")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbd(r=r, alpha=alpha, a=a, b=b)
