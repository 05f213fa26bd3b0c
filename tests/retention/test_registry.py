"""The model registry (keyed MAC, atomic writes) and the model cache shared by threads."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medspa.cli import app
from medspa.kit import clock
from medspa.retention import registry as registry_module
from medspa.retention.features import build_features
from medspa.retention.noshow import NoShowConfig, NoShowModel, train_noshow
from medspa.retention.registry import (
    ArtifactIntegrityError,
    FileRegistry,
    ModelNotFoundError,
    canonical_sha256,
    key_file_for,
    model_key,
)
from medspa.retention.serving import ModelCache, registry_for
from tests.retention.factories import simulate_history
from tests.serving_models import noshow_payload, returns_payload

KEY = b"k" * 32


def test_model_round_trips_through_the_registry_and_an_edited_artifact_is_refused(tmp_path: Path) -> None:
    # given a trained model stored in the registry and activated
    history, _ = simulate_history(clients=1500, days=40)
    config = NoShowConfig(n_estimators=80, learning_rate=0.1, calibration_days=8, min_child_samples=20)
    model = train_noshow(history, train_end=date(2024, 4, 3), config=config)
    registry = FileRegistry(tmp_path, key=KEY)
    version = registry.save("noshow", model.to_payload(), now=datetime(2024, 4, 3, 12, 0, tzinfo=UTC))
    registry.activate("noshow", version)
    # when it is loaded back, then it predicts exactly as before
    loaded = NoShowModel.from_payload(registry.load("noshow"))
    features = build_features(history)
    np.testing.assert_array_equal(loaded.predict_features(features), model.predict_features(features))
    assert [(i.version, i.is_active) for i in registry.list("noshow")] == [(version, True)]
    assert version.startswith("20240403T120000Z-")
    # when the payload is edited and its plain hash recomputed (all that format 1 checked), then loading
    # and activating are refused: the MAC needs the key, which is not in the file
    path = tmp_path / "noshow" / f"{version}.json"
    document = json.loads(path.read_text())
    document["payload"]["platt"]["slope"] += 0.001
    document["payload_sha256"] = canonical_sha256(document["payload"])
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="MAC does not match"):
        registry.load("noshow", version)
    with pytest.raises(ArtifactIntegrityError):
        registry.activate("noshow", version)
    assert KEY.decode() not in path.read_text()


def test_an_artifact_signed_under_another_key_or_moved_or_unsigned_is_refused(tmp_path: Path) -> None:
    ours = FileRegistry(tmp_path / "ours", key=KEY)
    theirs = FileRegistry(tmp_path / "theirs", key=b"t" * 32)
    version = theirs.save("returns", returns_payload())
    # signed under another key
    (tmp_path / "ours" / "returns").mkdir(parents=True)
    source = tmp_path / "theirs" / "returns" / f"{version}.json"
    (tmp_path / "ours" / "returns" / f"{version}.json").write_text(source.read_text())
    with pytest.raises(ArtifactIntegrityError, match="MAC does not match"):
        ours.load("returns", version)
    # renamed to another version: the MAC covers the version it was saved as
    other = "20990101T000000Z-00000000"
    source.rename(source.with_name(f"{other}.json"))
    with pytest.raises(ArtifactIntegrityError, match=f"holds returns {version}"):
        theirs.load("returns", other)
    # an unsigned artifact of format 1
    unsigned = {"format": 1, "kind": "returns", "version": version, "payload": returns_payload()}
    (tmp_path / "theirs" / "returns" / f"{version}.json").write_text(json.dumps(unsigned))
    with pytest.raises(ArtifactIntegrityError, match="train the model again"):
        theirs.load("returns", version)


def test_the_key_lives_beside_the_model_directory_or_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(registry_module.KEY_ENVIRONMENT, raising=False)
    models = tmp_path / "models"
    key = model_key(models)
    path = key_file_for(models)
    assert path == tmp_path / "models.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert model_key(models) == key
    monkeypatch.setenv(registry_module.KEY_ENVIRONMENT, "s" * 40)
    assert model_key(models) == b"s" * 40
    monkeypatch.setenv(registry_module.KEY_ENVIRONMENT, "short")
    with pytest.raises(ValueError, match="at least 32 characters"):
        model_key(models)


def test_registry_without_an_active_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no active noshow model"):
        FileRegistry(tmp_path, key=KEY).load("noshow")
    assert FileRegistry(tmp_path, key=KEY).list("noshow") == []


def test_listing_names_a_file_that_is_not_an_artifact_and_goes_on(tmp_path: Path) -> None:
    # given two versions, the first made unreadable by hand
    registry = FileRegistry(tmp_path, key=KEY)
    first, second = (
        registry.save("returns", returns_payload(), now=datetime(2026, 1, day, tzinfo=UTC)) for day in (1, 2)
    )
    registry.activate("returns", second)
    (tmp_path / "returns" / f"{first}.json").write_text('{"payload": ')
    # when the versions are listed, through the registry and the command line
    infos = registry.list("returns")
    listed = CliRunner().invoke(app, ["models", "list", "returns", "--registry", str(tmp_path)])
    # then the broken one is named with its problem, and the active one is listed as before
    assert [(i.version, i.is_active, i.problem is None) for i in infos] == [
        (first, False, False),
        (second, True, True),
    ]
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"  {first}  unreadable: not JSON (")
    assert lines[1].startswith(f"* {second}  fitted to ")
    with pytest.raises(ArtifactIntegrityError, match="not JSON"):
        registry.load("returns", first)


def test_a_write_that_dies_midway_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an active version
    registry = FileRegistry(tmp_path, key=KEY)
    first = registry.save("returns", returns_payload(), now=datetime(2026, 1, 1, tzinfo=UTC))
    registry.activate("returns", first)
    second = registry.save("returns", returns_payload(), now=datetime(2026, 1, 2, tzinfo=UTC))

    # when the process dies between writing the new ACTIVE marker and renaming it into place
    def die(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        raise OSError("killed")

    monkeypatch.setattr(registry_module.os, "replace", die)
    with pytest.raises(OSError, match="killed"):
        registry.activate("returns", second)
    with pytest.raises(OSError, match="killed"):
        registry.save("returns", returns_payload(), now=datetime(2026, 1, 3, tzinfo=UTC))
    # then the marker still names the first version, no partial artifact is listed, nothing is left over
    assert registry.active_version("returns") == first
    assert [i.version for i in registry.list("returns")] == [first, second]
    assert sorted(p.name for p in (tmp_path / "returns").iterdir()) == sorted(
        ["ACTIVE", f"{first}.json", f"{second}.json"]
    )


def test_a_write_is_flushed_then_renamed_then_its_directory_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a registry whose file-system calls are recorded
    registry = FileRegistry(tmp_path, key=KEY)
    version = registry.save("returns", returns_payload(), now=datetime(2026, 1, 1, tzinfo=UTC))
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        calls.append("fsync directory" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync file")
        real_fsync(descriptor)

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        calls.append(f"rename to {Path(target).name}")
        real_replace(source, target)

    monkeypatch.setattr(registry_module.os, "fsync", fsync)
    monkeypatch.setattr(registry_module.os, "replace", replace)
    # when a version is activated
    registry.activate("returns", version)
    # then the marker's content reaches the disk before the rename, and the directory's entry after it
    assert calls == ["fsync file", "rename to ACTIVE", "fsync directory"]
    assert registry.active_version("returns") == version


def test_readers_never_see_a_partly_written_marker(tmp_path: Path) -> None:
    # given two versions, and a writer switching between them as fast as it can
    registry = FileRegistry(tmp_path, key=KEY)
    versions = [
        registry.save("returns", returns_payload(), now=datetime(2026, 1, day, tzinfo=UTC)) for day in (1, 2)
    ]
    registry.activate("returns", versions[0])
    stop = threading.Event()

    def switch() -> None:
        n = 0
        while not stop.is_set():
            registry.activate("returns", versions[n % 2])
            n += 1

    writer = threading.Thread(target=switch)
    writer.start()
    # when a reader reads the marker meanwhile
    try:
        seen = [registry.active_version("returns") for _ in range(2000)]
    finally:
        stop.set()
        writer.join()
    # then it always reads one of the two versions, whole
    assert set(seen) <= set(versions)


def test_the_model_cache_is_shared_by_threads_and_keeps_at_most_its_bound(tmp_path: Path) -> None:
    # given six organizations, each with an active no-show and return model saved under the test's clock,
    # and a cache of four
    test_clock = clock.FixedClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    organizations = [uuid.uuid4() for _ in range(6)]
    expected: dict[tuple[uuid.UUID, str], str] = {}
    with clock.using(test_clock):
        for organization in organizations:
            registry = registry_for(tmp_path, organization)
            for kind, payload in (("noshow", noshow_payload()), ("returns", returns_payload())):
                version = registry.save(kind, payload)
                registry.activate(kind, version)
                expected[organization, kind] = version
    assert all(version.startswith("20260302T093000Z-") for version in expected.values())
    cache = ModelCache(tmp_path, max_models=4)
    history, _ = simulate_history(clients=300, days=30)
    features = build_features(history)
    reference = NoShowModel.from_payload(noshow_payload()).predict_features(features)

    # when eight threads ask for every model in turn, and score with the no-show models they get
    def work(worker: int) -> list[tuple[uuid.UUID, str, str]]:
        seen = []
        with clock.using(test_clock):
            for step in range(60):
                organization = organizations[(worker + step) % len(organizations)]
                kind = ("noshow", "returns")[step % 2]
                active = cache.active(organization, kind)
                assert active is not None
                if kind == "noshow" and step % 10 == 0:
                    np.testing.assert_array_equal(active.model.predict_features(features), reference)
                seen.append((organization, kind, active.version))
        return seen

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [row for rows in pool.map(work, range(8)) for row in rows]
    # then every answer is the active version, and the cache never holds more than four models
    assert len(results) == 480
    assert all(version == expected[organization, kind] for organization, kind, version in results)
    assert len(cache) <= 4
    with pytest.raises(ValueError, match="at least one model"):
        ModelCache(tmp_path, max_models=0)
