"""What ``leadrank serve``, ``leadrank keys create`` and ``leadrank demo`` call.

The CLI (``recommender/cli.py``) parses arguments and prints; these functions do the work.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from sqlalchemy import select

from service.config import Settings, StoreSettings, load_settings, sqlite_url
from service.store.db import make_engine, migrate, read_transaction, write_transaction
from service.store.keys import insert_key, validate_role
from service.store.models import Rep

if TYPE_CHECKING:
    from recommender.bundle import ModelBundle

DEMO_ROLES = ("admin", "router", "marketer")


def default_db_url(data_dir: Path | None = None) -> str:
    """The store when no ``--db`` is given.

    With ``data_dir``: the embedded store ``sqlite:///<data_dir>/leadrank.db``. Without:
    the settings' (``LEADRANK_DATABASE_URL``, else SQLite under ``LEADRANK_DATA_DIR``,
    default ``./leadrank-data``), so the command line and the environment agree.
    """
    if data_dir is not None:
        return sqlite_url(data_dir)
    return load_settings(StoreSettings).resolved_database_url()


def create_key(role: str, db_url: str | None) -> str:
    """Create an API key with ``role`` in the store at ``db_url`` and return its secret.

    The secret is shown only here; the store keeps its sha256. The schema is migrated
    first, so this works on a new database.

    Args:
        role: ``admin``, ``router``, ``marketer`` or ``rep:REP_ID``.
        db_url: SQLAlchemy URL; ``None`` means :func:`default_db_url`.

    Raises:
        ValueError: ``role`` is not one of the roles above.
    """
    validate_role(role)
    engine = make_engine(db_url or default_db_url())
    try:
        migrate(engine)
        with write_transaction(engine) as conn:
            return insert_key(conn, role)
    finally:
        engine.dispose()


def rep_warning(role: str, db_url: str | None) -> str | None:
    """A warning when ``role`` is ``rep:ID`` and the store knows reps, but not that one.

    The store learns its reps from the model it serves, so an empty store says nothing
    (the key may well be created before the first ``serve``). A typo in the rep id
    would otherwise give a key whose list is always empty, without a word.
    """
    if not role.startswith("rep:"):
        return None
    rep_id = role.removeprefix("rep:")
    engine = make_engine(db_url or default_db_url())
    try:
        migrate(engine)
        with read_transaction(engine) as conn:
            known = set(conn.execute(select(Rep.rep_id)).scalars())
    finally:
        engine.dispose()
    if not known or rep_id in known:
        return None
    return (
        f"warning: rep '{rep_id}' is not one of the {len(known)} reps this database knows "
        "(from the model it serves); the key will see an empty list unless the rep id "
        "is right and a model with that rep is loaded"
    )


def serve(
    model: Path | None,
    db_url: str | None,
    host: str | None = None,
    port: int | None = None,
    *,
    workers: int | None = None,
    log_level: str = "info",
    echo: Callable[[str], None] | None = None,
) -> None:
    """Serve the HTTP API until interrupted (uvloop + httptools).

    Each argument left ``None`` comes from :class:`~service.config.Settings` (the
    ``LEADRANK_*`` environment variables, else their defaults).

    Args:
        model: model folder to serve; ``None`` and no ``LEADRANK_MODEL_PATH`` starts
            without one (``/readyz`` is 503 until ``POST /v1/admin/reload``), which
            ``echo`` is told.
        db_url: SQLAlchemy URL; ``None`` means :func:`default_db_url`.
        host, port: where to listen.
        workers: uvicorn worker processes sharing the port (each loads the model).
            Keep uvloop for ``workers > 1``: uvicorn binds that listener itself with
            ``proto=0``, and the plain asyncio loop then leaves Nagle on for accepted
            connections (uvicorn issue 3149), which adds ~42 ms to every keep-alive
            request after the first; uvloop sets ``TCP_NODELAY`` regardless.

    Raises:
        recommender.errors.ModelFolderError: the folder is not a model folder (missing, no
            readable manifest: before the server starts), or (at startup) it is damaged.
    """
    given: dict[str, Any] = {
        "database_url": db_url,
        "model_path": model,
        "host": host,
        "port": port,
        "workers": workers,
    }
    settings = load_settings(Settings, {k: v for k, v in given.items() if v is not None})
    model = None if settings.model_path is None else settings.model_path.resolve()
    if model is not None:
        from recommender.artifacts import read_manifest

        read_manifest(model)  # a clear error and exit 2, not a server that fails to start
    elif echo is not None:
        echo(
            "no model folder given (argument or LEADRANK_MODEL_PATH): serving without a "
            "model; /readyz answers 503 until POST /v1/admin/reload"
        )
    url = settings.resolved_database_url()
    settings = settings.model_copy(update={"model_path": model, "database_url": url})
    host, port, workers = settings.host, settings.port, settings.workers
    engine = make_engine(url)
    try:
        migrate(engine)  # once, before any worker starts
    finally:
        engine.dispose()
    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": log_level,
        "timeout_graceful_shutdown": 10,
    }
    if workers == 1:
        from service.main import create_app

        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    os.environ["LEADRANK_DATABASE_URL"] = url
    if settings.model_path is not None:
        os.environ["LEADRANK_MODEL_PATH"] = str(settings.model_path)
    uvicorn.run("service.main:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]


def _demo_rep(bundle: ModelBundle, lead: dict[str, str]) -> str:
    """The rep the service will route ``lead`` to (so the third curl lists it)."""
    from service.routing import request_seed

    seed = request_seed(load_settings(Settings).route_seed, [lead["lead_id"]])
    plan = bundle.route(bundle.leads_from_records([lead]), seed=seed)
    chosen = plan["rep_id"].iloc[0] if len(plan) else None
    return str(chosen) if chosen is not None else str(bundle.reps["rep_id"].iloc[0])


def demo_lead(data: Path) -> dict[str, str]:
    """A new lead for the example requests: the first lead of ``data`` that was won (the
    first lead where none was), under a new id.

    A lead like one that converted shows what a score, a grade and its reasons look like;
    the first lead of a simulated team is as often a cold lead scored 0, grade D.
    """
    import csv

    won = None
    outcomes = data / "outcomes.csv"
    if outcomes.is_file():
        with outcomes.open(newline="", encoding="utf-8") as fh:
            won = next(
                (r["lead_id"] for r in csv.DictReader(fh) if r.get("outcome") == "won"), None
            )
    with (data / "leads.csv").open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh)
        first = next(rows)
        if won in (None, first["lead_id"]):
            row = first
        else:
            row = next((r for r in rows if r["lead_id"] == won), first)
    row = dict(row, lead_id="DEMO-0001")
    return {k: v for k, v in row.items() if v != ""}


def demo(
    data_dir: Path = Path("leadrank-demo"),
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    n_leads: int = 20000,
    n_reps: int = 12,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> None:
    """Simulate a team, train, create demo keys, print how to call the API, then serve.

    Writes ``data_dir/data`` (the dataset), ``data_dir/model`` and ``data_dir/leadrank.db``;
    reuses them when they exist. Prints the URL, one key per role and three curl lines.
    """
    from recommender.data.simulate import simulate
    from recommender.pipeline import train

    data_dir = Path(data_dir)
    data, model = data_dir / "data", data_dir / "model"
    if not (data / "leads.csv").is_file():
        echo(f"simulating {n_leads} leads and {n_reps} reps into {data} ...")
        simulate(data, n_leads=n_leads, n_reps=n_reps, seed=seed)
    if not (model / "manifest.json").is_file():
        echo(f"training into {model} ...")
        train(data, out=model)
    db_url = default_db_url(data_dir)
    keys = {role: create_key(role, db_url) for role in DEMO_ROLES}
    from recommender.pipeline import ModelBundle

    lead = demo_lead(data)
    rep = _demo_rep(ModelBundle.load(model), lead)
    keys[f"rep:{rep}"] = create_key(f"rep:{rep}", db_url)
    base = f"http://{host}:{port}"
    body = json.dumps({"leads": [lead]})
    auth = "Authorization: Bearer "
    echo(f"leadrank API: {base}  (docs: {base}/docs, store: {db_url})")
    for role, key in keys.items():
        echo(f"key {role}: {key}")
    echo("try:")
    echo(
        f"  curl -s -X POST {base}/v1/score -H {shlex.quote(auth + keys['marketer'])} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    echo(
        f"  curl -s -X POST {base}/v1/route -H {shlex.quote(auth + keys['router'])} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    echo(
        f"  curl -s {shlex.quote(f'{base}/v1/reps/{rep}/leads?limit=10')} "
        f"-H {shlex.quote(auth + keys[f'rep:{rep}'])}"
    )
    sys.stdout.flush()
    serve(model, db_url, host, port, workers=1)  # one process: the keys above, one store
