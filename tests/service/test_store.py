"""The store on SQLite and PostgreSQL: migrations, keys, capacity claims, atomic writes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select

from service.cli_support import create_key, default_db_url
from service.store import repo
from service.store.db import make_engine, migrate, read_transaction, write_transaction
from service.store.keys import hash_key, role_of
from service.store.models import ApiKey, Lead


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    yield engine
    engine.dispose()


def test_keys_are_stored_hashed_with_their_role(db_url: str, engine: Engine) -> None:
    secret = create_key("rep:R-9", db_url)
    with read_transaction(engine) as conn:
        assert role_of(conn, secret) == "rep:R-9"
        assert role_of(conn, secret + "x") is None
        stored = conn.execute(select(ApiKey.key_hash)).scalars().all()
    assert hash_key(secret) in stored and secret not in stored


@pytest.mark.parametrize("role", ["", "root", "rep:", "rep", "admin ", "rep:\x00"])
def test_create_key_rejects_unknown_roles(db_url: str, role: str) -> None:
    with pytest.raises(ValueError, match="role"):
        create_key(role, db_url)


def test_default_db_url_is_sqlite_under_the_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert default_db_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'leadrank.db'}"


def test_claims_never_exceed_capacity_under_concurrency(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("CAP-1", 5, True)])

    def claim(_: int) -> bool:
        with write_transaction(engine) as conn:
            return repo.claim_capacity(conn, "CAP-1", "2030-01-01")

    with ThreadPoolExecutor(8) as pool:
        won = sum(pool.map(claim, range(40)))
    assert won == 5
    with read_transaction(engine) as conn:
        assert repo.used_counts(conn, ["2030-01-01"])[("CAP-1", "2030-01-01")] == 5


def test_a_failing_write_leaves_nothing_behind(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("RB-1", 1, True)])
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        repo.claim_leads(conn, [("RB-LEAD", "2030-01-02", {"lead_id": "RB-LEAD"})])
        assert repo.claim_capacity(conn, "RB-1", "2030-01-02")
        raise RuntimeError("crash midway")
    with read_transaction(engine) as conn:
        leads = select(func.count()).select_from(Lead).where(Lead.lead_id == "RB-LEAD")
        assert conn.execute(leads).scalar_one() == 0
        assert repo.used_counts(conn, ["2030-01-02"]) == {}


def test_used_counts_can_leave_out_reps_without_a_daily_capacity(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("UC-1", 4, True), ("UC-2", None, True)])
        for rep in ("UC-1", "UC-2"):
            assert repo.claim_capacity(conn, rep, "2030-03-01")
    with read_transaction(engine) as conn:
        every = repo.used_counts(conn, ["2030-03-01"])
        limited = repo.used_counts(conn, ["2030-03-01"], limited_only=True)
    assert every == {("UC-1", "2030-03-01"): 1, ("UC-2", "2030-03-01"): 1}
    assert limited == {("UC-1", "2030-03-01"): 1}
