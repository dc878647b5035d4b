"""The ``leadrank`` console command: the library's commands plus serve, keys and demo.

The library commands live in :mod:`recommender.cli` (the library knows no web and no
database); this module adds the ones that need the HTTP service and its store.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from recommender.cli import app, fail, handle_errors

keys_app = typer.Typer(help="Manage API keys of the HTTP service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: LEADRANK_DATABASE_URL, else a SQLite file under "
        "LEADRANK_DATA_DIR or ./leadrank-data).",
    ),
]


@app.command()
@handle_errors
def serve(
    model: Annotated[
        Path | None,
        typer.Argument(metavar="MODEL", help="Model folder to serve (or set LEADRANK_MODEL_PATH)."),
    ] = None,
    db: DbOpt = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (or LEADRANK_HOST; default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (or LEADRANK_PORT; default 8000).")
    ] = None,
) -> None:
    """Serve the HTTP API (SQLite by default, PostgreSQL by URL).

    Every LEADRANK_* setting of the README applies; a command-line value wins over it.

    Example: leadrank serve ./model --db postgresql://user:pw@localhost/leadrank --port 8000
    """
    from service.cli_support import serve as run_serve

    run_serve(model, db, host, port, echo=lambda line: typer.echo(f"leadrank: {line}", err=True))


@keys_app.command("create")
@handle_errors
def keys_create(
    role: Annotated[str, typer.Option("--role", help="admin, router, marketer or rep:REP_ID.")],
    db: DbOpt = None,
) -> None:
    """Create an API key and print it as the last line of stdout (it is stored hashed).

    Example: leadrank keys create --role rep:R007
    """
    from service.cli_support import create_key, rep_warning

    try:
        key = create_key(role, db)
    except ValueError as exc:
        fail(str(exc))
    warning = rep_warning(role, db)
    if warning:
        typer.echo(warning, err=True)
    typer.echo(f"created a '{role}' key; it is shown only once:", err=True)
    typer.echo(key)


@app.command()
@handle_errors
def demo(
    folder: Annotated[
        Path, typer.Option(help="Where the demo data, model and database live (reused).")
    ] = Path("leadrank-demo"),
    leads: Annotated[
        int,
        typer.Option(
            help="Leads to simulate (20,000 give the per-rep model enough history to matter)."
        ),
    ] = 20000,
    reps: Annotated[int, typer.Option(help="Reps to simulate.")] = 12,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """The main job on the embedded default: simulate a team, train, create keys, serve.

    Prints the URL, one API key per role and three example curl lines, then serves on
    SQLite until Ctrl-C.

    Example: leadrank demo --port 8000
    """
    from service.cli_support import demo as run_demo

    run_demo(
        folder, host=host, port=port, n_leads=leads, n_reps=reps, echo=lambda line: typer.echo(line)
    )


def main() -> None:
    """Entry point of the ``leadrank`` console script."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="leadrank: %(message)s")
    app()


if __name__ == "__main__":
    main()
