"""CLI sub-apps: `medspa import ...` (history files in the portable formats) and `medspa models ...`.

Heavy libraries (pandas, LightGBM, scikit-learn, matplotlib) are imported inside the commands so that
`medspa --help` stays fast.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from medspa.kit.cli_options import organization_option

if TYPE_CHECKING:
    from medspa.retention.registry import FileRegistry

import_app = typer.Typer(
    help="Import appointment and visit history into the portable CSV formats.", no_args_is_help=True
)
models_app = typer.Typer(help="Train and evaluate the no-show and return-time models.", no_args_is_help=True)
evaluate_app = typer.Typer(
    help="Train on the past, predict a later period, and report metrics.", no_args_is_help=True
)
models_app.add_typer(evaluate_app, name="evaluate")
console = Console(stderr=True, soft_wrap=True)


def _parse_day(value: str, option: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007  (a calendar date)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=option) from None


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {error}", highlight=False, markup=True)
    return typer.Exit(code=2)


@import_app.command("noshow-brazil")
def import_noshow_brazil(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="KaggleV2-May-2016.csv"),
    output: Path = typer.Option(..., "-o", "--output", help="appointment-history CSV to write"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
) -> None:
    """Convert the Brazil no-show data set to an appointment-history CSV."""
    _run_import("import_noshow_brazil", path, output, skip_bad_rows)


@import_app.command("cdnow")
def import_cdnow(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CDNOW_master.txt"),
    output: Path = typer.Option(..., "-o", "--output", help="visit-transactions CSV to write"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
) -> None:
    """Convert the CDNOW purchase file to a visit-transactions CSV."""
    _run_import("import_cdnow", path, output, skip_bad_rows)


def _run_import(importer: str, path: Path, output: Path, skip_bad_rows: bool) -> None:
    """Run one of `retention.importers` (by name: imported only when the command runs) and report it."""
    from medspa.retention import importers
    from medspa.retention.formats import FormatError

    try:
        report = getattr(importers, importer)(path, output, skip_bad_rows=skip_bad_rows)
    except FormatError as error:
        raise _fail(error) from None
    _print_import(report.rows_read, report.rows_written, report.skipped_rows, report.repairs, output)


def _print_import(read: int, written: int, skipped: int, repairs: dict[str, int], output: Path) -> None:
    console.print(f"read {read} rows, wrote {written} to {output}", highlight=False)
    if skipped:
        console.print(f"skipped {skipped} bad row(s)", highlight=False)
    for repair, count in sorted(repairs.items()):
        console.print(f"repaired {count} row(s): {repair}", highlight=False)


@evaluate_app.command("noshow")
def evaluate_noshow(
    history: Path = typer.Option(..., exists=True, dir_okay=False, help="appointment-history CSV"),
    test_from: str = typer.Option(..., help="first test day (YYYY-MM-DD); training uses earlier days"),
    predictions: Path = typer.Option(..., help="CSV to write: appointment_id,probability per test row"),
    report: Path = typer.Option(..., help="JSON report to write (metrics, subgroups, training window)"),
    plot: Path | None = typer.Option(None, help="reliability plot PNG (default: beside the report)"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
    refit_daily: bool = typer.Option(
        True,
        "--refit-daily/--no-refit",
        help="score each test day with the booster refitted on the outcomes before it",
    ),
) -> None:
    """Train the no-show model on appointments before TEST_FROM, predict the rest, report metrics."""
    from medspa.retention.evaluation import evaluate_noshow as run
    from medspa.retention.formats import FormatError

    first_test_day = _parse_day(test_from, "--test-from")
    plot_path = plot or report.with_suffix(".png")
    try:
        result = run(
            history,
            test_from=first_test_day,
            predictions_path=predictions,
            report_path=report,
            plot_path=plot_path,
            skip_bad_rows=skip_bad_rows,
            refit_daily=refit_daily,
        )
    except (FormatError, ValueError) as error:
        raise _fail(error) from None
    metrics = result["test"]["model"]
    if result["skipped_rows"]:
        console.print(f"skipped {result['skipped_rows']} bad row(s)", highlight=False)
    if result["calibration"]["method"] != "platt":
        console.print(f"calibration: {result['calibration']['method']}", highlight=False)
    test = result["test"]
    if math.isnan(metrics["roc_auc"]):
        console.print("ROC AUC undefined: the test rows hold one outcome only", highlight=False)
    console.print(
        f"no-show: {int(metrics['rows'])} labelled test rows, ROC AUC {_figure(metrics['roc_auc'])}, "
        f"PR AUC {_figure(metrics['pr_auc'])}, Brier {metrics['brier']:.4f}, ECE {metrics['ece']:.4f} "
        f"(over {len(test['seeds'])} seeds: ROC AUC {_figure(test['roc_auc_mean_over_seeds'])}, "
        f"ECE {test['ece_mean_over_seeds']:.4f}); report {report}, plot {plot_path}",
        highlight=False,
    )


def _figure(value: float, spec: str = ".4f") -> str:
    """A metric in `spec`, or `undefined` when it is NaN (a ranking over one outcome only, an error
    relative to a total of zero)."""
    return "undefined" if math.isnan(value) else format(value, spec)


@evaluate_app.command("returns")
def evaluate_returns(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="visit-transactions CSV"),
    calibration_end: str = typer.Option(..., help="last day of the fitting period (YYYY-MM-DD, inclusive)"),
    holdout_end: str = typer.Option(..., help="last day of the holdout period (YYYY-MM-DD, inclusive)"),
    predictions: Path = typer.Option(..., help="CSV to write: client_id,expected_visits,probability_return"),
    report: Path = typer.Option(..., help="JSON report to write"),
    model: str = typer.Option(
        "auto",
        help="auto (chosen by a rolling backtest), bgnbd, pareto_nbd, pareto_nbd_scaled or boosted",
    ),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
) -> None:
    """Fit the return-time model up to CALIBRATION_END and predict each client's visits to HOLDOUT_END."""
    from medspa.retention.evaluation import evaluate_returns as run
    from medspa.retention.formats import FormatError
    from medspa.retention.return_models import CANDIDATES

    if model not in {"auto", *CANDIDATES}:
        raise typer.BadParameter(f"expected auto, {', '.join(CANDIDATES)}", param_hint="--model")
    calibration_day = _parse_day(calibration_end, "--calibration-end")
    holdout_day = _parse_day(holdout_end, "--holdout-end")
    if holdout_day <= calibration_day:
        raise _fail(ValueError("--holdout-end must be after --calibration-end"))
    try:
        result = run(
            transactions,
            calibration_end=calibration_day,
            holdout_end=holdout_day,
            predictions_path=predictions,
            report_path=report,
            model=model,
            skip_bad_rows=skip_bad_rows,
        )
    except (FormatError, ValueError) as error:
        raise _fail(error) from None
    chosen = result["holdout"]
    if result["skipped_rows"]:
        console.print(f"skipped {result['skipped_rows']} bad row(s)", highlight=False)
    for fallback in result["fallbacks"]:
        console.print(f"not {fallback['model']}: {fallback['reason']}", highlight=False)
    if result["selection"]["chosen_by"].startswith("fallback"):
        console.print(result["selection"]["chosen_by"], highlight=False)
    if math.isnan(chosen["aggregate_error"]):
        console.print("aggregate error undefined: the holdout holds no visit", highlight=False)
    if math.isnan(chosen["roc_auc"]):
        console.print("ROC AUC undefined: every client returned in the holdout, or none did", highlight=False)
    console.print(
        f"returns ({result['chosen_model']}): {result['clients']} clients, aggregate error "
        f"{_figure(chosen['aggregate_error'], '+.3f')}, Poisson deviance {chosen['poisson_deviance']:.3f}, "
        f"MAE {chosen['mae']:.3f}, ROC AUC {_figure(chosen['roc_auc'])}; report {report}",
        highlight=False,
    )


