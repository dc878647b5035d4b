"""Route leads to reps and store the decisions, never overfilling a rep's day.

Plan then claim: the model plans with the day counts it reads (no lock held while the
model runs); one write transaction, serialised with every other route write, then
claims capacity for the whole batch: it reads (and on PostgreSQL locks) the candidate
reps' capacity, ``active`` flag and day counts in one statement, gives each lead in
order its planned rep or, if a concurrent request filled that rep meanwhile, its next
alternative, and adds the claimed leads to the day counters in one upsert. If all of a
lead's candidates are full, the transaction rolls back and the request plans again with
the new counts (a few times, then the lead stays unassigned with a reason). Leads,
assignments and counters commit together or not at all.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter
from sqlalchemy import Connection, text

from recommender.columns import Columns
from service import schemas
from service.actions import events_frame, parse_leads
from service.errors import FieldError
from service.state import Loaded, Runtime
from service.store import repo
from service.store.db import read_transaction, write_transaction

log = logging.getLogger("leadrank.service")

ATTEMPTS = 8
"""Plans per request: a lead whose candidates all filled up meanwhile is planned again."""
N_ALTERNATIVES = 3
_PG_ROUTE_LOCK = 0x1EAD0001
"""Advisory lock id that serialises route writes on PostgreSQL (as on SQLite)."""


def _reps_frame(model: Loaded, states: dict[str, tuple[int | None, bool]]) -> pd.DataFrame:
    """The model's reps with capacity and ``active`` as the store has them now."""
    reps = model.bundle.reps.copy()
    ids = reps[Columns.REP].astype(str)
    known = ids.isin(states.keys())
    if known.any():
        capacity = ids[known].map(lambda r: states[r][0])
        reps[Columns.CAPACITY] = reps[Columns.CAPACITY].astype("Int64")
        reps.loc[known, Columns.CAPACITY] = pd.array(capacity.tolist(), dtype="Int64")
        reps.loc[known, Columns.ACTIVE] = ids[known].map(lambda r: states[r][1]).astype(bool)
    return reps


def _current_reps(conn: Connection, model: Loaded) -> pd.DataFrame:
    """The model's reps as the store has them now, rebuilt only when a rep row changed."""
    stamp = repo.reps_stamp(conn)
    hit = model.reps_cache.get("reps")
    if hit is not None and hit[0] == stamp:
        return hit[1]
    frame = _reps_frame(model, repo.rep_states(conn))
    model.reps_cache["reps"] = (stamp, frame)
    return frame


def _days(leads: pd.DataFrame) -> list[str]:
    """The ``YYYY-MM-DD`` days the leads were created on (their capacity days)."""
    created = leads[Columns.CREATED]
    if isinstance(created.dtype, np.dtype) and created.dtype.kind == "M":  # as parsed
        values = created.to_numpy()
    else:
        if not pd.api.types.is_datetime64_any_dtype(created):
            created = pd.to_datetime(created, errors="coerce")
        if isinstance(created.dtype, pd.DatetimeTZDtype):
            created = created.dt.tz_localize(None)  # the day on the lead's own clock
        values = created.to_numpy(dtype="datetime64[ns]")
    days = values[~np.isnat(values)].astype("datetime64[D]")
    return [str(d) for d in np.unique(days)]


