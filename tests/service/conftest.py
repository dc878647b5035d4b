"""Fixtures: a trained model (once), and a real uvicorn server per database backend.

The suite runs against SQLite always, and against PostgreSQL when
``LEADRANK_TEST_POSTGRES_URL`` is set (``.ci/postgres.sh`` prints one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData
from svc_helpers import Server, free_port, running

from service.cli_support import create_key
from service.config import Settings
from service.main import create_app
from service.store.db import make_engine

POSTGRES_ENV = "LEADRANK_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated team: 2,000 leads, 10 reps."""
    from recommender.data.simulate import simulate

    out = tmp_path_factory.mktemp("sim") / "data"
    simulate(out, n_leads=2000, n_reps=10, seed=3)
    return out


@pytest.fixture(scope="session")
def model_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder trained on :func:`data_dir`."""
    from recommender.pipeline import train

    out = tmp_path_factory.mktemp("model") / "model"
    train(data_dir, out=out)
    return out


def _reset_postgres(url: str) -> None:
    """Drop every table of the test database (a clean store for this session)."""
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh database URL for each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'leadrank.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (run .ci/postgres.sh to get one)")
    _reset_postgres(url)
    return url


@pytest.fixture(scope="session")
def server(db_url: str, model_dir: Path) -> Iterator[Server]:
    """uvicorn (uvloop + httptools) serving the app on a free loopback port, in a thread."""
    from recommender.pipeline import ModelBundle

    reps = [str(r) for r in ModelBundle.load(model_dir).reps["rep_id"]]
    settings = Settings(database_url=db_url, model_path=model_dir, key_cache_seconds=0.0)
    port = free_port()
    app = create_app(settings)
    with running(app, port, loop="uvloop", http="httptools", log_level="warning"):
        roles = ["admin", "router", "marketer", f"rep:{reps[0]}", f"rep:{reps[1]}"]
        keys = {role: create_key(role, db_url) for role in roles}
        keys["rep"], keys["other_rep"] = keys[f"rep:{reps[0]}"], keys[f"rep:{reps[1]}"]
        yield Server(f"http://127.0.0.1:{port}", db_url, model_dir, keys, reps)