@evaluate_app.command("churn")
def evaluate_churn(
    data: Path = typer.Option(..., exists=True, dir_okay=False, help="client-survival CSV"),
    predictions: Path = typer.Option(
        ..., help="CSV to write: client_id,risk,survival_3,survival_6,survival_12 (out of fold)"
    ),
    report: Path = typer.Option(..., help="JSON report to write"),
    folds: int = typer.Option(5, min=2, help="cross-validation folds (by client)"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
) -> None:
    """Cross-validate Cox and boosted survival models of time to churn; write every client's out-of-fold
    risk and survival at 3, 6 and 12 units of tenure."""
    from medspa.retention.evaluation import evaluate_churn as run
    from medspa.retention.formats import FormatError

    try:
        result = run(
            data, predictions_path=predictions, report_path=report, folds=folds, skip_bad_rows=skip_bad_rows
        )
    except (FormatError, ValueError) as error:
        raise _fail(error) from None
    if result["skipped_rows"]:
        console.print(f"skipped {result['skipped_rows']} bad row(s)", highlight=False)
    for column, reason in result["refused_covariates"].items():
        console.print(f"refused {column}: {reason}", highlight=False)
    scores = result["selection"]["concordance"]
    console.print(
        f"churn ({result['chosen_model']}): {result['clients']} clients, {result['churned']} churned; "
        + ", ".join(f"{name} concordance {s['mean']:.3f}" for name, s in scores.items())
        + f"; report {report}",
        highlight=False,
    )


_REGISTRY_HELP = "model registry directory (default: $MEDSPA_MODEL_DIR, or models/ beside the SQLite file)"
_ORGANIZATION_HELP = (
    "organization slug: its own registry, trained on its live history, scores refreshed on activation"
)


def _registry_root(registry: Path | None) -> Path:
    from medspa.config import load_settings

    return registry or load_settings().model_dir


def _organization_id(slug: str) -> uuid.UUID:
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.security import service as security

    try:
        with unit_of_work(write=False) as session:
            return security.get_organization(session, slug=slug).id
    except MedspaError as error:
        raise _fail(error) from None


def _registry(registry: Path | None, organization: str | None) -> FileRegistry:
    """The organization's registry when one is named, else the offline one (models trained from files)."""
    from medspa.retention.registry import FileRegistry, model_key
    from medspa.retention.serving import registry_for

    root = _registry_root(registry)
    if organization:
        return registry_for(root, _organization_id(organization))
    return FileRegistry(root, key=model_key(root))


def _refresh(organization: str, registry: Path | None) -> None:
    from medspa.kit.db import default_engine
    from medspa.retention.scoring import refresh_scores
    from medspa.retention.serving import ModelCache

    with console.status(f"scoring {organization}'s bookings and clients..."):
        report = refresh_scores(
            default_engine(),
            organization_id=_organization_id(organization),
            cache=ModelCache(_registry_root(registry)),
            everything=True,
        )
    for error in report.errors:
        console.print(f"[red]refused:[/red] {error}", highlight=False)
    console.print(
        f"scored {report.appointments_scored} upcoming appointments (no-show {report.noshow_version}) and "
        f"{report.clients_scored} clients (returns {report.returns_version})",
        highlight=False,
    )


@models_app.command("train")
def train(
    kind: str = typer.Argument(..., help="noshow, returns or churn (churn: from the database only)"),
    organization: str | None = typer.Option(None, "--organization", help=_ORGANIZATION_HELP),
    history: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="appointment-history CSV (noshow; default: the live database)"
    ),
    transactions: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="visit-transactions CSV (returns; default: the live database)"
    ),
    train_end: str | None = typer.Option(
        None, help="train on days before this one (YYYY-MM-DD; default: the clinic's today)"
    ),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
    activate: bool = typer.Option(False, "--activate", help="make the new version the active one"),
) -> None:
    """Train a model and store it as a new version in the registry: from a file, or with --organization
    from that clinic's own history in the database (into its registry)."""
    from medspa.retention.churn import CHURN_KIND
    from medspa.retention.formats import FormatError, read_appointment_history, read_visit_transactions
    from medspa.retention.noshow import MODEL_KIND
    from medspa.retention.serving import RETURNS_KIND, train_clinic_noshow, train_returns

    if kind == CHURN_KIND:
        if organization is None:
            raise typer.BadParameter(
                "the churn model trains on a clinic's memberships", param_hint="--organization"
            )
        _train_from_database(
            kind,
            organization,
            _parse_day(train_end, "--train-end") if train_end else None,
            registry,
            activate,
        )
        return
    if kind not in {MODEL_KIND, RETURNS_KIND}:
        raise typer.BadParameter(f"expected {MODEL_KIND}, {RETURNS_KIND} or {CHURN_KIND}", param_hint="KIND")
    source = history if kind == MODEL_KIND else transactions
    if source is None and organization is None:
        option = "--history" if kind == MODEL_KIND else "--transactions"
        raise typer.BadParameter(f"give {option} or --organization", param_hint=option)
    end = _parse_day(train_end, "--train-end") if train_end else None
    if source is None:
        _train_from_database(kind, organization or "", end, registry, activate)
        return
    if end is None:
        raise typer.BadParameter("required when training from a file", param_hint="--train-end")
    try:
        if kind == MODEL_KIND:
            payload = train_clinic_noshow(read_appointment_history(source).frame, train_end=end).to_payload()
        else:
            frame = read_visit_transactions(source).frame
            payload = train_returns(frame, calibration_end=end - timedelta(days=1)).to_payload()
    except (FormatError, ValueError) as error:
        raise _fail(error) from None
    store = _registry(registry, organization)
    version = store.save(kind, payload)
    if activate:
        store.activate(kind, version)
    console.print(f"{kind} {version} stored{' and activated' if activate else ''}", highlight=False)
    if activate and organization:
        _refresh(organization, registry)
    typer.echo(version)


