"""The import contracts in pyproject.toml check every module they name: these tests fail when a module
is added that a contract does not cover, so a contract never checks less than its name says."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "medspa"
DOMAINS = (
    "security",
    "resources",
    "catalog",
    "clients",
    "scheduling",
    "engagement",
    "retention",
    "integrations",
    "memberships",
)
# What other domains may use of a domain: its service and schemas (and, of security, who is acting, what
# they may do, the keys that seal PHI and the gate of automated actions).
PUBLIC = {"__init__", "service", "schemas"}
PUBLIC_OF = {"security": PUBLIC | {"actors", "gate", "keys", "permissions"}}


def _contracts() -> dict[str, dict[str, Any]]:
    document = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["name"]: c for c in document["tool"]["importlinter"]["contracts"]}


def _modules(package: Path) -> set[str]:
    """The package's direct modules and subpackages."""
    return {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_module_but_the_service_and_schemas_is_closed_to_other_domains(domain: str) -> None:
    contract = _contracts()[f"Other domains use {domain} only through its service and schemas"]
    internal = _modules(PACKAGE / domain) - PUBLIC_OF.get(domain, PUBLIC) - {"solver"}
    assert {f"medspa.{domain}.{m}" for m in internal} == set(contract["forbidden_modules"])
    assert set(contract["source_modules"]) == {f"medspa.{d}" for d in DOMAINS if d != domain}


def test_the_solver_may_import_nothing_of_medspa_outside_its_package() -> None:
    contract = _contracts()["The solver imports nothing of medspa outside its own package"]
    outside = {f"medspa.{m}" for m in _modules(PACKAGE) - {"__init__", "__main__", "scheduling"}}
    outside |= {f"medspa.scheduling.{m}" for m in _modules(PACKAGE / "scheduling") - {"__init__", "solver"}}
    assert set(contract["forbidden_modules"]) == outside


def test_no_domain_imports_the_web_api_or_cli_layers() -> None:
    contract = _contracts()["The domain never imports the web, API or CLI layers"]
    layers = {"medspa.app", "medspa.api", "medspa.cli", "medspa.cli_records", "medspa.web", "medspa.worker"}
    assert set(contract["forbidden_modules"]) == layers
    assert {f"medspa.{d}" for d in DOMAINS} <= set(contract["source_modules"])
    assert contract.get("ignore_imports") == ["medspa.*.routes -> medspa.api"]
    # Every top-level module is either a layer, a domain, or plumbing the domains may use.
    plumbing = {"medspa.kit", "medspa.config", "medspa.schema", "medspa.demo", "medspa.__init__"}
    everything = {f"medspa.{m}" for m in _modules(PACKAGE)}
    assert everything == layers | {f"medspa.{d}" for d in DOMAINS} | plumbing
