"""Schemathesis over the whole OpenAPI document, on each database: every operation is called with
generated requests, valid and invalid, as the owner of a seeded clinic (so that some ids are real), and
no answer may be a server error, break the documented schema, or carry an undocumented status.

Seeded and derandomized, so a run is repeatable; bounded to a few minutes (`EXAMPLES`). For a larger
exploratory run that counts every failure: `python -m tests.fuzzing --examples 300`."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from medspa.security.actors import Role
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


# Per operation and mode, for each role and for another organization: the permissions and the walls
# between organizations, rather than the breadth of inputs (about 20 s per role on SQLite).
ROLE_EXAMPLES = {"sqlite": 5, "postgresql": 4}
WHO = [*(role.value for role in Role), "another organization"]


@pytest.mark.slow
@pytest.mark.fuzz
@pytest.mark.parametrize("who", WHO)
def test_every_role_and_another_organization_get_no_more_than_their_permissions(
    engine: Engine, who: str
) -> None:
    """Every operation as each role (and as another organization's owner): no server error, no answer
    beyond the documented ones, no success the permission matrix refuses the role, and no success that
    shows a record of another organization."""
    foreign = who == "another organization"
    seeded = fuzzing.seed_clinic(engine, Role.OWNER if foreign else Role(who), foreign=foreign)
    failures: dict[str, dict[str, str]] = {}
    requests = successes = 0
    for operation in fuzzing.operations(fuzzing.load_schema(engine)):
        outcome = fuzzing.run_operation(
            engine, operation, examples=ROLE_EXAMPLES[engine.dialect.name], keep_going=True, seeded=seeded
        )
        requests += outcome.requests
        successes += sum(n for status, n in outcome.statuses.items() if 200 <= status < 300)
        if outcome.failures:
            failures[operation.label] = outcome.failures
    assert requests > 200
    assert successes > 0  # the role's own permissions are used, not only refused
    report = "\n".join(
        f"{label}: {kind}\n    {example}"
        for label, kinds in failures.items()
        for kind, example in kinds.items()
    )
    assert not failures, report