def _train_from_database(
    kind: str, organization: str, end: date | None, registry: Path | None, activate: bool
) -> None:
    from medspa.kit.db import default_engine
    from medspa.retention.scoring import train_models
    from medspa.retention.serving import ModelCache

    try:
        with console.status(f"training {kind} on {organization}'s history..."):
            versions = train_models(
                default_engine(),
                organization_id=_organization_id(organization),
                cache=ModelCache(_registry_root(registry)),
                kinds=[kind],
                train_end=end,
                activate=activate,
            )
    except ValueError as error:
        raise _fail(error) from None
    console.print(f"{kind} {versions[kind]} stored{' and activated' if activate else ''}", highlight=False)
    if activate:
        _refresh(organization, registry)
    typer.echo(versions[kind])


@models_app.command("list")
def list_models(
    kind: str = typer.Argument("noshow", help="noshow or returns"),
    organization: str | None = typer.Option(None, "--organization", help=_ORGANIZATION_HELP),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
) -> None:
    """List the stored versions of a model kind (the active one is marked with *), with the training
    window and the metrics stored beside them."""
    import json

    for info in _registry(registry, organization).list(kind):
        marker = "*" if info.is_active else " "
        if info.problem:
            typer.echo(f"{marker} {info.version}  unreadable: {info.problem}")
            continue
        window = info.training_window
        trained = (
            f"trained before {window['train_end_exclusive']}"
            if "train_end_exclusive" in window
            else f"fitted to {window.get('calibration_end', '?')}"
        )
        typer.echo(
            f"{marker} {info.version}  {trained}  sha256 {info.payload_sha256[:12]}  "
            f"metrics {json.dumps(info.metrics, sort_keys=True)}"
        )


