"""Schemathesis over the whole OpenAPI document, on each database: every operation is called with
generated requests, valid and invalid, as the owner of a seeded clinic (so that some ids are real), and
no answer may be a server error, break the documented schema, or carry an undocumented status.

Seeded and derandomized, so a run is repeatable; bounded to a few minutes (`EXAMPLES`). For a larger
exploratory run that counts every failure: `python -m tests.fuzzing --examples 300`."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests import fuzzing

# Generated requests per operation and mode (valid, invalid): about 90 s on SQLite on a 2-core machine.
EXAMPLES = {"sqlite": 60, "postgresql": 45}


@pytest.mark.slow
@pytest.mark.fuzz
def test_every_operation_answers_as_documented_and_never_with_a_server_error(engine: Engine) -> None:
    failures: dict[str, dict[str, str]] = {}
    requests = 0
    for operation in fuzzing.operations(fuzzing.load_schema(engine)):
        outcome = fuzzing.run_operation(
            engine, operation, examples=EXAMPLES[engine.dialect.name], keep_going=False
        )
        requests += outcome.requests
        if outcome.failures:
            failures[operation.label] = outcome.failures
    assert requests > 1000
    report = "\n".join(
        f"{label}: {kind}\n    {example}"
        for label, kinds in failures.items()
        for kind, example in kinds.items()
    )
    assert not failures, report
