"""The store on SQLite and PostgreSQL: migrations, keys, capacity claims, atomic writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text

from service import routing
from service.cli_support import create_key, default_db_url, rep_warning
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


def test_migrations_build_exactly_the_models_schema(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.store.models import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_keys_are_stored_hashed_with_their_role(db_url: str, engine: Engine) -> None:
    secret = create_key("rep:R-9", db_url)
    with read_transaction(engine) as conn:
        assert role_of(conn, secret) == "rep:R-9"
        assert role_of(conn, secret + "x") is None
        stored = conn.execute(select(ApiKey.key_hash)).scalars().all()
    assert hash_key(secret) in stored and secret not in stored


def test_a_rep_key_for_a_rep_the_store_does_not_know_warns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = default_db_url(tmp_path)  # a store of its own: the shared one knows other reps
    assert rep_warning("rep:R-TYPO", url) is None  # no reps known yet: nothing to say
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("R-1", 5, True), ("R-2", None, True)])
    engine.dispose()
    warning = rep_warning("rep:R-TYPO", url)
    assert warning is not None and "R-TYPO" in warning and "2 reps" in warning
    assert rep_warning("rep:R-1", url) is None
    assert rep_warning("router", url) is None


@pytest.mark.parametrize("role", ["", "root", "rep:", "rep", "admin ", "rep:\x00"])
def test_create_key_rejects_unknown_roles(db_url: str, role: str) -> None:
    with pytest.raises(ValueError, match="role"):
        create_key(role, db_url)


def test_default_db_url_is_sqlite_under_the_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert default_db_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'leadrank.db'}"


def test_claims_never_exceed_capacity_under_concurrency(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("CAP-1", 5, True)])

    def claim(k: int) -> bool:
        rows = _claim_batch(engine, [_plan(f"CAP-L{k}", "2030-01-01", "CAP-1")], last=True)
        return rows[0]["rep_id"] == "CAP-1"

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
        routing._serialise_route_writes(conn)
        plan = _plan("RB-LEAD", "2030-01-02", "RB-1")
        assert routing._claim_batch(conn, [plan], "v1", last=True)[0]["rep_id"] == "RB-1"
        raise RuntimeError("crash midway")
    with read_transaction(engine) as conn:
        leads = select(func.count()).select_from(Lead).where(Lead.lead_id == "RB-LEAD")
        assert conn.execute(leads).scalar_one() == 0
        assert repo.used_counts(conn, ["2030-01-02"]) == {}


def test_used_counts_can_leave_out_reps_without_a_daily_capacity(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("UC-1", 4, True), ("UC-2", None, True)])
        repo.add_load(conn, {("UC-1", "2030-03-01"): 1, ("UC-2", "2030-03-01"): 1})
    with read_transaction(engine) as conn:
        every = repo.used_counts(conn, ["2030-03-01"])
        limited = repo.used_counts(conn, ["2030-03-01"], room_below=10**9)
    assert every == {("UC-1", "2030-03-01"): 1, ("UC-2", "2030-03-01"): 1}
    assert limited == {("UC-1", "2030-03-01"): 1}
    # UC-1 has 3 leads of room: a batch of 3 cannot fill it, one of 4 can.
    with read_transaction(engine) as conn:
        assert repo.used_counts(conn, ["2030-03-01"], room_below=3) == {}
        assert repo.used_counts(conn, ["2030-03-01"], room_below=4) == limited
        twice = ["2030-03-01", "2030-03-02", "2030-03-01"]  # a day named twice counts once
        assert repo.used_counts(conn, twice, room_below=4) == limited


def _plan(lead: str, day: str, rep: str | None, *alternatives: str) -> dict[str, Any]:
    """A plan row as ``ModelBundle.route`` answers it (probabilities made up)."""
    return {
        "lead_id": lead,
        "day": day,
        "rep_id": rep,
        "probability": 0.5,
        "policy": "greedy",
        "propensity": 1.0,
        "reason": None,
        "alternatives": [{"rep_id": a, "probability": 0.25} for a in alternatives],
    }


def _claim_batch(engine: Engine, plans: list[dict[str, Any]], *, last: bool) -> list[Any]:
    """Claim ``plans`` in one route write transaction, as ``routing._store`` does."""
    with write_transaction(engine) as conn:
        routing._serialise_route_writes(conn)
        return routing._claim_batch(conn, plans, "v1", last=last)


def test_batch_claim_takes_alternatives_in_order_and_counts_its_own_leads(
    engine: Engine,
) -> None:
    day, other = "2030-04-01", "2030-04-02"
    with write_transaction(engine) as conn:
        repo.sync_reps(
            conn,
            [("BA-1", 3, True), ("BA-2", 1, True), ("BA-3", None, True), ("BA-4", None, False)],
        )
        repo.add_load(conn, {("BA-1", day): 1})  # one lead taken before this batch
    plans = [_plan(f"BA-L{k}", day, "BA-1", "BA-4", "NOT-A-REP", "BA-2", "BA-3") for k in range(5)]
    plans += [_plan("BA-N", day, None, "BA-2"), _plan("BA-D", other, "BA-2")]
    rows = _claim_batch(engine, plans, last=False)
    assert [r["lead_id"] for r in rows] == [p["lead_id"] for p in plans]
    assert [r["rep_id"] for r in rows] == ["BA-1", "BA-1", "BA-2", "BA-3", "BA-3", None, "BA-2"]
    assert [r["probability"] for r in rows[:5]] == [0.5, 0.5, 0.25, 0.25, 0.25]
    fell_back = "BA-1 reached its capacity first; next best rep"
    assert [r["reason"] for r in rows[:5]] == [None, None, fell_back, fell_back, fell_back]
    assert rows[5]["policy"] == "none" and rows[5]["reason"] == "no active rep with capacity"
    assert rows[6]["reason"] is None and rows[6]["day"] == other
    with read_transaction(engine) as conn:
        assert repo.used_counts(conn, [day, other]) == {
            ("BA-1", day): 3,
            ("BA-2", day): 1,
            ("BA-3", day): 2,
            ("BA-2", other): 1,
        }


def test_batch_claim_with_every_candidate_full_plans_again_or_stays_unassigned(
    engine: Engine,
) -> None:
    day = "2030-04-03"
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("BF-1", 1, True), ("BF-2", 1, True)])
    plans = [_plan("BF-L1", day, "BF-1", "BF-2"), _plan("BF-L2", day, "BF-1", "BF-2")]
    plans.append(_plan("BF-L3", day, "BF-2", "BF-1"))
    with pytest.raises(routing._Contended):
        _claim_batch(engine, plans, last=False)
    with read_transaction(engine) as conn:
        assert repo.used_counts(conn, [day]) == {}  # the whole batch rolled back
    rows = _claim_batch(engine, plans, last=True)
    assert [r["rep_id"] for r in rows] == ["BF-1", "BF-2", None]
    assert rows[2]["policy"] == "none"
    assert rows[2]["reason"] == "every candidate rep reached its capacity for the day"
    assert rows[2]["alternatives"] == [{"rep_id": "BF-1", "probability": 0.25}]
    with read_transaction(engine) as conn:
        assert repo.used_counts(conn, [day]) == {("BF-1", day): 1, ("BF-2", day): 1}


def test_batch_claim_runs_the_same_statements_for_one_lead_or_many(engine: Engine) -> None:
    day = "2030-04-04"
    reps = [(f"BS-{k}", None if k % 2 else 50, True) for k in range(10)]
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, reps)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sizes = []
    for n in (1, 40):
        plans = [_plan(f"BS-{n}-{k}", day, f"BS-{k % 10}", f"BS-{(k + 1) % 10}") for k in range(n)]
        event.listen(engine, "before_cursor_execute", count)
        try:
            statements.clear()
            _claim_batch(engine, plans, last=False)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        sizes.append(len(statements))
    assert sizes[0] == sizes[1] <= 4  # BEGIN, the route lock on PostgreSQL, read, upsert


def test_concurrent_batch_claims_and_rep_updates_never_overfill(engine: Engine) -> None:
    day = "2030-04-05"
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("CB-1", 5, True), ("CB-2", 4, True), ("CB-3", 1, True)])

    def claim(k: int) -> list[str | None]:
        plans = [_plan(f"CB-L{k}-{j}", day, "CB-1", "CB-2", "CB-3") for j in range(3)]
        return [r["rep_id"] for r in _claim_batch(engine, plans, last=True)]

    def flip(k: int) -> None:
        with write_transaction(engine) as conn:
            assert repo.update_rep(conn, "CB-3", 1, bool(k % 2))

    with ThreadPoolExecutor(8) as pool:
        flips = pool.map(flip, range(20))
        given = [rep for reps in pool.map(claim, range(24)) for rep in reps]
        list(flips)
    assert given.count("CB-1") == 5 and given.count("CB-2") == 4
    assert given.count("CB-3") <= 1
    with read_transaction(engine) as conn:
        used = repo.used_counts(conn, [day])
    assert used[("CB-1", day)] == 5 and used[("CB-2", day)] == 4
    assert used.get(("CB-3", day), 0) == given.count("CB-3")


def test_batch_claim_reads_a_rep_update_committed_while_it_waited(engine: Engine) -> None:
    """A capacity cut that commits while a claim waits is the capacity the claim obeys.

    On PostgreSQL (READ COMMITTED) a plain read would see the old capacity from its
    snapshot and overfill; the claim's ``FOR SHARE`` waits for the update instead.
    """
    day = "2030-04-06"
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("PW-1", 5, True)])

    def waiting() -> bool:
        if engine.dialect.name != "postgresql":
            return False  # SQLite: the claim waits for the single writer
        with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            return bool(conn.execute(text(query)).scalar_one() > 0)

    with ThreadPoolExecutor(1) as pool, write_transaction(engine) as conn:
        assert repo.update_rep(conn, "PW-1", 0, True)
        pending = pool.submit(_claim_batch, engine, [_plan("PW-L", day, "PW-1")], last=True)
        deadline = time.monotonic() + (5.0 if engine.dialect.name == "postgresql" else 0.3)
        while not pending.done() and not waiting() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [r["rep_id"] for r in pending.result()] == [None]
    with read_transaction(engine) as conn:
        assert repo.used_counts(conn, [day]) == {}


def test_route_writes_read_back_as_sqlalchemy_stores_them(engine: Engine) -> None:
    """Leads, assignments, counters and events written by the route batch statements (on
    SQLite through the driver's cursor) read back through the models as typed values."""
    from datetime import datetime

    from service.store.models import Assignment, EventRow

    record = {"lead_id": "RW-1", "note": 'é \u2028 "quoted"', "n": 3, "x": None}
    alternatives = [{"rep_id": "RW-B", "probability": 0.25}]
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, [("RW-A", 5, True), ("RW-B", None, True)])
        assert repo.claim_leads(conn, [("RW-1", "2031-01-01", record)]) == {"RW-1"}
        assert repo.claim_leads(conn, [("RW-1", "2031-01-01", record)]) == set()
        repo.insert_assignments(
            conn,
            [
                {
                    "lead_id": "RW-1",
                    "rep_id": "RW-A",
                    "day": "2031-01-01",
                    "probability": 0.5,
                    "policy": "model",
                    "propensity": 1.0,
                    "reason": None,
                    "alternatives": alternatives,
                    "model_version": "v",
                }
            ],
        )
        repo.add_load(conn, {("RW-A", "2031-01-01"): 2})
        repo.add_load(conn, {("RW-A", "2031-01-01"): 1})
        repo.insert_events(
            conn,
            [{"lead_id": "RW-1", "event": "web", "at": datetime(2031, 1, 1, 9), "weight": None}],
        )
    with read_transaction(engine) as conn:
        lead = conn.execute(select(Lead).where(Lead.lead_id == "RW-1")).one()
        assert lead.record == record and isinstance(lead.received_at, datetime)
        row = conn.execute(select(Assignment).where(Assignment.lead_id == "RW-1")).one()
        assert row.alternatives == alternatives and isinstance(row.assigned_at, datetime)
        assert repo.assignments_of(conn, ["RW-1"])["RW-1"]["rep_id"] == "RW-A"
        assert repo.used_counts(conn, ["2031-01-01"]) == {("RW-A", "2031-01-01"): 3}
        assert repo.used_counts(conn, ["2031-01-01"], room_below=2) == {}  # 2 left of 5
        assert repo.used_counts(conn, ["2031-01-01"], room_below=3) == {("RW-A", "2031-01-01"): 3}
        states, used = repo.lock_capacity(conn, [("RW-A", "2031-01-01"), ("RW-B", "2031-01-01")])
        assert states == {"RW-A": (5, True), "RW-B": (None, True)}
        assert used == {("RW-A", "2031-01-01"): 3}
        events = repo.events_of(conn, ["RW-1", "nobody"])
        assert events == [("RW-1", "web", datetime(2031, 1, 1, 9), 1.0)]
        assert conn.execute(select(func.count()).select_from(EventRow)).scalar_one() >= 1


def test_a_plain_postgresql_url_uses_the_driver_leadrank_installs() -> None:
    # 'postgresql://' (as serve --help writes it) would make SQLAlchemy 2.1 load psycopg 3,
    # which leadrank does not install; the engine is built lazily, so no server is needed.
    engine = make_engine("postgresql://u:p@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg2"
    engine.dispose()
