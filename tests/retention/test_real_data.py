"""The leak guard on the real Brazil file: the classic leak lifts AUC above 0.9 and the guard names it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medspa.retention import metrics
from medspa.retention.features import (
    build_features,
    encode,
    find_booking_leaks,
    find_outcome_leaks,
    infer_schema,
)
from medspa.retention.formats import read_appointment_history
from medspa.retention.importers import import_noshow_brazil

REPO = Path(__file__).resolve().parents[2]
BRAZIL = REPO / ".." / "shared" / "data" / "noshow-brazil" / "KaggleV2-May-2016.csv"


def _leaky(history: pd.DataFrame) -> pd.DataFrame:
    """Per-patient no-show count over the whole file, the row's own outcome included (SOURCE.md's trap)."""
    features = build_features(history)
    missed = (history["status"] == "no_show").astype(float)
    features["patient_no_shows"] = missed.groupby(history["client_id"]).transform("sum")
    return features


@pytest.mark.slow
@pytest.mark.skipif(not BRAZIL.exists(), reason="the shared Brazil data set is not available here")
def test_classic_leak_on_brazil_is_caught(tmp_path: Path) -> None:
    # given the real file, imported, and a quick booster trained with the leaky column added
    import lightgbm as lgb

    import_noshow_brazil(BRAZIL, tmp_path / "history.csv")
    history = read_appointment_history(tmp_path / "history.csv").frame
    leaky = _leaky(history)
    labels = (history["status"] == "no_show").to_numpy(dtype=int)
    test = (history["starts_at"] >= "2016-05-25").to_numpy()
    matrix = encode(leaky, infer_schema(leaky))
    booster = lgb.LGBMClassifier(n_estimators=60, learning_rate=0.1, num_leaves=15, n_jobs=1, verbose=-1)
    booster.fit(matrix[~test], labels[~test])
    auc_with_leak = metrics.roc_auc(booster.booster_.predict(matrix[test]), labels[test])
    # then the leak lifts the test AUC above 0.9, as SOURCE.md warns (the honest model is near 0.74)
    assert auc_with_leak > 0.9
    # and the guard names that column and nothing else, while the real feature module passes
    sample = history[history["starts_at"] < "2016-05-10"]
    assert find_outcome_leaks(sample, _leaky) == ["patient_no_shows"]
    assert find_outcome_leaks(sample) == []
    assert find_booking_leaks(sample) == []
    # and every real feature is leak-free enough that none alone ranks test rows above 0.75
    features = build_features(history)
    schema = infer_schema(features)
    encoded = encode(features[test], schema)
    single_aucs = [
        metrics.roc_auc(np.nan_to_num(encoded[c].to_numpy(dtype=float), nan=-1.0), labels[test])
        for c in schema.numeric
    ]
    best_single = max(max(a, 1 - a) for a in single_aucs if a == a)
    assert best_single < 0.75