def _float(value: Any) -> float | None:
    """``value`` as a float, ``None`` for a missing one (``None`` or NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if number != number else number


def request_seed(base: int, lead_ids: list[str]) -> int:
    """A per-request seed: exploration draws differ between requests, repeat for a retry."""
    return (base ^ zlib.crc32("\x1f".join(lead_ids).encode())) & 0x7FFFFFFF


def _assignment(plan: dict[str, Any], version: str) -> dict[str, Any]:
    """The assignment row of a planned lead before capacity is claimed (no rep yet)."""
    return {
        "lead_id": str(plan["lead_id"]),
        "rep_id": None,
        "day": str(plan["day"]),
        "probability": None,
        "policy": str(plan.get("policy") or "none"),
        "propensity": _float(plan.get("propensity")),
        "reason": plan.get("reason"),
        "alternatives": [
            {"rep_id": str(a["rep_id"]), "probability": _float(a.get("probability"))}
            for a in (plan.get("alternatives") or [])
        ],
        "model_version": version,
    }


def _candidates(plan: dict[str, Any], row: dict[str, Any]) -> list[tuple[str, float | None]]:
    """``(rep_id, probability)`` to try in order: the planned rep, then the alternatives."""
    planned = plan.get("rep_id")
    if planned is None or pd.isna(planned):
        return []
    first = [(str(planned), _float(plan.get("probability")))]
    return first + [(a["rep_id"], a["probability"]) for a in row["alternatives"]]


def _claim_batch(
    conn: Connection, plans: Sequence[dict[str, Any]], version: str, *, last: bool
) -> list[dict[str, Any]]:
    """Claim capacity for ``plans`` (in order) in a constant number of statements.

    Each lead takes its planned rep, else the first alternative with room (active,
    stored, and under its capacity for the lead's day, counting the leads claimed
    before it in this batch); a lead with no planned rep stays unassigned. Run it in a
    write transaction after :func:`_serialise_route_writes`.

    Returns:
        the assignment rows, in the order of ``plans``.

    Raises:
        _Contended: (unless ``last``) every candidate of a lead is full (concurrent
            requests took them); nothing is written then.
    """
    rows = [_assignment(p, version) for p in plans]
    tries = [_candidates(p, row) for p, row in zip(plans, rows, strict=True)]
    wanted = {(rep, row["day"]) for row, c in zip(rows, tries, strict=True) for rep, _ in c}
    states, used = repo.lock_capacity(conn, wanted)
    taken: dict[tuple[str, str], int] = {}
    for row, candidates in zip(rows, tries, strict=True):
        if not candidates:
            row["policy"] = "none"
            row["reason"] = row["reason"] or "no active rep with capacity"
            continue
        for n, (rep_id, probability) in enumerate(candidates):
            capacity, active = states.get(rep_id, (0, False))
            key = (rep_id, row["day"])
            if not active or (capacity is not None and used.get(key, 0) >= capacity):
                continue
            used[key] = used.get(key, 0) + 1
            taken[key] = taken.get(key, 0) + 1
            row["rep_id"], row["probability"] = rep_id, probability
            if n > 0:
                row["reason"] = f"{candidates[0][0]} reached its capacity first; next best rep"
            break
        else:
            if not last:
                raise _Contended
            row["policy"] = "none"
            row["reason"] = "every candidate rep reached its capacity for the day"
    repo.add_load(conn, taken)
    return rows


def _serialise_route_writes(conn: Connection) -> None:
    """Wait for (then hold until commit) the right to write routes: one writer at a time.

    SQLite has it already (its single writer, ``BEGIN IMMEDIATE``); PostgreSQL takes the
    route advisory lock for the rest of the transaction.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_ROUTE_LOCK})


class _Contended(Exception):
    """Concurrent requests took every candidate of a lead: plan again with fresh counts."""


def _out(row: dict[str, Any]) -> dict[str, Any]:
    """The answer fields of one stored assignment row, as plain values (see :data:`_ANSWERS`)."""
    return {
        "lead_id": row["lead_id"],
        "rep_id": row["rep_id"],
        "probability": row["probability"],
        "alternatives": row["alternatives"] or [],
        "policy": row["policy"],
        "propensity": row["propensity"],
        "reason": row["reason"],
    }


_ANSWERS = TypeAdapter(list[schemas.AssignmentOut])
"""Validates a batch's answers (rows of :func:`_out`) in one call of pydantic's compiled
validator, before the batch commits: building the four models of each lead in Python
(``model_construct``) cost more than routing it, and an answer that does not validate
rolls its batch back instead of failing after the commit."""


