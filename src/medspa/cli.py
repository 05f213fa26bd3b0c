"""The `medspa` command line (Typer + Rich): noun-verb commands over the same service functions."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="medspa: the operating system of a medical spa.", no_args_is_help=True)
console = Console()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
) -> None:
    """Serve the web app and the API."""
    import uvicorn

    from medspa.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


from medspa.retention.cli import import_app, models_app  # noqa: E402  (sub-apps registered after the core ones)

app.add_typer(import_app, name="import")
app.add_typer(models_app, name="models")


def main() -> None:
    app()
