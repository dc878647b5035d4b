"""Routing a batch of requests for a model with eligibility rules.

Rules read a column's type off all the leads they see together, so the service batches
only the requests that the rules read alike: each request gets the eligibility it would
get alone (real model, real SQLite store, no server needed for this part).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from recommender.data.simulate import simulate
from recommender.pipeline import ModelBundle, train
from recommender.rules import eligibility, parse_rules
from service import routing, schemas
from service.config import Settings
from service.main import _start
from service.metrics import Metrics
from service.state import Loaded, Runtime

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