@models_app.command("activate")
def activate_model(
    kind: str = typer.Argument(...),
    version: str = typer.Argument(...),
    organization: str | None = typer.Option(None, "--organization", help=_ORGANIZATION_HELP),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
) -> None:
    """Make a stored version the active one (refused if its MAC does not match); for an organization,
    its bookings and clients are scored again with it at once."""
    from medspa.retention.registry import ArtifactIntegrityError, ModelNotFoundError

    try:
        _registry(registry, organization).activate(kind, version)
    except (ArtifactIntegrityError, ModelNotFoundError, ValueError) as error:
        raise _fail(error) from None
    console.print(f"{kind} {version} is active", highlight=False)
    if organization:
        _refresh(organization, registry)


@models_app.command("refresh")
def refresh_models(
    organization: str = organization_option(short=False),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
) -> None:
    """Score every upcoming booking and every client of an organization now with its active models (the
    worker does this weekly and after each booking or visit)."""
    _refresh(organization, registry)


retention_app = typer.Typer(help="Clients' retention scores.", no_args_is_help=True)


@retention_app.command("show")
def show_retention(
    client: uuid.UUID = typer.Argument(..., help="client id"),
    organization: str = organization_option(short=False),
) -> None:
    """A client's retention score: lapse risk, return probability, expected visits and next visit."""
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.retention import service
    from medspa.security.actors import system_actor

    try:
        with unit_of_work(write=False) as session:
            actor = system_actor(_organization_id(organization), "cli")
            score = service.get_retention_score(session, actor=actor, client_id=client)
    except MedspaError as error:
        raise _fail(error) from None
    typer.echo(score.model_dump_json(indent=2))


export_app = typer.Typer(help="Export the live database to the portable CSV formats.", no_args_is_help=True)


def _export(kind: str, output: Path, organization: str) -> None:
    from medspa.kit.db import unit_of_work
    from medspa.kit.errors import MedspaError
    from medspa.retention import export
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    write = export.export_appointment_history if kind == "history" else export.export_visit_transactions
    try:
        with unit_of_work(write=False) as session:
            actor = system_actor(security.get_organization(session, slug=organization).id, "export")
            rows = write(session, actor=actor, path=output)
    except MedspaError as error:
        raise _fail(error) from error
    console.print(f"wrote {rows} rows to {output}")


@export_app.command("appointment-history")
def export_appointment_history(
    output: Path = typer.Option(..., "-o", "--output", dir_okay=False, help="CSV file to write"),
    organization: str = organization_option(short=False),
) -> None:
    """Finished appointments (completed, no-show, cancelled, late-cancelled) as `appointment-history`."""
    _export("history", output, organization)


@export_app.command("visit-transactions")
def export_visit_transactions(
    output: Path = typer.Option(..., "-o", "--output", dir_okay=False, help="CSV file to write"),
    organization: str = organization_option(short=False),
) -> None:
    """Completed appointments as `visit-transactions` (client, local date, amount)."""
    _export("transactions", output, organization)
