"""Engines, transactions and schema migrations for SQLite (embedded) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout; a write transaction there starts with
``BEGIN IMMEDIATE`` so writers queue up instead of failing half-way. PostgreSQL runs at
READ COMMITTED; route writes there take an advisory lock, and claiming capacity locks the
candidate rep rows ``FOR SHARE`` (see ``service/routing.py``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from recommender.errors import DataError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_BEGIN_OPTION = "leadrank_sqlite_begin"
_sqlite_write_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; a SQLite file's folder is created if missing.

    A plain ``postgresql://`` URL uses psycopg2, the driver leadrank installs.

    Raises:
        DataError: ``url`` is not a database URL, or names a database kind SQLAlchemy
            or the installed drivers do not know (bad input: the command line exits 2).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DataError(f"database URL {url!r}: not a URL like sqlite:///FILE") from None
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; we ship psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(parsed, pool_size=10, max_overflow=30, pool_pre_ping=True)
        except (ArgumentError, ModuleNotFoundError) as exc:  # unknown kind, or no driver
            shown = parsed.render_as_string(hide_password=True)
            raise DataError(
                f"database URL {shown!r}: {exc} (leadrank stores in SQLite or PostgreSQL)"
            ) from None
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=20
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Hand transaction control to SQLAlchemy's ``begin`` event; WAL; foreign keys."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """Emit ``BEGIN`` (reads) or ``BEGIN IMMEDIATE`` (write transactions)."""
    conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction meant to write: committed on exit, rolled back whole on any error.

    On SQLite it holds the database's write lock from its first statement, so two of
    them never interleave; on PostgreSQL row locks order the conflicting statements.
    """
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    # Writers of this process queue on a lock (first come, first served) rather than
    # in SQLite's busy handler, whose sleeping back-off made the slowest waits seconds.
    lock = _sqlite_write_locks.setdefault(engine, threading.Lock())
    with lock, engine.connect() as conn:
        conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for reads (a consistent snapshot on SQLite WAL)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def ping(engine: Engine) -> bool:
    """Whether the database answers ``SELECT 1``."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _alembic_config(conn: Connection) -> Config:
    """An Alembic config that runs the packaged migrations on ``conn``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is already there)."""
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()  # type: ignore[arg-type]
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
