"""The service functions the routes call: each adapts one request to the library and store.

CPU-bound (pandas, the model) and blocking (database): the routes that call these are
plain ``def`` handlers, run in the thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine

from recommender.columns import Columns
from recommender.errors import DataError, LeadrankError, UnknownIdError
from recommender.pipeline import ModelBundle
from service import schemas
from service.errors import FieldError
from service.state import Loaded, Runtime, settle_heap
from service.store import repo
from service.store.db import read_transaction, write_transaction
from service.store.models import Lead, Rep

log = logging.getLogger("leadrank.service")


def parse_leads(model: Loaded, records: Sequence[dict[str, Any]], where: str) -> pd.DataFrame:
    """Lead records as the library's lead frame, read like CSV cells.

    Args:
        where: the request field holding the list (``leads``), used in error locations.

    Raises:
        FieldError: a value the library rejects (422 naming ``leads[i].column``).
    """
    try:
        return model.bundle.leads_from_records(list(records))
    except DataError as exc:
        loc: list[str | int] = ["body", where]
        if exc.row is not None:
            loc.append(exc.row - 1)
        if exc.column is not None:
            loc.append(exc.column)
        raise FieldError(loc, exc.message) from exc


def events_frame(conn: Connection, lead_ids: Sequence[str]) -> pd.DataFrame | None:
    """The stored events of ``lead_ids`` as the library's events table (``None``: none)."""
    rows = repo.events_of(conn, lead_ids)
    if not rows:
        return None
    ids, names, ats, weights = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            Columns.LEAD: pd.Series(ids, dtype=object),
            Columns.EVENT: pd.Series(names, dtype=object),
            Columns.AT: pd.Series(pd.to_datetime(list(ats)), dtype="datetime64[ns]"),
            Columns.WEIGHT: pd.Series(weights, dtype="float64"),
        }
    )


