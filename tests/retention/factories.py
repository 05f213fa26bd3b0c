"""Small synthetic histories for the retention tests."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from medspa.retention.formats import HISTORY_COLUMNS
from medspa.retention.returns import BgNbd, ParetoNbd

Row = dict[str, object]


def write_csv(path: Path, columns: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def make_history_frame(rows: list[Row]) -> pd.DataFrame:
    """An appointment-history frame as `read_appointment_history` returns it, from partial rows."""
    records = []
    for index, row in enumerate(rows):
        record: Row = dict.fromkeys(HISTORY_COLUMNS, "")
        record.update({"appointment_id": str(index + 1), "price": np.nan, "reminder_sent": np.nan})
        record.update(row)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    frame["booked_at"] = pd.to_datetime(frame["booked_at"].replace("", None)).astype("datetime64[ns]")
    frame["starts_at"] = pd.to_datetime(frame["starts_at"]).astype("datetime64[ns]")
    frame["price"] = frame["price"].astype(float)
    frame["reminder_sent"] = frame["reminder_sent"].astype(float)
    return frame


def simulate_history(
    *, clients: int = 600, days: int = 40, seed: int = 3, start: date = date(2024, 3, 4)
) -> tuple[pd.DataFrame, np.ndarray]:
    """A clinic where each client has a personal no-show propensity and longer lead times miss more.

    Returns the history frame and each row's true no-show probability.
    """
    rng = np.random.default_rng(seed)
    propensity = rng.beta(1.5, 6.0, size=clients)
    rows: list[Row] = []
    truth: list[float] = []
    for client in range(clients):
        visits = int(rng.integers(1, 6))
        for _ in range(visits):
            day = start + timedelta(days=int(rng.integers(0, days)))
            lead = int(rng.integers(0, 30))
            booked = datetime.combine(day, datetime.min.time()) - timedelta(days=lead) + timedelta(hours=9)
            logit = np.log(propensity[client] / (1 - propensity[client])) + 0.08 * lead - 1.4
            probability = float(1 / (1 + np.exp(-logit)))
            rows.append(
                {
                    "client_id": f"c{client}",
                    "booked_at": booked.isoformat(),
                    "starts_at": f"{day.isoformat()}T10:00:00",
                    "status": "no_show" if rng.random() < probability else "completed",
                    "reminder_sent": float(lead >= 3),
                    "x_age": float(rng.integers(18, 80)),
                    "x_sex": str(rng.choice(["F", "M"])),
                }
            )
            truth.append(probability)
    return make_history_frame(rows), np.array(truth)


def simulate_bgnbd_visits(model: BgNbd, clients: int, days: int, seed: int) -> pd.DataFrame:
    """Transactions from the BG/NBD story: Poisson visits, dropout after each visit with prob p."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, pd.Timestamp, float]] = []
    start = pd.Timestamp("2020-01-01")
    for client in range(clients):
        rate = rng.gamma(model.r, 1 / model.alpha)
        dropout = rng.beta(model.a, model.b)
        t = 0.0
        rows.append((str(client), start, 10.0))
        while True:
            t += rng.exponential(1 / rate) if rate > 0 else days + 1
            if t > days:
                break
            rows.append((str(client), start + pd.Timedelta(days=int(t)), 10.0))
            if rng.uniform() < dropout:
                break
    return pd.DataFrame(rows, columns=["client_id", "date", "amount"])


def simulate_pareto_nbd_visits(model: ParetoNbd, clients: int, days: int, seed: int) -> pd.DataFrame:
    """Transactions from the Pareto/NBD story: a first visit on day 0, then Poisson visits until an
    exponential lifetime ends (visits on the same day merge into one visit day)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(model.r, 1 / model.alpha, clients)
    lifetime = rng.exponential(1 / rng.gamma(model.s, 1 / model.beta, clients))
    active = np.minimum(lifetime, days)
    counts = rng.poisson(rate * active)
    client = np.repeat(np.arange(clients), counts)
    offsets = rng.uniform(0, 1, counts.sum()) * np.repeat(active, counts)
    start = pd.Timestamp("2020-01-01")
    frame = pd.DataFrame(
        {
            "client_id": np.r_[np.arange(clients), client].astype(str),
            "date": start + pd.to_timedelta(np.r_[np.zeros(clients), np.floor(offsets)], unit="D"),
            "amount": 10.0,
        }
    )
    return frame


def simulate_clinic_visits(
    *, days: int, clients: int = 300, seed: int = 1, after_days: int = 90
) -> pd.DataFrame:
    """A clinic that gains clients every day: each client's first visit falls in the first `days` days
    (from 2026-01-05), then visits follow at a personal Gamma-distributed rate, through `after_days`
    more days (a holdout). A `visit-transactions` frame."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-05")
    rows: list[tuple[str, pd.Timestamp, float]] = []
    for client in range(clients):
        day = int(rng.integers(0, days))
        rate = rng.gamma(0.8, 1 / 25)
        while day < days + after_days:
            rows.append((f"c{client}", start + pd.Timedelta(days=day), 120.0))
            day += int(rng.exponential(1 / rate)) + 1
    return pd.DataFrame(rows, columns=["client_id", "date", "amount"])


def simulate_regular_visits(
    *, days: int, clients: int = 400, seed: int = 3, after_days: int = 90
) -> pd.DataFrame:
    """A clinic of regular clients: each arrives in the first `days` days (from 2026-01-05), comes back
    every 14, 21, 28, 42 or 56 days (give or take 3) and stops after a uniform 0 to 3 x `days` days,
    through `after_days` more days (a holdout). A `visit-transactions` frame."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-05")
    rows: list[tuple[str, pd.Timestamp, float]] = []
    for client in range(clients):
        day = int(rng.integers(0, days))
        gap = int(rng.choice([14, 21, 28, 42, 56]))
        stops = int(rng.integers(0, 3 * days))
        while day < days + after_days:
            rows.append((f"c{client}", start + pd.Timedelta(days=day), 120.0))
            day += int(max(1, rng.normal(gap, 3)))
            if day > stops:
                break
    return pd.DataFrame(rows, columns=["client_id", "date", "amount"])


def simulate_memberships(*, clients: int = 400, seed: int = 11) -> pd.DataFrame:
    """Memberships in months: the monthly churn hazard is higher on the basic plan and for younger
    clients; observation ends after a uniform 3-24 months (censoring). `x_lifetime_spend` grows with the
    tenure (the kind of covariate the survival model must refuse). A `client-survival` frame."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "premium"], size=clients, p=[0.5, 0.3, 0.2])
    age = rng.integers(20, 70, size=clients).astype(float)
    hazard = (
        0.06 * np.where(plan == "basic", 2.0, np.where(plan == "plus", 1.0, 0.5)) * np.exp(-0.02 * (age - 40))
    )
    churn = rng.exponential(1 / hazard)
    observed = rng.uniform(3, 24, size=clients)
    tenure = np.round(np.minimum(churn, observed), 1)
    return pd.DataFrame(
        {
            "client_id": [f"m{i}" for i in range(clients)],
            "tenure": tenure,
            "event": (churn <= observed).astype(int),
            "x_plan": plan,
            "x_age": age,
            "x_lifetime_spend": np.round(tenure * 120 + rng.normal(0, 30, clients), 2),
        }
    )
