"""The no-show model: LightGBM scores, calibrated on a later slice of the training period.

Training (`train_noshow`) on the attended/missed appointments that start before `train_end`:

1. The last `calibration_days` distinct appointment days form the *calibration slice* (more days while
   they hold fewer than `min_calibration_no_shows` misses, up to half the training days); the days
   before it the *fit slice*. Gradient boosting is fitted on the fit slice.
2. A Platt map (`logit p = a * logit s + b`) is fitted on that booster's scores for the calibration slice,
   so calibration is learnt on appointments the booster never saw and that lie later in time.
   With `refit_on_whole_period` (default) the booster is then refitted, same settings, on fit + calibration
   slices and the map is kept (measured: +0.005 ROC AUC on Brazil; see docs/models.md).
3. Base-rate anchoring (optional, on by default): the no-show base rate drifts over weeks, so at scoring
   time the calibrated log-odds are shifted by `logit(r) - logit(r_cal)`, where `r` is the clinic-wide
   no-show rate of the 28 days before the scoring day (known then) and `r_cal` the same quantity averaged
   over the calibration slice (a prior-shift correction; `r` missing -> no shift). A history with fewer
   than `min_weekly_rows_to_anchor` labelled appointments a week is not shifted: its recent rate is noise.

`predict` needs the client's history beside the appointments to score (the features look at it); it
never reads the status of an appointment that had not happened by its scoring instant.
Probabilities are P(no-show) in (0, 1). A logistic-regression baseline is trained beside it for reports.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from medspa.retention.features import (
    FEATURE_VERSION,
    LABELLED,
    MISSED,
    RECENT_RATE_COLUMN,
    FeatureSchema,
    ScoringTime,
    build_features,
    encode,
    infer_schema,
)
from medspa.retention.metrics import fit_logistic_curve
from medspa.retention.metrics import logit as _logit
from medspa.retention.metrics import sigmoid as _sigmoid

MODEL_KIND: Final = "noshow"
MAX_PLATT_SLOPE: Final = 10.0
_CONTEXT_COLUMNS: Final = (RECENT_RATE_COLUMN,)


@dataclass(frozen=True)
class NoShowConfig:
    """Hyper-parameters (chosen on an inner validation split of the training period, see docs/models.md)."""

    calibration_days: int = 5
    # A small clinic's last five days hold a handful of misses, too few to fit the calibration map (its
    # slope then comes out at random, even negative): the slice grows, a day at a time, until it holds
    # this many, but never past half the training days. Brazil's five days hold thousands.
    min_calibration_no_shows: int = 40
    n_estimators: int = 300
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 200
    colsample_bytree: float = 0.5
    subsample: float = 0.8
    seed: int = 7
    # One thread: on the 2-core build machine, shared with other jobs, n_jobs=2 measured 6-20x slower
    # (OpenMP threads spin while the other core is busy); see docs/models.md.
    n_jobs: int = 1
    anchor_base_rate: bool = True
    # The shift needs a recent rate worth trusting: below this many attended or missed appointments a
    # week, the recent rate's noise (measured with the 7-day rate: about 0.3 in log-odds at 150 a week)
    # swamps the drift it would correct, and shifting each day by it scrambles the ranking across days.
    # Brazil has ~28,000 a week.
    min_weekly_rows_to_anchor: int = 1000
    refit_on_whole_period: bool = True
    scoring: ScoringTime = ScoringTime.APPOINTMENT_DAY

    def lightgbm_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "subsample_freq": 1,
            "colsample_bytree": self.colsample_bytree,
            "cat_smooth": 50,
            "min_data_per_group": 200,
            "n_estimators": self.n_estimators,
            "random_state": self.seed,
            "n_jobs": self.n_jobs,
            "verbose": -1,
        }


def noshow_config_for(labelled_rows: int) -> NoShowConfig:
    """The settings for a history of this many labelled training rows: those chosen on the Brazil data
    set, with the minimum leaf size scaled to the history (200 rows per leaf leaves a clinic's first
    thousand appointments one or two leaves, or none once rows are subsampled): a tenth of the labelled
    rows, between 50 and 200 (below 50 the booster over-fits a thousand rows and its calibration
    diverges, measured on a simulated clinic), and under 500 rows a tenth of them but at least 10 (with
    50 a history of 150 rows, about 70 of them before the calibration days, cannot split at all and
    scores everyone alike). From 2,000 rows on, the settings are Brazil's own."""
    if labelled_rows < 500:
        return NoShowConfig(min_child_samples=max(10, labelled_rows // 10))
    return NoShowConfig(min_child_samples=max(50, min(200, labelled_rows // 10)))


@dataclass
class NoShowModel:
    """A trained no-show model: booster text, Platt coefficients, anchoring reference and provenance."""

    schema: FeatureSchema
    booster_text: str
    platt_slope: float
    platt_intercept: float
    reference_rate: float | None
    config: NoShowConfig
    training_window: dict[str, str]
    data_sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)
    # "platt", or why the Platt map was refused and the level-only map used (`fit_calibration`).
    calibration_method: str = "platt"
    _booster: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def booster(self) -> Any:
        """The LightGBM booster, parsed from its text once (the model is shared by threads)."""
        with self._lock:
            if self._booster is None:
                import lightgbm as lgb

                self._booster = lgb.Booster(model_str=self.booster_text)
            return self._booster

    def raw_scores(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Uncalibrated booster probabilities for a feature frame from `build_features`."""
        matrix = encode(features, self.schema)
        return np.asarray(self.booster.predict(matrix, num_threads=self.config.n_jobs), dtype=np.float64)

    def calibrate(self, scores: npt.ArrayLike, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Calibrated P(no-show) from raw scores, with the base-rate shift when it is configured."""
        z = self.platt_slope * _logit(scores) + self.platt_intercept
        if self.config.anchor_base_rate and self.reference_rate is not None:
            recent = features[RECENT_RATE_COLUMN].to_numpy(dtype=float)
            shift = np.where(
                np.isnan(recent), 0.0, _logit(np.nan_to_num(recent, nan=0.5)) - _logit(self.reference_rate)
            )
            z = z + shift
        return _sigmoid(z)

    def predict_features(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Calibrated P(no-show) for rows of a feature frame."""
        return self.calibrate(self.raw_scores(features), features)

    def predict(self, history: pd.DataFrame, rows: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        """Calibrated P(no-show) for `history` rows selected by the boolean mask `rows` (default: all)."""
        features = build_features(history, self.config.scoring)
        if rows is not None:
            features = features[np.asarray(rows, dtype=bool)]
        return self.predict_features(features)

    def to_payload(self) -> dict[str, Any]:
        return {
            "kind": MODEL_KIND,
            "feature_version": FEATURE_VERSION,
            "schema": self.schema.to_json(),
            "booster": self.booster_text,
            "platt": {
                "slope": self.platt_slope,
                "intercept": self.platt_intercept,
                "method": self.calibration_method,
            },
            "reference_rate": self.reference_rate,
            "config": {
                k: (v.value if isinstance(v, ScoringTime) else v) for k, v in self.config.__dict__.items()
            },
            "training_window": self.training_window,
            "data_sha256": self.data_sha256,
            "metrics": self.metrics,
        }

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> NoShowModel:
        if payload.get("kind") != MODEL_KIND:
            raise ValueError(f"not a no-show model: kind={payload.get('kind')!r}")
        if payload.get("feature_version") != FEATURE_VERSION:
            raise ValueError(
                f"model built with feature version {payload.get('feature_version')}, "
                f"this code has {FEATURE_VERSION}"
            )
        config = dict(payload["config"])
        config["scoring"] = ScoringTime(config["scoring"])
        return NoShowModel(
            schema=FeatureSchema.from_json(payload["schema"]),
            booster_text=str(payload["booster"]),
            platt_slope=float(payload["platt"]["slope"]),
            platt_intercept=float(payload["platt"]["intercept"]),
            calibration_method=str(payload["platt"].get("method", "platt")),
            reference_rate=None if payload["reference_rate"] is None else float(payload["reference_rate"]),
            config=NoShowConfig(**config),
            training_window=dict(payload["training_window"]),
            data_sha256=str(payload["data_sha256"]),
            metrics=dict(payload.get("metrics", {})),
        )


def frame_sha256(history: pd.DataFrame) -> str:
    """A content hash of a data frame (row order and columns included), for provenance."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in history.columns]).encode())
    digest.update(pd.util.hash_pandas_object(history.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()


history_sha256 = frame_sha256


def labelled_mask(history: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows whose outcome is attended or missed (cancellations are history, not training targets)."""
    return np.asarray(history["status"].isin(list(LABELLED)).to_numpy(), dtype=bool)


def no_show_labels(history: pd.DataFrame) -> npt.NDArray[np.int64]:
    return np.asarray((history["status"] == MISSED).to_numpy(), dtype=np.int64)


def train_noshow(
    history: pd.DataFrame,
    *,
    train_end: date,
    config: NoShowConfig | None = None,
    features: pd.DataFrame | None = None,
) -> NoShowModel:
    """Train on labelled appointments starting before `train_end` (exclusive).

    `features` may be passed when already built from the same `history` (same index). Raises
    `ValueError` if the training period has fewer than `calibration_days + 1` distinct days or one class.
    """
    import lightgbm as lgb

    start_day = history["starts_at"].dt.normalize()
    in_training = labelled_mask(history) & (start_day < pd.Timestamp(train_end)).to_numpy()
    config = config or noshow_config_for(int(in_training.sum()))
    if features is None:
        features = build_features(history, config.scoring)
    days = np.sort(start_day[in_training].unique())
    if len(days) <= config.calibration_days:
        raise ValueError(
            f"need more than {config.calibration_days} distinct training days before {train_end}, "
            f"got {len(days)}"
        )
    labels = no_show_labels(history)
    misses_per_day = (
        pd.Series(labels[in_training]).groupby(start_day[in_training].to_numpy()).sum().reindex(days)
    )
    calibration_days = config.calibration_days
    longest = max(config.calibration_days, len(days) // 2)
    while (
        calibration_days < longest
        and misses_per_day.iloc[-calibration_days:].sum() < config.min_calibration_no_shows
    ):
        calibration_days += 1
    calibration_start = pd.Timestamp(days[-calibration_days])
    fit_rows = in_training & (start_day < calibration_start).to_numpy()
    calibration_rows = in_training & ~fit_rows
    if len(set(labels[fit_rows].tolist())) < 2 or len(set(labels[calibration_rows].tolist())) < 2:
        raise ValueError("the fit and calibration slices each need both attended and missed appointments")
    model_features = features.drop(columns=list(_CONTEXT_COLUMNS))
    schema = infer_schema(model_features[in_training])
    matrix = encode(model_features, schema)
    classifier = lgb.LGBMClassifier(**config.lightgbm_params())
    classifier.fit(matrix[fit_rows], labels[fit_rows])
    scores = np.asarray(classifier.booster_.predict(matrix[calibration_rows]), dtype=float)
    slope, intercept, method = fit_calibration(scores, labels[calibration_rows])
    if config.refit_on_whole_period:
        # Same trees and settings on the whole training period: the calibration map was fitted on scores
        # the early booster gave to unseen, later appointments, and is reused for the refitted booster.
        classifier = lgb.LGBMClassifier(**config.lightgbm_params())
        classifier.fit(matrix[in_training], labels[in_training])
    booster_text = classifier.booster_.model_to_string()
    recent = features.loc[calibration_rows, RECENT_RATE_COLUMN].to_numpy(dtype=float)
    # The threshold is per calendar week (the 28-day window spans four), so count rows per calendar week of
    # the training span, closed days included.
    span_days = (pd.Timestamp(days[-1]) - pd.Timestamp(days[0])).days + 1
    weekly_rows = 7 * int(in_training.sum()) / span_days
    trusted = weekly_rows >= config.min_weekly_rows_to_anchor and np.isfinite(recent).any()
    reference = float(np.nanmean(recent)) if trusted else None
    window = {
        "train_start": str(start_day[in_training].min().date()),
        "calibration_start": str(calibration_start.date()),
        "train_end_exclusive": str(train_end),
        "fit_rows": str(int(fit_rows.sum())),
        "calibration_rows": str(int(calibration_rows.sum())),
    }
    return NoShowModel(
        schema=schema,
        booster_text=booster_text,
        platt_slope=slope,
        platt_intercept=intercept,
        calibration_method=method,
        reference_rate=reference,
        config=config,
        training_window=window,
        data_sha256=history_sha256(history[in_training]),
    )


def refit_noshow(
    model: NoShowModel, history: pd.DataFrame, *, train_end: date, features: pd.DataFrame | None = None
) -> NoShowModel:
    """`model` with its booster trained again, same settings, on every labelled appointment before
    `train_end` (exclusive); its calibration map and anchoring reference are kept, as when the booster
    is refitted on the whole training period (`refit_on_whole_period`). Outcomes arrive every day, and a
    booster that has seen the latest ones ranks the next day better (measured on inner folds,
    docs/models.md); the map, learnt once on days the first booster never saw, keeps the level."""
    import lightgbm as lgb

    config = model.config
    if features is None:
        features = build_features(history, config.scoring)
    start_day = history["starts_at"].dt.normalize()
    rows = labelled_mask(history) & (start_day < pd.Timestamp(train_end)).to_numpy()
    labels = no_show_labels(history)
    if len(set(labels[rows].tolist())) < 2:
        raise ValueError(f"no attended and missed appointments both before {train_end}")
    model_features = features.drop(columns=list(_CONTEXT_COLUMNS))
    schema = infer_schema(model_features[rows])
    classifier = lgb.LGBMClassifier(**config.lightgbm_params())
    classifier.fit(encode(model_features, schema)[rows], labels[rows])
    window = dict(model.training_window) | {
        "train_end_exclusive": str(train_end),
        "refit_rows": str(int(rows.sum())),
    }
    return replace(
        model,
        schema=schema,
        booster_text=classifier.booster_.model_to_string(),
        training_window=window,
        data_sha256=history_sha256(history[rows]),
        metrics={},
        _booster=None,
        _lock=threading.Lock(),
    )


def _fit_platt(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> tuple[float, float]:
    """Logistic regression of the label on logit(score), unregularized."""
    return fit_logistic_curve(_logit(scores), labels)


def fit_calibration(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> tuple[float, float, str]:
    """(slope, intercept, method) of the map from the booster's scores on the calibration days to
    P(no-show): z = slope * logit(score) + intercept.

    The Platt map when its slope is in (0, `MAX_PLATT_SLOPE`]. A slope outside it means the scores do
    not rank the calibration days' outcomes (a negative slope would reverse the booster's ranking; a huge
    one saturates every probability), so the level-only map is used instead: slope 1 and the intercept
    that makes the mean forecast equal the observed rate, which keeps the booster's ranking. The method
    says which, and why. Training and `models evaluate noshow` share this guard; a clinic's model is also
    refused when it trips (`serving.train_clinic_noshow`)."""
    from scipy.optimize import brentq

    try:
        slope, intercept = _fit_platt(scores, labels)
    except ValueError as error:
        reason = str(error)
    else:
        if math.isfinite(slope) and 0.0 < slope <= MAX_PLATT_SLOPE:
            return slope, intercept, "platt"
        reason = f"Platt slope {slope:.3g} outside (0, {MAX_PLATT_SLOPE:g}]"
    z = _logit(scores)
    rate = float(np.mean(labels))
    shift = brentq(lambda c: float(np.mean(_sigmoid(z + c))) - rate, -40.0, 40.0)
    return 1.0, float(shift), f"level only: {reason}"


@dataclass
class LogisticBaseline:
    """Logistic regression on standardized numeric features (median-imputed, with missing flags) and
    one-hot categorical features; probabilities straight from the regression."""

    schema: FeatureSchema
    pipeline: Any

    def predict_features(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        matrix = _baseline_matrix(features, self.schema)
        return np.asarray(self.pipeline.predict_proba(matrix)[:, 1], dtype=np.float64)


def _baseline_matrix(features: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    encoded = encode(features, schema)
    out = encoded[[*schema.numeric, *schema.frequency]].copy()
    for column in [*schema.numeric, *schema.frequency]:
        out[f"{column}__missing"] = out[column].isna().astype(float)
    for column in schema.categorical:
        out[column] = encoded[column].astype(object).where(encoded[column].notna(), "(missing)").astype(str)
    return out


def train_logistic_baseline(
    history: pd.DataFrame, features: pd.DataFrame, *, train_end: date, seed: int = 7
) -> LogisticBaseline:
    """Fit the baseline on every labelled appointment before `train_end` (no separate calibration)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    start_day = history["starts_at"].dt.normalize()
    rows = labelled_mask(history) & (start_day < pd.Timestamp(train_end)).to_numpy()
    model_features = features.drop(columns=list(_CONTEXT_COLUMNS))
    inferred = infer_schema(model_features[rows], max_levels=100)
    # A column never observed in training carries nothing a linear model can use (and cannot be imputed).
    observed = tuple(c for c in inferred.numeric if model_features.loc[rows, c].notna().any())
    schema = FeatureSchema(numeric=observed, categorical=inferred.categorical, frequency=inferred.frequency)
    matrix = _baseline_matrix(model_features, schema)
    numeric = [c for c in matrix.columns if c not in schema.categorical]
    transformer = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", min_frequency=50),
                list(schema.categorical),
            ),
        ]
    )
    pipeline = Pipeline(
        [("features", transformer), ("model", LogisticRegression(C=1.0, max_iter=2000, random_state=seed))]
    )
    pipeline.fit(matrix[rows], no_show_labels(history)[rows])
    return LogisticBaseline(schema=schema, pipeline=pipeline)