def _reasons(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    return [str(v) for v in value]


def score(model: Loaded, engine: Engine, request: schemas.LeadsRequest) -> schemas.ScoresResponse:
    """Score leads with their stored events: probability, 0-100 score, grade, reasons.

    Nothing is stored.
    """
    leads = parse_leads(model, [lead.model_dump() for lead in request.leads], "leads")
    with read_transaction(engine) as conn:
        events = events_frame(conn, [lead.lead_id for lead in request.leads])
    scored = model.bundle.score(leads, events)
    return schemas.ScoresResponse(
        scores=[
            schemas.Score(
                lead_id=str(row["lead_id"]),
                probability=float(row["probability"]),
                score=int(row["score"]),
                grade=str(row["grade"]),
                reasons=_reasons(row["reasons"]),
            )
            for row in scored.to_dict("records")
        ]
    )


def rep_leads(model: Loaded, engine: Engine, rep_id: str, limit: int) -> schemas.RepLeadsResponse:
    """A rep's open leads (assigned to it, no won/lost outcome with it), best first.

    Raises:
        UnknownIdError: the rep is unknown to the model (404).
    """
    if rep_id not in model.rep_ids:
        raise UnknownIdError("rep", rep_id)
    with read_transaction(engine) as conn:
        records = repo.open_lead_records(conn, rep_id)
        events = events_frame(conn, [str(r["lead_id"]) for r in records])
    if not records:
        return schemas.RepLeadsResponse(rep_id=rep_id, leads=[])
    leads = parse_leads(model, records, "stored leads")
    ranked = model.bundle.recommend(rep_id, leads, limit, events)
    return schemas.RepLeadsResponse(
        rep_id=rep_id,
        leads=[
            schemas.RepLead(
                lead_id=str(row["lead_id"]),
                probability=float(row["probability"]),
                reasons=_reasons(row.get("reasons")),
            )
            for row in ranked.head(limit).to_dict("records")
        ],
    )


def lookalikes(model: Loaded, request: schemas.LookalikeRequest) -> schemas.LookalikeResponse:
    """The ``k`` accounts (or leads) most similar to the seeds.

    Raises:
        FieldError: a seed the model does not know (404 naming ``seeds[i]``).
    """
    try:
        found = model.bundle.lookalike(
            list(request.seeds), request.k, exclude_customers=request.exclude_customers
        )
    except UnknownIdError as exc:
        index = request.seeds.index(exc.value) if exc.value in request.seeds else None
        loc: list[str | int] = ["body", "seeds"] + ([index] if index is not None else [])
        raise FieldError(loc, str(exc), status=404) from exc
    return schemas.LookalikeResponse(
        results=[
            schemas.Lookalike(id=str(row["id"]), similarity=float(row["similarity"]))
            for row in found.to_dict("records")
        ]
    )


def record_outcomes(engine: Engine, request: schemas.OutcomesRequest) -> schemas.StoredResponse:
    """Store outcomes, one per (lead_id, rep_id): a retry overwrites and never adds.

    All or nothing: an unknown lead or rep stores none of them. A pair named twice in
    one request is stored once, with its last row (as if the rows came one by one), and
    ``stored`` counts the pairs, so it always equals the rows the store holds for them.

    Raises:
        FieldError: 404 naming ``outcomes[i].lead_id`` (a lead never routed here) or
            ``outcomes[i].rep_id`` (a rep the store does not know).
    """
    rows = [o.model_dump() for o in request.outcomes]
    with write_transaction(engine) as conn:
        for column, table_column in (("lead_id", Lead.lead_id), ("rep_id", Rep.rep_id)):
            missing = repo.missing_ids(conn, table_column, (r[column] for r in rows))
            if missing:
                i = next(i for i, r in enumerate(rows) if r[column] == missing[0])
                kind = column.removesuffix("_id")
                raise FieldError(
                    ["body", "outcomes", i, column], f"unknown {kind} '{missing[0]}'", 404
                )
        last = {(r["lead_id"], r["rep_id"]): r for r in rows}
        # One lock order for every writer: no deadlock between overlapping batches.
        repo.upsert_outcomes(conn, [last[pair] for pair in sorted(last)])
    return schemas.StoredResponse(stored=len(last))


def record_events(engine: Engine, request: schemas.EventsRequest) -> schemas.StoredResponse:
    """Append engagement events (a lead need not be routed yet)."""
    rows = [e.model_dump() for e in request.events]
    with write_transaction(engine) as conn:
        repo.insert_events(conn, rows)
    return schemas.StoredResponse(stored=len(rows))


def sync_reps(engine: Engine, model: Loaded) -> None:
    """Add the model's reps the store does not know yet (capacity, active)."""
    reps = model.bundle.reps
    triples = []
    for row in reps.to_dict("records"):
        capacity = row.get("capacity")
        capacity = None if capacity is None or pd.isna(capacity) else int(capacity)
        active = row.get("active")
        active = True if active is None or pd.isna(active) else bool(active)
        triples.append((str(row["rep_id"]), capacity, active))
    with write_transaction(engine) as conn:
        repo.sync_reps(conn, triples)


def load_model(path: Path) -> Loaded:
    """Load and check a model folder.

    Raises:
        FieldError: the folder is missing, incomplete or unreadable (422 naming ``path``).
    """
    try:
        return Loaded.of(ModelBundle.load(path))
    except LeadrankError as exc:
        raise FieldError(["body", "path"], f"not a usable model folder: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("model folder %s failed to load", path, exc_info=exc)
        raise FieldError(
            ["body", "path"], f"not a usable model folder: {type(exc).__name__}: {exc}"
        ) from exc


def reload(runtime: Runtime, request: schemas.ReloadRequest) -> schemas.ReloadResponse:
    """Load a model folder, check it, and swap it in whole; on failure the old one serves.

    Raises:
        FieldError: the folder cannot be used (422 naming ``path``); nothing changes.
    """
    with runtime.reload_lock:
        previous = runtime.model
        try:
            loaded = load_model(Path(request.path))
        except FieldError:
            runtime.metrics.reloads["failed"] += 1
            raise
        sync_reps(runtime.engine, loaded)
        runtime.model = loaded
        runtime.metrics.reloads["ok"] += 1
    was = None if previous is None else previous.version
    del previous  # let the old model go (requests still using it keep it alive)
    settle_heap()
    log.info("model %s now serving (was %s)", loaded.version, was)
    return schemas.ReloadResponse(version=loaded.version, previous=was)


def update_rep(engine: Engine, rep_id: str, request: schemas.RepUpdate) -> schemas.RepOut:
    """Change a rep's capacity and ``active`` flag in the store (routing uses it at once).

    Raises:
        UnknownIdError: the store has no such rep (404).
    """
    with write_transaction(engine) as conn:
        if not repo.update_rep(conn, rep_id, request.capacity, request.active):
            raise UnknownIdError("rep", rep_id)
    return schemas.RepOut(rep_id=rep_id, capacity=request.capacity, active=request.active)
