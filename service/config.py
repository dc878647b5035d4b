"""The service's one settings object, read from ``LEADRANK_*`` environment variables."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from recommender.errors import DataError

DEFAULT_DATA_DIR = Path("leadrank-data")


def sqlite_url(data_dir: Path) -> str:
    """The SQLAlchemy URL of the embedded SQLite store: ``DATA_DIR/leadrank.db``."""
    return f"sqlite:///{(data_dir / 'leadrank.db').resolve()}"


class StoreSettings(BaseSettings):
    """Where the store is: ``LEADRANK_DATABASE_URL``, else SQLite under ``LEADRANK_DATA_DIR``.

    The part of :class:`Settings` that commands touching only the store read (``keys
    create``), so a bad value of a setting they do not use does not stop them. An
    empty variable counts as unset.

    Attributes:
        database_url: SQLAlchemy URL; ``None`` means SQLite under ``data_dir``.
        data_dir: folder of the embedded SQLite file.
    """

    model_config = SettingsConfigDict(env_prefix="LEADRANK_", extra="ignore", env_ignore_empty=True)

    database_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR

    def resolved_database_url(self) -> str:
        """``database_url``, or the SQLite file under ``data_dir`` when it is unset."""
        return self.database_url or sqlite_url(self.data_dir)


class Settings(StoreSettings):
    """Everything the service needs to start; each field is ``LEADRANK_<NAME>`` in the env.

    Attributes:
        database_url, data_dir: as in :class:`StoreSettings`.
        model_path: model folder loaded at start; ``None`` starts without a model (not ready).
        host, port: where ``leadrank serve`` listens.
        workers: uvicorn worker processes (``SO_REUSEPORT`` siblings via uvicorn).
        threads: most requests a worker runs at once in its thread pool (the handlers
            are CPU-bound under one GIL: more threads add switching, not throughput).
        max_body_bytes: larger request bodies are answered 413.
        max_items: most leads / outcomes / events / seeds in one request body.
        max_limit: largest ``limit`` / ``k`` a caller may ask for.
        key_cache_seconds: how long a verified API key is trusted without a database read.
        route_seed, route_explore, route_holdout: passed to ``ModelBundle.route``.
        route_linger_ms: under load, how long the route batcher waits for more concurrent
            requests before it runs the next batch (see ``service/batching.py``).
    """

    model_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=4, ge=1, le=1000)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_items: int = Field(default=5000, ge=1)
    max_limit: int = Field(default=1000, ge=1)
    key_cache_seconds: float = Field(default=30.0, ge=0.0)
    route_seed: int = 0
    route_explore: float = Field(default=0.0, ge=0.0, le=1.0)
    route_holdout: float = Field(default=0.0, ge=0.0, le=1.0)
    route_linger_ms: float = Field(default=1.0, ge=0.0, le=100.0)


S = TypeVar("S", bound=StoreSettings)


def load_settings(kind: type[S], given: dict[str, Any] | None = None) -> S:
    """``kind`` read from the environment, with ``given`` (command-line values) on top.

    Raises:
        DataError: a value does not validate; one line names each, as the user set it
            (``--port`` for a given value, ``LEADRANK_PORT`` for the environment's).
    """
    given = given or {}
    try:
        return kind(**given)
    except ValidationError as exc:
        raise DataError("; ".join(_problem(e, given) for e in exc.errors())) from None


def _problem(error: Any, given: Collection[str]) -> str:
    """One validation error of the settings in a user's words."""
    field = str(error["loc"][0]) if error["loc"] else "settings"
    name = f"--{field.replace('_', '-')}" if field in given else f"LEADRANK_{field.upper()}"
    return f"{name}={error['input']!r}: {error['msg']}"