def _response(answers: Sequence[schemas.AssignmentOut]) -> schemas.RouteResponse:
    """The ``/v1/route`` answer of ``answers`` (validated by :data:`_ANSWERS`)."""
    return schemas.RouteResponse.model_construct(assignments=list(answers))


def route(runtime: Runtime, model: Loaded, request: schemas.LeadsRequest) -> schemas.RouteResponse:
    """Route leads, store leads and assignments, and answer in request order.

    A lead routed before (by lead_id) keeps its first assignment and takes no capacity.

    Raises:
        FieldError: a lead value the library rejects (422), nothing stored.
    """
    answers = _route_leads(runtime, model, request.leads)
    return _response([answers[lead.lead_id] for lead in request.leads])


def route_batch(
    runtime: Runtime, items: Sequence[tuple[Loaded, schemas.LeadsRequest]]
) -> list[schemas.RouteResponse | Exception]:
    """Route several requests (one model, no lead in two of them) as few batches.

    The model and the store are called once per batch, which costs little more than one
    request alone. A model without eligibility rules routes all the requests as one
    batch; a model with rules, one batch per group of requests that the rules read alike
    (:func:`_batch_groups`). Where a batch fails (a rejected value, anything else), each
    of its requests is routed on its own instead, so an error names its own request's
    field and fails that request alone.
    """
    if not items:
        return []
    model = items[0][0]
    if any(m is not model for m, _ in items):
        raise ValueError("a route batch must hold one model")
    out: list[schemas.RouteResponse | Exception | None] = [None] * len(items)
    for group in _batch_groups(model, items) if len(items) > 1 else []:
        if len(group) < 2:
            continue
        try:
            answers = _route_leads(runtime, model, [x for k in group for x in items[k][1].leads])
        except Exception:  # whichever request caused it fails alone, below
            continue
        for k in group:
            leads = items[k][1].leads
            out[k] = _response([answers[x.lead_id] for x in leads])
    done: list[schemas.RouteResponse | Exception] = []
    for answer, (m, request) in zip(out, items, strict=True):
        if answer is None:
            try:
                answer = route(runtime, m, request)
            except Exception as exc:  # answered to that request's caller alone
                answer = exc
        done.append(answer)
    return done


def _batch_groups(
    model: Loaded, items: Sequence[tuple[Loaded, schemas.LeadsRequest]]
) -> list[list[int]]:
    """Indices of ``items`` that may be routed as one batch, in order of first request.

    Rules read a column's type off all the leads routed together, so one request's values
    could change another's eligibility. Requests whose leads the rules read alike
    (``ModelBundle.rule_batch_key``) go together; a request whose leads do not parse
    goes alone (and fails alone). Requests whose leads name the same fields parse alike,
    so their keys come from one frame (``ModelBundle.rule_batch_keys``): parsing and
    keying each request alone cost a rules model several times the routing itself.
    """
    if not model.bundle.rules:
        return [list(range(len(items)))]
    records = [[x.model_dump() for x in request.leads] for _, request in items]
    alike: dict[frozenset[str], list[int]] = {}
    for k, rows in enumerate(records):
        alike.setdefault(frozenset(name for row in rows for name in row), []).append(k)
    keys: dict[int, Hashable] = {}
    for ks in alike.values():
        keys.update(_keys_together(model, records, ks))
    groups: dict[Hashable, list[int]] = {}
    for k in range(len(items)):
        groups.setdefault(keys[k], []).append(k)
    return list(groups.values())


