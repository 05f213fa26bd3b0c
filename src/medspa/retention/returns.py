"""Return-time models: each client's expected visits in a coming period and the probability of any visit.

A *visit* is a distinct day with at least one transaction. Time is measured in days. For each client,
from the visits on or before the calibration end:

- `frequency` x: repeat visits (visits after the first), `recency` t_x: days from the first visit to the
  last, `age` T: days from the first visit to the calibration end (t_x <= T), `monetary`: mean amount per
  visit day.

`fit_bgnbd` fits the BG/NBD model (Fader, Hardie & Lee 2005) by maximum likelihood with scipy;
`BgNbd.expected_visits(h)` is E[visits in (T, T + h]] and `BgNbd.probability_return(h)` is
P(at least one visit in (T, T + h]) = P(alive at T) * (1 - ((alpha + T) / (alpha + T + h)) ** (r + x)).

`fit_pareto_nbd` fits the Pareto/NBD model (Schmittlein, Morrison & Colombo 1987; likelihood as in Fader &
Hardie's 2005 note): visits at a Poisson rate lambda ~ Gamma(r, alpha) while alive, a lifetime
~ Exponential(mu) with mu ~ Gamma(s, beta), all per day. The candidates built on them, and the backtest
that chooses among them, are in `return_models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
_QUADRATURE_NODES: Final = 32  # per posterior rate, in `ParetoNbd.probability_return`


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


def _log_a0(params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    """log A0 of the Pareto/NBD likelihood (the integral over dropout times between t_x and T)."""
    from scipy.special import hyp2f1, logsumexp

    r, alpha, s, beta = (float(v) for v in params)
    if alpha < beta:
        low, high, shape = alpha, beta, r + x
    else:
        low, high, shape = beta, alpha, np.full_like(x, s + 1.0)
    total = r + s + x
    q_recency = high + t_x
    q_age = high + age
    p_recency = hyp2f1(total, shape, total + 1.0, (high - low) / q_recency)
    p_age = hyp2f1(total, shape, total + 1.0, (high - low) / q_age)
    sign = np.ones_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = logsumexp(
            [np.log(p_recency) + total * np.log(q_age), np.log(p_age) + total * np.log(q_recency)],
            axis=0,
            b=[sign, -sign],
        )
    return np.asarray(difference - total * np.log(q_recency * q_age), dtype=np.float64)


def _pareto_nbd_log_likelihood(
    params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    from scipy.special import gammaln

    r, alpha, s, beta = (float(v) for v in params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive_at_age = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    died_before = np.log(s) + _log_a0(params, x, t_x, age) - np.log(r + s + x)
    return np.asarray(common + np.logaddexp(alive_at_age, died_before), dtype=np.float64)


@dataclass(frozen=True)
class ParetoNbd:
    """Pareto/NBD parameters: visit rates ~ Gamma(r, alpha), dropout rates ~ Gamma(s, beta) (per day)."""

    r: float
    alpha: float
    s: float
    beta: float

    @property
    def params(self) -> FloatArray:
        return np.array([self.r, self.alpha, self.s, self.beta], dtype=np.float64)

    def log_likelihood(self, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
        """Per-client log-likelihood of (x, t_x, T)."""
        return _pareto_nbd_log_likelihood(self.params, x, t_x, age)

    def probability_alive(self, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
        """P(the client is still alive at T)."""
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        log_odds = (
            np.log(s)
            - np.log(r + s + x)
            + (r + x) * np.log(alpha + age)
            + s * np.log(beta + age)
            + _log_a0(self.params, x, t_x, age)
        )
        return np.asarray(1.0 / (1.0 + np.exp(log_odds)), dtype=np.float64)

    def expected_visits(
        self, horizon_days: float, x: FloatArray, t_x: FloatArray, age: FloatArray
    ) -> FloatArray:
        """E[visits in (T, T + horizon_days]] given (x, t_x, T) (the conditional expectation)."""
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        h = float(horizon_days)
        # P(alive) * E[lambda | alive] * E[time alive within the horizon | alive], as in the 1987 paper.
        rate = (r + x) / (alpha + age)
        if abs(s - 1.0) < 1e-9:
            time_alive = (beta + age) * np.log((beta + age + h) / (beta + age))
        else:
            time_alive = (beta + age) / (s - 1.0) * (1.0 - ((beta + age) / (beta + age + h)) ** (s - 1.0))
        return np.asarray(self.probability_alive(x, t_x, age) * rate * time_alive, dtype=np.float64)

    def probability_return(
        self, horizon_days: float, x: FloatArray, t_x: FloatArray, age: FloatArray
    ) -> FloatArray:
        """P(at least one visit in (T, T + horizon_days]): P(alive) times one minus the chance that an alive
        client makes no visit before the horizon or its death, averaged over the posterior rates
        (Gamma(r + x, alpha + T) and Gamma(s, beta + T)) on a grid of their mid-quantiles."""
        from scipy.stats import gamma

        h = float(horizon_days)
        levels = (np.arange(_QUADRATURE_NODES) + 0.5) / _QUADRATURE_NODES
        dropout_nodes = np.asarray(gamma.ppf(levels, self.s), dtype=np.float64)
        visit_again = np.zeros_like(x, dtype=np.float64)
        for frequency in np.unique(x):
            rows = np.flatnonzero(x == frequency)
            rate_nodes = np.asarray(gamma.ppf(levels, self.r + frequency), dtype=np.float64)
            for chunk in np.array_split(rows, max(1, len(rows) // 2000)):
                rate = rate_nodes[None, :, None] / (self.alpha + age[chunk])[:, None, None]
                dropout = dropout_nodes[None, None, :] / (self.beta + age[chunk])[:, None, None]
                total = rate + dropout
                # No visit: alive through the horizon without one, or dead before the first one.
                no_visit = np.exp(-total * h) + dropout / total * (1.0 - np.exp(-total * h))
                visit_again[chunk] = 1.0 - no_visit.mean(axis=(1, 2))
        return np.asarray(self.probability_alive(x, t_x, age) * visit_again, dtype=np.float64)


def fit_pareto_nbd(summary: ClientSummary) -> ParetoNbd:
    """Maximum-likelihood Pareto/NBD (Nelder-Mead, then L-BFGS-B, on bounded log-parameters).

    Clients with the same (x, t_x, T) share one likelihood term, weighted by their count (CDNOW: 23,570
    clients, 8,685 distinct triples). Raises `ValueError` if there are no clients or the likelihood cannot
    be evaluated.
    """
    from scipy.optimize import minimize

    if len(summary.frame) == 0:
        raise ValueError("no clients to fit")
    triples, counts = np.unique(
        np.column_stack([summary.frequency, summary.recency, summary.age]), axis=0, return_counts=True
    )
    x, t_x, age = triples[:, 0], triples[:, 1], triples[:, 2]

    def objective(log_params: FloatArray) -> float:
        with np.errstate(all="ignore"):
            terms = _pareto_nbd_log_likelihood(np.exp(log_params), x, t_x, age)
            value = -float(np.sum(counts * terms))
        return value if np.isfinite(value) else 1e300

    scale = max(float(np.mean(age)), 1.0)
    start = np.log(np.array([0.5, scale, 1.0, scale]))
    # Bounded: when dropout is barely identified (a short period) s and beta drift to huge values where
    # the hypergeometric terms are slow, for no gain in likelihood.
    bounds = [(-8.0, 8.0)] * 4
    simplex = minimize(
        objective, start, method="Nelder-Mead", bounds=bounds, options={"maxiter": 1500, "fatol": 1e-6}
    )
    result = minimize(objective, simplex.x, method="L-BFGS-B", bounds=bounds)
    best = result if result.fun <= simplex.fun else simplex
    if not np.isfinite(best.fun) or best.fun >= 1e300:
        raise ValueError(f"Pareto/NBD fit failed: {result.message}")
    r, alpha, s, beta = (float(v) for v in np.exp(best.x))
    return ParetoNbd(r=r, alpha=alpha, s=s, beta=beta)


@dataclass
class ReturnsForecast:
    """Per-client forecast over a horizon: expected visits and P(at least one visit)."""

    client_ids: list[str]
    expected_visits: FloatArray
    probability_return: FloatArray
