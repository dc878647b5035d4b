"""Routing a batch of requests for a model with eligibility rules.

Rules read a column's type off all the leads they see together, so the service batches
only the requests that the rules read alike: each request gets the eligibility it would
get alone (real model, real SQLite store, no server needed for this part).
"""

from __future__ import annotations

import random
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from recommender import bundle as bundle_module
from recommender.data.simulate import simulate
from recommender.pipeline import ModelBundle, train
from recommender.rules import batch_key, eligibility, explain, lead_columns, parse_rules
from service import routing, schemas
from service.config import Settings
from service.main import _start
from service.metrics import Metrics
from service.state import Loaded, Runtime
from service.store import repo
from service.store.db import read_transaction, write_transaction
from service.store.models import Lead, RepDayLoad

RULES = "rep.tenure_years >= lead.min_tenure\n"
DAY = "2026-12-01T10:00:00"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    root = tmp_path_factory.mktemp("rules")
    data = root / "data"
    simulate(data, n_leads=1500, n_reps=12, seed=4)
    (data / "rules.txt").write_text(RULES, encoding="utf-8")
    train(data, out=root / "model")
    settings = Settings(
        database_url=f"sqlite:///{root / 'store.db'}",
        model_path=root / "model",
        route_explore=0.0,
        route_holdout=0.0,
    )
    return _start(settings, Metrics())


def _request(k: int, min_tenure: str) -> schemas.LeadsRequest:
    lead: dict[str, Any] = {
        "lead_id": f"RR{k:04d}",
        "created_at": DAY,
        "source": "web_form",
        "min_tenure": min_tenure,
    }
    return schemas.LeadsRequest(leads=[schemas.LeadIn(**lead)])


def _allowed(bundle: ModelBundle, min_tenure: str) -> set[str]:
    """The reps the rule lets take a lead of this request routed on its own."""
    reps = bundle.reps.reset_index(drop=True)
    mask = eligibility(parse_rules(RULES), pd.DataFrame({"min_tenure": [min_tenure]}), reps)
    return {str(r) for r, ok in zip(reps["rep_id"], mask[0], strict=True) if ok}


def test_requests_read_alike_share_a_batch_and_keep_their_own_eligibility(
    runtime: Runtime,
) -> None:
    model = runtime.model
    assert isinstance(model, Loaded) and model.bundle.rules
    # Every rep has less than 10 years: "10" fits none as a number, but as text (as it
    # would be in one batch with "senior") "10" < "2.1" and most reps would fit.
    values = ["2", "1", "senior", "10", "0.5"]
    items = [(model, _request(k, v)) for k, v in enumerate(values)]
    groups = routing._batch_groups(model, items)
    assert groups == [[0, 1, 3, 4], [2]]
    answers = routing.route_batch(runtime, items)
    for value, answer in zip(values, answers, strict=True):
        assert isinstance(answer, schemas.RouteResponse), answer
        rep = answer.assignments[0].rep_id
        if value == "senior":  # not a number: compared as text, like a request alone
            continue
        if value == "10":
            assert rep is None and "rules" in str(answer.assignments[0].reason)
            continue
        assert rep is not None and rep in _allowed(model.bundle, value), (value, rep)


def test_runners_up_are_reps_the_rules_allow(runtime: Runtime) -> None:
    # The store falls back to a lead's runners-up when its rep fills up between plan and
    # claim: a runner-up the rules forbid once got the lead.
    model = runtime.model
    assert isinstance(model, Loaded)
    bundle = model.bundle
    for value in ("3", "2", "10"):
        leads = bundle.leads_from_records(
            [{"lead_id": f"RU{value}", "created_at": DAY, "min_tenure": value}]
        )
        plan = bundle.route(leads, explore=0.0, holdout=0.0, n_alternatives=5).iloc[0]
        allowed = _allowed(bundle, value)
        assert {a["rep_id"] for a in plan["alternatives"]} <= allowed, value
        assert plan["rep_id"] is None or plan["rep_id"] in allowed


def _alone_groups(
    model: Loaded, items: list[tuple[Loaded, schemas.LeadsRequest]]
) -> list[list[int]]:
    """The groups keyed request by request (each request's leads parsed on their own)."""
    groups: dict[Any, list[int]] = {}
    for k, (_, request) in enumerate(items):
        records = [x.model_dump() for x in request.leads]
        groups.setdefault(routing._rule_key_alone(model, records, k), []).append(k)
    return list(groups.values())


