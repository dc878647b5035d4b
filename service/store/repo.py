"""Repository functions: every SQL statement the service runs, on a given connection.

The caller owns the transaction (``service.store.db.write_transaction`` or
``read_transaction``); nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from recommender.columns import Outcome
from service.store.models import (
    Assignment,
    EventRow,
    Lead,
    OutcomeRow,
    Rep,
    RepDayLoad,
    utcnow,
)


def _insert(conn: Connection, table: Any) -> Any:
    """A dialect ``INSERT`` that supports ``ON CONFLICT`` (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# SQLite: the statements of every route batch run on the driver's cursor, with their
# values converted here as SQLAlchemy's column types would (JSON text, DateTime text):
# SQLAlchemy's statement execution and per-row bind processing cost a 32-lead route
# batch more than SQLite's own work did (bench/bench_service.py, py-spy).
_SQLITE_ROWS = 200
"""Most rows per multi-row ``INSERT`` on SQLite (4 values each, far below its limit)."""


def _cursor(conn: Connection) -> Any:
    """A driver cursor on ``conn``'s connection (inside its transaction)."""
    return conn.connection.cursor()


def _sqlite_time(moment: datetime) -> str:
    """A naive datetime as SQLAlchemy's SQLite ``DateTime`` stores it."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}"
    )


def _from_sqlite_time(value: Any) -> datetime:
    """A stored SQLite ``DateTime`` text read back as a datetime (as SQLAlchemy does)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# Statements run on every route request, built once: building a statement and its cache
# key each time cost about as much as running it on SQLite.
_DIALECT_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_USED = select(RepDayLoad.rep_id, RepDayLoad.day, RepDayLoad.count).where(
    RepDayLoad.day.in_(bindparam("days", expanding=True))
)
# Counters of reps with a capacity, found through the (rep_id, day) primary key from the
# few limited reps: a join led SQLite to walk every counter of the batch's days instead,
# a cost that grew with the store (bench/bench_service.py --repeat 3: route throughput
# fell from one measurement to the next before, and holds steady this way).
_LIMITED = select(Rep.rep_id).where(Rep.capacity.is_not(None))
_CAPACITY_OF = select(Rep.capacity).where(Rep.rep_id == RepDayLoad.rep_id).scalar_subquery()
_USED_TIGHT = _USED.where(
    RepDayLoad.rep_id.in_(_LIMITED), RepDayLoad.count + bindparam("room") > _CAPACITY_OF
)
_STAMP = select(func.max(Rep.updated_at), func.count()).select_from(Rep)
_STAMP_SQLITE = "SELECT max(updated_at), count(*) FROM reps"
_USED_SQLITE = (
    "SELECT rep_id, day, count FROM rep_day_load WHERE day IN (SELECT value FROM json_each(?))"
)
# Driven by the days (their index), then each counter's rep: with a filter on the reps
# SQLite's planner chose to probe every capacitated rep on every day instead (1,000 reps
# x 27 days: 4.0 against 0.4 ms on the store of bench_service --capacity reps, 2026-11-23,
# timed by a scratch script, not committed).
_USED_TIGHT_SQLITE = (
    "SELECT l.rep_id, l.day, l.count FROM (SELECT DISTINCT value FROM json_each(?)) AS d"
    " CROSS JOIN rep_day_load AS l ON l.day = d.value"
    " CROSS JOIN reps AS r ON r.rep_id = l.rep_id"
    " WHERE r.capacity IS NOT NULL AND l.count + ? > r.capacity"
)

# Claiming capacity: every candidate rep's capacity and flag with its counters on the
# days it is a candidate for (a rep without such a counter comes once, with a NULL day).
_CAPACITY = (
    select(Rep.rep_id, Rep.capacity, Rep.active, RepDayLoad.day, RepDayLoad.count)
    .select_from(Rep)
    .outerjoin(
        RepDayLoad,
        and_(
            RepDayLoad.rep_id == Rep.rep_id,
            RepDayLoad.day.in_(bindparam("days", expanding=True)),  # the primary key's lookup
            tuple_(RepDayLoad.rep_id, RepDayLoad.day).in_(bindparam("pairs", expanding=True)),
        ),
    )
    .where(Rep.rep_id.in_(bindparam("reps", expanding=True)))
    .order_by(Rep.rep_id)
    .with_for_update(read=True, of=Rep)  # PostgreSQL: FOR SHARE OF reps; SQLite: nothing
)
# SQLite: the same rows driven by the wanted (rep_id, day) pairs themselves, one primary
# key lookup each, passed as one JSON array. The statement above looks up every
# (candidate rep, batch day) pair and filters them (a batch of 30 leads over 30 days:
# 3,600 lookups for 120 pairs), and SQLAlchemy renders its expanded lists on every call:
# 1.5 ms of a 30-lead route batch -> 0.35 ms (bench/bench_service.py, py-spy).
_CAPACITY_SQLITE = (
    "SELECT reps.rep_id, reps.capacity, reps.active, rep_day_load.day, rep_day_load.count "
    "FROM json_each(?) AS wanted "
    "JOIN reps ON reps.rep_id = json_extract(wanted.value, '$[0]') "
    "LEFT OUTER JOIN rep_day_load ON rep_day_load.rep_id = reps.rep_id "
    "AND rep_day_load.day = json_extract(wanted.value, '$[1]')"
)
_ADD_LOAD_SQLITE = (
    "INSERT INTO rep_day_load (rep_id, day, count) VALUES (?, ?, ?) "
    "ON CONFLICT (rep_id, day) DO UPDATE SET count = rep_day_load.count + excluded.count"
)
_ASSIGNMENT_COLUMNS = [c.name for c in Assignment.__table__.columns if c.name != "id"]
_INSERT_ASSIGNMENT_SQLITE = (
    f"INSERT INTO assignments ({', '.join(_ASSIGNMENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ASSIGNMENT_COLUMNS)})"
)
# psycopg2 runs an executemany row by row (a round trip each): PostgreSQL gets the rows
# as three arrays in one statement instead.
_ADD_LOAD_POSTGRES = text(
    "INSERT INTO rep_day_load (rep_id, day, count) "
    "SELECT * FROM unnest(CAST(:reps AS VARCHAR[]), CAST(:days AS VARCHAR[]), "
    "CAST(:counts AS INTEGER[])) "
    "ON CONFLICT (rep_id, day) DO UPDATE SET count = rep_day_load.count + excluded.count"
)
_NEW_LEADS = {
    name: make(Lead).on_conflict_do_nothing().returning(Lead.lead_id)
    for name, make in _DIALECT_INSERTS.items()
}
_EVENTS = select(EventRow.lead_id, EventRow.event, EventRow.at, EventRow.weight).where(
    EventRow.lead_id.in_(bindparam("ids", expanding=True))
)
_EVENTS_SQLITE = (
    "SELECT lead_id, event, at, weight FROM events "
    "WHERE lead_id IN (SELECT value FROM json_each(?))"
)


def sync_reps(conn: Connection, reps: Iterable[tuple[str, int | None, bool]]) -> None:
    """Add the model's reps ``(rep_id, capacity, active)`` the store does not know yet.

    Reps already stored keep their stored capacity and flag (the store wins once a rep
    is there, so changes made through the API survive a model reload).
    """
    rows = [{"rep_id": r, "capacity": c, "active": a, "updated_at": utcnow()} for r, c, a in reps]
    if rows:
        conn.execute(_insert(conn, Rep).values(rows).on_conflict_do_nothing())


def rep_states(conn: Connection) -> dict[str, tuple[int | None, bool]]:
    """Every stored rep: ``rep_id -> (capacity, active)``."""
    rows = conn.execute(select(Rep.rep_id, Rep.capacity, Rep.active))
    return {str(r): (None if c is None else int(c), bool(a)) for r, c, a in rows}


def used_counts(
    conn: Connection,
    days: Sequence[str],
    *,
    room_below: int | None = None,
) -> dict[tuple[str, str], int]:
    """Leads already given to each rep on ``days``: ``{(rep_id, day): count}``.

    Args:
        room_below: only reps with a daily capacity (an unlimited rep is open whatever
            it took) and fewer than this many leads of room left on the day. Routing
            ``n`` leads needs no other: a rep with room for all ``n`` routes exactly as
            one that took none (``recommender.routing``), so the planner reads a handful
            of nearly full reps instead of every counter.
    """
    if not days:
        return {}
    if conn.dialect.name == "sqlite":
        cursor = _cursor(conn)
        if room_below is None:
            found = cursor.execute(_USED_SQLITE, (json.dumps(list(days)),))
        else:
            found = cursor.execute(_USED_TIGHT_SQLITE, (json.dumps(list(days)), int(room_below)))
        return {(str(r), str(d)): int(n) for r, d, n in found.fetchall()}
    params: dict[str, Any] = {"days": list(days)}
    statement = _USED
    if room_below is not None:
        statement, params["room"] = _USED_TIGHT, int(room_below)
    rows = conn.execute(statement, params)
    return {(str(r), str(d)): int(n) for r, d, n in rows}


def lock_capacity(
    conn: Connection, pairs: Iterable[tuple[str, str]]
) -> tuple[dict[str, tuple[int | None, bool]], dict[tuple[str, str], int]]:
    """Read (and lock) what claiming capacity needs, for many ``(rep_id, day)`` at once.

    One statement: the reps' ``(capacity, active)`` and their leads so far on the days
    ``pairs`` names for them (only those: a batch spread over many days does not read
    every counter of every candidate rep).
    On PostgreSQL the rep rows are locked ``FOR SHARE`` until the transaction ends, so a
    concurrent rep update (capacity, ``active``) waits for it, and one that committed
    while this statement waited is the version read (READ COMMITTED re-reads a row it
    waited for). Only routing writes the day counts, and routing writes are serialised
    (SQLite's single writer, ``BEGIN IMMEDIATE``; the route advisory lock on PostgreSQL),
    so the counts read stay true until the caller's :func:`add_load` in the same
    transaction. Call it in a write transaction, after that serialisation.

    Returns:
        ``(states, used)``: ``rep_id -> (capacity or None, active)`` for the stored reps
        of ``pairs`` (unknown ids are left out), and ``(rep_id, day) -> count`` for the
        counters of ``pairs`` that exist (a missing one is 0).
    """
    wanted = sorted(set(pairs))
    if not wanted:
        return {}, {}
    if conn.dialect.name == "sqlite":
        pairs_json = json.dumps(wanted, ensure_ascii=False)
        rows = _cursor(conn).execute(_CAPACITY_SQLITE, (pairs_json,)).fetchall()
    else:
        reps = sorted({rep for rep, _ in wanted})
        days = sorted({day for _, day in wanted})
        rows = conn.execute(_CAPACITY, {"reps": reps, "days": days, "pairs": wanted})
    states: dict[str, tuple[int | None, bool]] = {}
    used: dict[tuple[str, str], int] = {}
    for rep, capacity, active, day, count in rows:
        states[str(rep)] = (None if capacity is None else int(capacity), bool(active))
        if day is not None:
            used[(str(rep), str(day))] = int(count)
    return states, used


def add_load(conn: Connection, taken: Mapping[tuple[str, str], int]) -> None:
    """Add ``taken[(rep_id, day)]`` leads to those day counters, creating missing ones.

    One ``INSERT ... ON CONFLICT (rep_id, day) DO UPDATE SET count = count + excluded``
    for all the counters: on PostgreSQL one statement over ``unnest`` of the rows, on
    SQLite one prepared statement stepped per row (in process, no round trips). It
    checks no capacity: the caller decided with :func:`lock_capacity` in the same
    transaction, and the rep ids must be stored reps (foreign key).
    """
    rows = [(r, d, n) for (r, d), n in taken.items() if n > 0]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        reps, days, counts = (list(column) for column in zip(*rows, strict=True))
        conn.execute(_ADD_LOAD_POSTGRES, {"reps": reps, "days": days, "counts": counts})
    else:
        _cursor(conn).executemany(_ADD_LOAD_SQLITE, rows)


def reps_stamp(conn: Connection) -> tuple[Any, int]:
    """``(latest updated_at, number of reps)``: changes whenever a rep row changes."""
    if conn.dialect.name == "sqlite":
        latest, count = _cursor(conn).execute(_STAMP_SQLITE).fetchone()
        return latest, int(count)
    row = conn.execute(_STAMP).one()
    return row[0], int(row[1])


def claim_leads(conn: Connection, leads: Sequence[tuple[str, str, dict[str, Any]]]) -> set[str]:
    """Insert ``(lead_id, day, record)`` rows; return the ids that were new.

    A lead already stored (routed before, or by a concurrent request) is left as it is:
    routing the same lead twice returns its first assignment and takes no capacity.
    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING lead_id`` (SQLite >= 3.35 and
    PostgreSQL): the ids it returns are the new ones.
    """
    if not leads:
        return set()
    now = utcnow()
    if conn.dialect.name == "sqlite":
        cursor, at = _cursor(conn), _sqlite_time(now)
        new: set[str] = set()
        for start in range(0, len(leads), _SQLITE_ROWS):
            chunk = leads[start : start + _SQLITE_ROWS]
            values = [v for i, d, r in chunk for v in (i, d, json.dumps(r), at)]
            sql = (
                "INSERT INTO leads (lead_id, day, record, received_at) VALUES "
                + ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING lead_id"
            )
            new.update(str(i) for (i,) in cursor.execute(sql, values).fetchall())
        return new
    rows = [{"lead_id": i, "day": d, "record": r, "received_at": now} for i, d, r in leads]
    return {str(i) for i in conn.execute(_NEW_LEADS[conn.dialect.name], rows).scalars()}


def insert_assignments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert assignment rows (keys: the ``assignments`` columns but ``id``)."""
    if not rows:
        return
    now = utcnow()
    if conn.dialect.name == "sqlite":
        at = _sqlite_time(now)
        values = []
        for row in rows:
            full = {"assigned_at": now, **row}
            full["alternatives"] = json.dumps(full["alternatives"])
            moment = full["assigned_at"]
            full["assigned_at"] = at if moment is now else _sqlite_time(moment)
            values.append(tuple(full.get(name) for name in _ASSIGNMENT_COLUMNS))
        _cursor(conn).executemany(_INSERT_ASSIGNMENT_SQLITE, values)
        return
    conn.execute(insert(Assignment), [{"assigned_at": now, **row} for row in rows])


def assignments_of(conn: Connection, lead_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored assignments of ``lead_ids``: ``lead_id -> row as a dict``."""
    if not lead_ids:
        return {}
    rows = conn.execute(select(Assignment).where(Assignment.lead_id.in_(list(lead_ids))))
    return {row.lead_id: dict(row._mapping) for row in rows}


def open_lead_records(conn: Connection, rep_id: str) -> list[dict[str, Any]]:
    """The stored records of leads assigned to ``rep_id`` with no won/lost outcome."""
    closed = exists().where(
        OutcomeRow.lead_id == Assignment.lead_id,
        OutcomeRow.rep_id == rep_id,
        OutcomeRow.outcome.in_([Outcome.WON, Outcome.LOST]),
    )
    rows = conn.execute(
        select(Lead.record)
        .join(Assignment, Assignment.lead_id == Lead.lead_id)
        .where(Assignment.rep_id == rep_id, ~closed)
        .order_by(Lead.lead_id)
    )
    return [dict(r) for r in rows.scalars()]


def missing_ids(conn: Connection, column: Any, ids: Iterable[str]) -> list[str]:
    """The ids of ``ids`` (sorted) with no row whose ``column`` equals them."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    found = set(conn.execute(select(column).where(column.in_(wanted))).scalars().all())
    return [i for i in wanted if i not in found]


def upsert_outcomes(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store outcomes: one row per (lead_id, rep_id); a repeat overwrites, never adds."""
    now = utcnow()
    for row in rows:
        values = {
            "lead_id": row["lead_id"],
            "rep_id": row["rep_id"],
            "outcome": row["outcome"],
            "closed_at": row.get("closed_at"),
            "value": row.get("value"),
            "updated_at": now,
        }
        stmt = _insert(conn, OutcomeRow).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["lead_id", "rep_id"],
            set_={k: stmt.excluded[k] for k in ("outcome", "closed_at", "value", "updated_at")},
        )
        conn.execute(stmt)


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append engagement events (keys: lead_id, event, at, weight)."""
    if rows:
        now = utcnow()
        conn.execute(insert(EventRow), [{"received_at": now, **row} for row in rows])


def outcome_of(conn: Connection, lead_id: str, rep_id: str) -> dict[str, Any] | None:
    """The stored outcome of ``(lead_id, rep_id)`` or ``None``."""
    row = conn.execute(
        select(OutcomeRow).where(OutcomeRow.lead_id == lead_id, OutcomeRow.rep_id == rep_id)
    ).first()
    return None if row is None else dict(row._mapping)


def day_of(moment: datetime) -> str:
    """``YYYY-MM-DD`` of a datetime (the unit of daily capacity)."""
    return moment.strftime("%Y-%m-%d")


def update_rep(conn: Connection, rep_id: str, capacity: int | None, active: bool) -> bool:
    """Set a stored rep's capacity and flag; ``False`` when the store has no such rep.

    ``updated_at`` moves strictly forward, so :func:`reps_stamp` always sees the change.
    """
    latest = conn.execute(select(func.max(Rep.updated_at))).scalar_one()
    now = utcnow()
    if latest is not None and now <= latest:
        now = latest + timedelta(microseconds=1)
    result = conn.execute(
        update(Rep)
        .where(Rep.rep_id == rep_id)
        .values(capacity=capacity, active=active, updated_at=now)
    )
    return bool(result.rowcount == 1)


def events_of(conn: Connection, lead_ids: Sequence[str]) -> list[tuple[str, str, datetime, float]]:
    """Stored engagement events of ``lead_ids``: ``(lead_id, event, at, weight)``.

    A missing weight reads as 1.0 (as in ``events.csv``).
    """
    if not lead_ids:
        return []
    if conn.dialect.name == "sqlite":
        found = _cursor(conn).execute(_EVENTS_SQLITE, (json.dumps(list(lead_ids)),)).fetchall()
        return [
            (str(i), str(e), _from_sqlite_time(a), 1.0 if w is None else float(w))
            for i, e, a, w in found
        ]
    rows = conn.execute(_EVENTS, {"ids": list(lead_ids)})
    return [(str(i), str(e), a, 1.0 if w is None else float(w)) for i, e, a, w in rows]
