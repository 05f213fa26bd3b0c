"""CLI sub-apps: `medspa import ...` (history files in the portable formats) and `medspa models ...`.

Heavy libraries (pandas, LightGBM, scikit-learn, matplotlib) are imported inside the commands so that
`medspa --help` stays fast.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console

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
    from medspa.retention.formats import FormatError
    from medspa.retention.importers import import_noshow_brazil as run_import

    try:
        report = run_import(path, output, skip_bad_rows=skip_bad_rows)
    except FormatError as error:
        raise _fail(error) from None
    _print_import(report.rows_read, report.rows_written, report.skipped_rows, report.repairs, output)


@import_app.command("cdnow")
def import_cdnow(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CDNOW_master.txt"),
    output: Path = typer.Option(..., "-o", "--output", help="visit-transactions CSV to write"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
) -> None:
    """Convert the CDNOW purchase file to a visit-transactions CSV."""
    from medspa.retention.formats import FormatError
    from medspa.retention.importers import import_cdnow as run_import

    try:
        report = run_import(path, output, skip_bad_rows=skip_bad_rows)
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
        )
    except (FormatError, ValueError) as error:
        raise _fail(error) from None
    metrics = result["test"]["model"]
    if result["skipped_rows"]:
        console.print(f"skipped {result['skipped_rows']} bad row(s)", highlight=False)
    console.print(
        f"no-show: {int(metrics['rows'])} labelled test rows, ROC AUC {metrics['roc_auc']:.4f}, "
        f"PR AUC {metrics['pr_auc']:.4f}, Brier {metrics['brier']:.4f}, ECE {metrics['ece']:.4f}; "
        f"report {report}, plot {plot_path}",
        highlight=False,
    )


@evaluate_app.command("returns")
def evaluate_returns(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="visit-transactions CSV"),
    calibration_end: str = typer.Option(..., help="last day of the fitting period (YYYY-MM-DD, inclusive)"),
    holdout_end: str = typer.Option(..., help="last day of the holdout period (YYYY-MM-DD, inclusive)"),
    predictions: Path = typer.Option(..., help="CSV to write: client_id,expected_visits,probability_return"),
    report: Path = typer.Option(..., help="JSON report to write"),
    model: str = typer.Option(
        "auto", help="auto (chosen by an internal backtest), bgnbd, pareto_nbd or blend"
    ),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="drop unparseable rows and count them"),
) -> None:
    """Fit the return-time model up to CALIBRATION_END and predict each client's visits to HOLDOUT_END."""
    from medspa.retention.evaluation import evaluate_returns as run
    from medspa.retention.formats import FormatError

    if model not in {"auto", "bgnbd", "pareto_nbd", "blend"}:
        raise typer.BadParameter("expected auto, bgnbd, pareto_nbd or blend", param_hint="--model")
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
    chosen = result["holdout"][result["chosen_model"]]
    if result["skipped_rows"]:
        console.print(f"skipped {result['skipped_rows']} bad row(s)", highlight=False)
    console.print(
        f"returns ({result['chosen_model']}): {result['clients']} clients, aggregate error "
        f"{chosen['aggregate_error']:+.3f}, MAE {chosen['mae']:.3f}, ROC AUC {chosen['roc_auc']:.4f}; "
        f"report {report}",
        highlight=False,
    )


_REGISTRY_HELP = "model registry directory (default: $MEDSPA_MODEL_DIR or var/models)"


def _registry_root(registry: Path | None) -> Path:
    import os

    return registry or Path(os.environ.get("MEDSPA_MODEL_DIR", "var/models"))


@models_app.command("train")
def train(
    kind: str = typer.Argument(..., help="noshow (the return model is refitted per evaluation for now)"),
    history: Path = typer.Option(..., exists=True, dir_okay=False, help="appointment-history CSV"),
    train_end: str = typer.Option(..., help="train on appointments before this day (YYYY-MM-DD)"),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
    activate: bool = typer.Option(False, "--activate", help="make the new version the active one"),
) -> None:
    """Train a model and store it as a new version in the file registry."""
    if kind != "noshow":
        raise typer.BadParameter("only 'noshow' can be trained into the registry yet", param_hint="KIND")
    from medspa.retention.formats import FormatError, read_appointment_history
    from medspa.retention.noshow import train_noshow
    from medspa.retention.registry import FileRegistry

    end = _parse_day(train_end, "--train-end")
    try:
        frame = read_appointment_history(history).frame
        model = train_noshow(frame, train_end=end)
    except (FormatError, ValueError) as error:
        raise _fail(error) from None
    store = FileRegistry(_registry_root(registry))
    version = store.save(kind, model.to_payload())
    if activate:
        store.activate(kind, version)
    console.print(f"{kind} {version} stored{' and activated' if activate else ''}", highlight=False)
    typer.echo(version)


@models_app.command("list")
def list_models(
    kind: str = typer.Argument("noshow"),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
) -> None:
    """List the stored versions of a model kind (the active one is marked with *)."""
    from medspa.retention.registry import FileRegistry

    for info in FileRegistry(_registry_root(registry)).list(kind):
        marker = "*" if info.is_active else " "
        window = info.training_window.get("train_end_exclusive", "?")
        typer.echo(f"{marker} {info.version}  trained before {window}  sha256 {info.payload_sha256[:12]}")


@models_app.command("activate")
def activate_model(
    kind: str = typer.Argument(...),
    version: str = typer.Argument(...),
    registry: Path | None = typer.Option(None, help=_REGISTRY_HELP),
) -> None:
    """Make a stored version the active one (refused if its hash does not match)."""
    from medspa.retention.registry import ArtifactIntegrityError, FileRegistry, ModelNotFoundError

    try:
        FileRegistry(_registry_root(registry)).activate(kind, version)
    except (ArtifactIntegrityError, ModelNotFoundError, ValueError) as error:
        raise _fail(error) from None
    console.print(f"{kind} {version} is active", highlight=False)


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
    organization: str = typer.Option("demo", "--organization", help="organization slug"),
) -> None:
    """Finished appointments (completed, no-show, cancelled, late-cancelled) as `appointment-history`."""
    _export("history", output, organization)


@export_app.command("visit-transactions")
def export_visit_transactions(
    output: Path = typer.Option(..., "-o", "--output", dir_okay=False, help="CSV file to write"),
    organization: str = typer.Option("demo", "--organization", help="organization slug"),
) -> None:
    """Completed appointments as `visit-transactions` (client, local date, amount)."""
    _export("transactions", output, organization)