def test_batch_groups_equal_keying_each_request_alone(runtime: Runtime) -> None:
    # The batch keys its requests from one frame per set of fields; the groups must be
    # the ones each request parsed and keyed on its own would give.
    model = runtime.model
    assert isinstance(model, Loaded)
    rng = random.Random(5)
    values = ["2", "1", "senior", "10", "0.5", "", None, "1e1", " 3 ", "x2"]
    n = 0
    for _ in range(40):
        items = []
        for _ in range(rng.randint(1, 8)):
            leads = []
            fields = rng.random() < 0.8  # most requests name min_tenure, some never do
            for _ in range(rng.randint(1, 3)):
                n += 1
                lead: dict[str, Any] = {"lead_id": f"BG{n:05d}", "created_at": DAY}
                if fields:
                    lead["min_tenure"] = rng.choice(values)
                if rng.random() < 0.3:
                    lead["source"] = rng.choice(["web_form", "event", None])
                leads.append(schemas.LeadIn(**lead))
            if rng.random() < 0.1:  # a request whose leads do not parse (a bad date)
                n += 1
                leads.append(schemas.LeadIn(lead_id=f"BG{n:05d}", created_at="not a date"))
            items.append((model, schemas.LeadsRequest(leads=leads)))
        assert routing._batch_groups(model, items) == _alone_groups(model, items)


def test_rule_frame_reads_what_the_whole_lead_frame_would(runtime: Runtime) -> None:
    # Routing hands the rules only the lead columns they name; eligibility, reasons and
    # batch keys must be those of the leads' columns joined with all the model inputs.
    model = runtime.model
    assert isinstance(model, Loaded)
    bundle = model.bundle
    account = str(bundle.accounts["account_id"].iloc[0]) if bundle.accounts is not None else ""
    leads = bundle.leads_from_records(
        [
            {"lead_id": "RF1", "created_at": DAY, "min_tenure": "2", "account_id": account},
            {"lead_id": "RF2", "created_at": DAY, "min_tenure": "x", "source": "event"},
            {"lead_id": "RF3", "created_at": DAY, "min_tenure": None, "account_id": "nope"},
        ]
    )
    typed = leads.assign(min_tenure=pd.array([2, None, 1], dtype="Int64"), source="web")
    typed.index = [7, 8, 9]
    twice = pd.concat([leads, leads[["min_tenure"]].assign(min_tenure="99")], axis=1)
    reps = bundle.reps.reset_index(drop=True)
    texts = [
        RULES,
        "lead.source in ('event', 'web') -> rep.tenure_years >= 1",
        "rep.region == lead.nothere",
    ] + [f"rep.region == lead.{c}" for c in bundle.accounts.columns if c != "account_id"]
    for text in texts:
        rules = parse_rules(text)
        for frame in (leads, typed, twice):  # a column held twice: the first copy
            inputs = bundle._feature_frame(frame)
            both = pd.concat([frame.reset_index(drop=True), inputs.to_frame()], axis=1)
            full = both.loc[:, ~both.columns.duplicated()]
            small = bundle_module._rule_frame(frame, inputs, lead_columns(rules))
            got, want = _explained(rules, small, reps), _explained(rules, full, reps)
            assert got == want, text


def _explained(rules: list[Any], leads: pd.DataFrame, reps: pd.DataFrame) -> Any:
    """Eligibility, reasons and batch key of ``leads`` (or the error they raise)."""
    try:
        mask, why = explain(rules, leads, reps)
    except Exception as exc:
        return repr(exc)
    return mask.tolist(), why, batch_key(rules, leads)


def test_an_answer_that_does_not_validate_rolls_its_batch_back(runtime: Runtime) -> None:
    # A stored assignment from elsewhere (an older version, a hand edit) whose runner-up
    # has no probability cannot be answered; the request fails with nothing written, not
    # after its new leads and their capacity were committed.
    model = runtime.model
    assert isinstance(model, Loaded)
    rep = sorted(model.rep_ids)[0]
    with write_transaction(runtime.engine) as conn:
        repo.claim_leads(conn, [("RB-OLD", "2026-12-01", {"lead_id": "RB-OLD"})])
        row = {
            "lead_id": "RB-OLD",
            "rep_id": rep,
            "day": "2026-12-01",
            "probability": 0.2,
            "policy": "model",
            "propensity": 1.0,
            "reason": None,
            "alternatives": [{"rep_id": rep}],
            "model_version": "old",
        }
        repo.insert_assignments(conn, [row])
    request = schemas.LeadsRequest(
        leads=[
            schemas.LeadIn(lead_id="RB-OLD", created_at=DAY),
            schemas.LeadIn(lead_id="RB-NEW", created_at=DAY, min_tenure="1"),
        ]
    )
    with read_transaction(runtime.engine) as conn:
        load = conn.execute(select(func.sum(RepDayLoad.count))).scalar()
    with pytest.raises(ValidationError):
        routing.route(runtime, model, request)
    with read_transaction(runtime.engine) as conn:
        assert repo.assignments_of(conn, ["RB-NEW"]) == {}
        assert conn.execute(select(Lead).where(Lead.lead_id == "RB-NEW")).first() is None
        assert conn.execute(select(func.sum(RepDayLoad.count))).scalar() == load