def _keys_together(
    model: Loaded, records: list[list[dict[str, Any]]], ks: list[int]
) -> dict[int, Hashable]:
    """The rule batch keys of requests ``ks`` (leads naming the same fields), from one frame.

    A request whose leads do not parse (the error names its row) is keyed alone, and the
    others are parsed together again; anything else keys every request alone (logged).
    """
    keys: dict[int, Hashable] = {}
    todo = list(ks)
    while todo:
        ends = np.cumsum([len(records[k]) for k in todo])
        try:
            leads = parse_leads(model, [row for k in todo for row in records[k]], "leads")
            parts = [
                np.arange(end - len(records[k]), end) for k, end in zip(todo, ends, strict=True)
            ]
            keys.update(zip(todo, model.bundle.rule_batch_keys(leads, parts), strict=True))
            return keys
        except FieldError as exc:
            row = exc.loc[2] if len(exc.loc) > 2 and isinstance(exc.loc[2], int) else None
            if row is None or not 0 <= row < ends[-1]:
                break
            bad = todo.pop(int(np.searchsorted(ends, row, side="right")))
            keys[bad] = _rule_key_alone(model, records[bad], bad)
        except Exception:
            log.exception("keying a batch of route requests together failed; keyed one by one")
            break
    keys.update((k, _rule_key_alone(model, records[k], k)) for k in todo)
    return keys


def _rule_key_alone(model: Loaded, records: list[dict[str, Any]], k: int) -> Hashable:
    """The rule batch key of one request's leads, or a key of its own where they do not
    parse (so the request is routed, and fails, alone)."""
    try:
        return model.bundle.rule_batch_key(parse_leads(model, records, "leads"))
    except Exception:
        return ("alone", k)


def _route_leads(
    runtime: Runtime, model: Loaded, leads_in: Sequence[schemas.LeadIn]
) -> dict[str, schemas.AssignmentOut]:
    """Route and store ``leads_in`` (unique ids); the answer of each lead by id."""
    records = [lead.model_dump() for lead in leads_in]
    leads = parse_leads(model, records, "leads")
    ids = [str(r["lead_id"]) for r in records]
    for attempt in range(ATTEMPTS):
        plans = _plan(runtime, model, leads, ids)
        try:
            return _store(runtime, model, ids, records, plans, last=attempt == ATTEMPTS - 1)
        except _Contended:
            continue
    raise AssertionError("unreachable: the last attempt never raises _Contended")


def _plan(
    runtime: Runtime, model: Loaded, leads: pd.DataFrame, ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Run the model's routing with the day counts and rep settings stored now."""
    with read_transaction(runtime.engine) as conn:
        reps = _current_reps(conn, model)
        used = repo.used_counts(conn, _days(leads), room_below=len(leads))
        events = events_frame(conn, ids)
    settings = runtime.settings
    plan = model.bundle.route_rows(
        leads,
        reps=reps,
        used=used,
        events=events,
        seed=request_seed(settings.route_seed, ids),
        explore=settings.route_explore,
        holdout=settings.route_holdout,
        n_alternatives=N_ALTERNATIVES,
    )
    return {str(p["lead_id"]): p for p in plan}


def _store(
    runtime: Runtime,
    model: Loaded,
    ids: list[str],
    records: list[dict[str, Any]],
    plans: dict[str, dict[str, Any]],
    *,
    last: bool,
) -> dict[str, schemas.AssignmentOut]:
    """One transaction: store new leads, claim capacity, insert their assignments.

    Raises:
        _Contended: (unless ``last``) a lead lost all its candidates to concurrent
            requests; everything is rolled back.
    """
    with write_transaction(runtime.engine) as conn:
        _serialise_route_writes(conn)
        new = repo.claim_leads(
            conn, [(i, str(plans[i]["day"]), r) for i, r in zip(ids, records, strict=True)]
        )
        rows = _claim_batch(conn, [plans[i] for i in ids if i in new], model.version, last=last)
        repo.insert_assignments(conn, rows)
        stored = {row["lead_id"]: row for row in rows}
        old = [i for i in ids if i not in stored]  # routed before: their first assignment
        stored.update(repo.assignments_of(conn, old))
        answers = _ANSWERS.validate_python([_out(stored[i]) for i in ids])
    return dict(zip(ids, answers, strict=True))
