"""Small synthetic histories for the retention tests."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from medspa.retention.formats import HISTORY_COLUMNS

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
