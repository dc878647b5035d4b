"""The HTTP API end to end: a real uvicorn on loopback, a real model, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from svc_helpers import Server, new_lead

from service.store.db import make_engine
from service.store.models import Assignment, EventRow, Lead, OutcomeRow

_ids = itertools.count()


def lead(day: str = "2026-12-01", **extra: Any) -> dict[str, Any]:
    """A new lead created on ``day`` with a unique id."""
    return new_lead("T", day, **extra)


def count(server: Server, table: Any, **where: Any) -> int:
    """Rows of ``table`` matching ``where``, read straight from the database."""
    engine = make_engine(server.db_url)
    try:
        stmt = select(func.count()).select_from(table)
        for column, value in where.items():
            stmt = stmt.where(getattr(table, column) == value)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    finally:
        engine.dispose()


def fields(response: httpx.Response) -> list[str]:
    """The field names a 4xx answer lists."""
    return [item["field"] for item in response.json()["detail"]]


# ---------------------------------------------------------------- health and auth
def test_healthz_needs_no_key(server: Server) -> None:
    assert server.client().get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_model_and_database(server: Server) -> None:
    body = server.client("router").get("/readyz").json()
    assert body["status"] == "ready" and body["database"] is True and body["model_version"]


PROTECTED = [
    ("POST", "/v1/score", {"leads": [{"lead_id": "x"}]}),
    ("POST", "/v1/route", {"leads": [{"lead_id": "x"}]}),
    ("GET", "/v1/reps/R001/leads", None),
    ("POST", "/v1/lookalikes", {"seeds": ["x"]}),
    ("POST", "/v1/outcomes", {"outcomes": [{"lead_id": "x", "rep_id": "y", "outcome": "won"}]}),
    ("POST", "/v1/events", {"events": [{"lead_id": "x", "event": "e", "at": "2026-01-01"}]}),
    ("POST", "/v1/admin/reload", {"path": "/nowhere"}),
    ("PUT", "/v1/admin/reps/R001", {"capacity": 1}),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_missing_or_unknown_key_is_401(
    server: Server, method: str, path: str, body: dict[str, Any] | None
) -> None:
    anonymous = server.client().request(method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = server.client().request(
        method, path, json=body, headers={"Authorization": "Bearer lr_not-a-key"}
    )
    assert wrong.status_code == 401


FORBIDDEN = {
    "/v1/score": ["rep"],
    "/v1/route": ["marketer", "rep"],
    "/v1/lookalikes": ["router", "rep"],
    "/v1/outcomes": ["marketer", "rep"],
    "/v1/events": ["rep"],
    "/v1/admin/reload": ["router", "marketer", "rep"],
    "/v1/admin/reps/R001": ["router", "marketer", "rep"],
    "/v1/reps/R001/leads": ["marketer"],
}


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_wrong_role_is_403(
    server: Server, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for role in FORBIDDEN.get(path, []):
        response = server.client(role).request(method, path, json=body)
        assert response.status_code == 403, (role, path, response.text)
        assert "role" in response.json()["detail"]


def test_rep_key_reads_only_its_own_list(server: Server) -> None:
    own, other = server.reps[0], server.reps[1]
    rep = server.client("rep")
    assert rep.get(f"/v1/reps/{own}/leads").status_code == 200
    for rep_id in (other, "NO-SUCH-REP"):
        response = rep.get(f"/v1/reps/{rep_id}/leads")
        assert response.status_code == 403
        assert rep_id not in response.text  # no leak about other reps


def test_unknown_rep_is_404_naming_it(server: Server) -> None:
    response = server.client("admin").get("/v1/reps/NO-SUCH-REP/leads")
    assert response.status_code == 404
    assert "NO-SUCH-REP" in response.json()["detail"]


# ---------------------------------------------------------------- score and route
def test_score_answers_every_lead_in_order(server: Server) -> None:
    leads = [lead(), lead(source="webinar"), lead(country="FR")]
    response = server.client("marketer").post("/v1/score", json={"leads": leads})
    assert response.status_code == 200
    scores = response.json()["scores"]
    assert [s["lead_id"] for s in scores] == [x["lead_id"] for x in leads]
    for s in scores:
        assert 0 < s["probability"] < 1 and 0 <= s["score"] <= 100
        assert s["grade"] in "ABCD" and isinstance(s["reasons"], list)
    assert count(server, Lead, lead_id=leads[0]["lead_id"]) == 0  # scoring stores nothing


def test_route_stores_leads_and_assignments(server: Server) -> None:
    leads = [lead("2026-12-02"), lead("2026-12-02")]
    response = server.client("router").post("/v1/route", json={"leads": leads})
    assert response.status_code == 200
    assignments = response.json()["assignments"]
    assert [a["lead_id"] for a in assignments] == [x["lead_id"] for x in leads]
    for a in assignments:
        assert a["rep_id"] in server.reps and a["policy"] == "model"
        assert all(alt["rep_id"] != a["rep_id"] for alt in a["alternatives"])
        assert count(server, Assignment, lead_id=a["lead_id"], rep_id=a["rep_id"]) == 1
    # a retry keeps the first assignment and takes no more capacity
    again = server.client("router").post("/v1/route", json={"leads": leads}).json()
    assert again == response.json()
    assert count(server, Assignment, day="2026-12-02") == 2


def test_routed_lead_is_on_its_reps_list_until_closed(server: Server) -> None:
    new = lead("2026-12-03")
    routed = server.client("router").post("/v1/route", json={"leads": [new]}).json()
    rep_id = routed["assignments"][0]["rep_id"]
    admin = server.client("admin")
    listed = admin.get(f"/v1/reps/{rep_id}/leads", params={"limit": 1000}).json()
    assert listed["rep_id"] == rep_id
    assert new["lead_id"] in [x["lead_id"] for x in listed["leads"]]
    probs = [x["probability"] for x in listed["leads"]]
    assert probs == sorted(probs, reverse=True)
    outcome = {"lead_id": new["lead_id"], "rep_id": rep_id, "outcome": "lost"}
    assert admin.post("/v1/outcomes", json={"outcomes": [outcome]}).status_code == 200
    listed = admin.get(f"/v1/reps/{rep_id}/leads", params={"limit": 1000}).json()
    assert new["lead_id"] not in [x["lead_id"] for x in listed["leads"]]


def test_concurrent_routes_never_overfill_a_rep(server: Server) -> None:
    day = "2026-12-10"
    admin = server.client("admin")
    for rep_id in server.reps:
        assert admin.put(f"/v1/admin/reps/{rep_id}", json={"capacity": 2}).status_code == 200
    try:
        leads = [lead(day) for _ in range(40)]

        def post(one: dict[str, Any]) -> dict[str, Any]:
            with server.client("router") as c:
                r = c.post("/v1/route", json={"leads": [one]})
                assert r.status_code == 200, r.text
                return dict(r.json()["assignments"][0])

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(post, leads))
    finally:
        for rep_id in server.reps:
            admin.put(f"/v1/admin/reps/{rep_id}", json={"capacity": None})
    assigned = [r for r in results if r["rep_id"] is not None]
    per_rep = {rep: sum(r["rep_id"] == rep for r in assigned) for rep in server.reps}
    assert max(per_rep.values()) <= 2
    assert len(assigned) == 2 * len(server.reps)  # capacity is used, not lost
    assert all(r["reason"] for r in results if r["rep_id"] is None)
    for rep in server.reps:
        assert count(server, Assignment, day=day, rep_id=rep) == per_rep[rep]


def test_inactive_rep_gets_no_leads(server: Server) -> None:
    admin = server.client("admin")
    off = server.reps[2]
    assert admin.put(f"/v1/admin/reps/{off}", json={"capacity": None, "active": False}).json() == {
        "rep_id": off,
        "capacity": None,
        "active": False,
    }
    try:
        leads = [lead("2026-12-11") for _ in range(30)]
        routed = server.client("router").post("/v1/route", json={"leads": leads}).json()
        assert off not in {a["rep_id"] for a in routed["assignments"]}
    finally:
        admin.put(f"/v1/admin/reps/{off}", json={"capacity": None, "active": True})
    assert admin.put("/v1/admin/reps/NOPE", json={"capacity": 1}).status_code == 404


# ---------------------------------------------------------------- lookalikes
def test_lookalikes(server: Server, data_dir: Path) -> None:
    seed = (data_dir / "accounts.csv").read_text().splitlines()[1].split(",")[0]
    response = server.client("marketer").post("/v1/lookalikes", json={"seeds": [seed], "k": 5})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 5 and seed not in [r["id"] for r in results]
    sims = [r["similarity"] for r in results]
    assert sims == sorted(sims, reverse=True)
    unknown = server.client("marketer").post(
        "/v1/lookalikes", json={"seeds": [seed, "NO-SUCH-ACCOUNT"], "k": 5}
    )
    assert unknown.status_code == 404
    assert fields(unknown) == ["seeds[1]"] and "NO-SUCH-ACCOUNT" in unknown.text


# ---------------------------------------------------------------- outcomes and events
def test_outcomes_are_idempotent_per_lead_and_rep(server: Server) -> None:
    new = lead("2026-12-04")
    routed = server.client("router").post("/v1/route", json={"leads": [new]}).json()
    rep_id = routed["assignments"][0]["rep_id"]
    body = {"outcomes": [{"lead_id": new["lead_id"], "rep_id": rep_id, "outcome": "open"}]}
    router = server.client("router")
    for _ in range(3):
        assert router.post("/v1/outcomes", json=body).json() == {"stored": 1}
    assert count(server, OutcomeRow, lead_id=new["lead_id"]) == 1
    body["outcomes"][0].update(outcome="won", value=1200.0, closed_at="2026-12-20T12:00:00+01:00")
    assert router.post("/v1/outcomes", json=body).status_code == 200
    assert count(server, OutcomeRow, lead_id=new["lead_id"]) == 1
    assert count(server, OutcomeRow, lead_id=new["lead_id"], outcome="won") == 1


def test_pair_repeated_in_one_request_is_stored_once_with_its_last_row(server: Server) -> None:
    new = lead("2026-12-04")
    routed = server.client("router").post("/v1/route", json={"leads": [new]}).json()
    pair = {"lead_id": new["lead_id"], "rep_id": routed["assignments"][0]["rep_id"]}
    rows = [dict(pair, outcome="open"), dict(pair, outcome="won", value=900.0)]
    answer = server.client("router").post("/v1/outcomes", json={"outcomes": rows})
    assert answer.json() == {"stored": 1}
    assert count(server, OutcomeRow, lead_id=new["lead_id"]) == 1
    assert count(server, OutcomeRow, lead_id=new["lead_id"], outcome="won") == 1


def test_outcome_batch_with_unknown_id_stores_nothing(server: Server) -> None:
    new = lead("2026-12-05")
    routed = server.client("router").post("/v1/route", json={"leads": [new]}).json()
    rep_id = routed["assignments"][0]["rep_id"]
    good = {"lead_id": new["lead_id"], "rep_id": rep_id, "outcome": "won"}
    for bad, field in (
        ({"lead_id": "NO-SUCH-LEAD", "rep_id": rep_id, "outcome": "won"}, "outcomes[1].lead_id"),
        (dict(good, rep_id="NO-SUCH-REP"), "outcomes[1].rep_id"),
    ):
        response = server.client("router").post("/v1/outcomes", json={"outcomes": [good, bad]})
        assert response.status_code == 404
        assert fields(response) == [field]
        assert count(server, OutcomeRow, lead_id=new["lead_id"]) == 0


def test_events_are_stored(server: Server) -> None:
    lead_id = f"EV{next(_ids)}"
    events = [
        {"lead_id": lead_id, "event": "pricing_page", "at": "2026-12-01T09:00:00Z"},
        {"lead_id": lead_id, "event": "webinar", "at": "2026-12-01T10:00:00", "weight": 2},
    ]
    response = server.client("router").post("/v1/events", json={"events": events})
    assert response.json() == {"stored": 2}
    assert count(server, EventRow, lead_id=lead_id) == 2
    scored = server.client("router").post("/v1/score", json={"leads": [lead(lead_id=lead_id)]})
    assert scored.status_code == 200


def test_moment_outside_what_the_model_reads_is_422_not_a_later_500(server: Server) -> None:
    # an event dated year 16 used to be stored, then every read of the lead's events
    # (a rep's list, scoring, routing) failed with a 500
    lead_id = f"EV{next(_ids)}"
    c = server.client("router")
    last = c.post(
        "/v1/events",
        json={"events": [{"lead_id": lead_id, "event": "x", "at": "2261-12-31T23:59:59.5"}]},
    )
    assert last.status_code == 200, last.text  # the bound's last year is whole
    for at in ("0016-05-01T00:00:00", "9999-01-01T00:00:00Z", "1600-01-01T00:00:00+05:00"):
        response = c.post(
            "/v1/events", json={"events": [{"lead_id": lead_id, "event": "x", "at": at}]}
        )
        assert response.status_code == 422, (at, response.text)
        assert fields(response) == ["events[0].at"]
    outcome = {"lead_id": lead_id, "rep_id": "R001", "outcome": "won", "closed_at": "0016-01-01"}
    response = c.post("/v1/outcomes", json={"outcomes": [outcome]})
    assert response.status_code == 422 and fields(response) == ["outcomes[0].closed_at"]
    assert count(server, EventRow, lead_id=lead_id) == 1


def test_ids_are_stripped_as_the_library_strips_csv_cells(server: Server) -> None:
    # U+001D counts as whitespace for Python's str.strip (the library's CSV reading) but
    # not for pydantic's: the route failed with a 500 looking up the library's lead id
    base = f"SEP{next(_ids)}"
    c = server.client("router")
    response = c.post("/v1/route", json={"leads": [lead(lead_id=f"\x1d{base}\x1f ")]})
    assert response.status_code == 200, response.text
    assert response.json()["assignments"][0]["lead_id"] == base
    assert count(server, Lead, lead_id=base) == 1
    response = c.post("/v1/route", json={"leads": [lead(lead_id="\x1c\x1d")]})
    assert response.status_code == 422 and fields(response) == ["leads[0].lead_id"]


# ---------------------------------------------------------------- bad input
def test_bad_bodies_are_422_naming_the_field(server: Server) -> None:
    c = server.client("admin")
    cases = [
        ({"leads": [{"source": "x"}]}, "leads[0].lead_id"),
        ({"leads": [lead(), {"lead_id": "x", "nested": {"a": 1}}]}, "leads[1].nested"),
        ({"leads": []}, "leads"),
        ({"lead": []}, "leads"),
        ({"leads": [lead(created_at="not a date")]}, "leads[0].created_at"),
    ]
    for body, field in cases:
        response = c.post("/v1/route", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in fields(response), (body, response.text)
    json_type = {"content-type": "application/json"}
    response = c.post("/v1/score", content=b"{not json", headers=json_type)
    assert response.status_code == 422
    bad_outcome = {"outcomes": [{"lead_id": "a", "rep_id": "b", "outcome": "maybe"}]}
    assert fields(c.post("/v1/outcomes", json=bad_outcome)) == ["outcomes[0].outcome"]
    assert fields(c.post("/v1/lookalikes", json={"seeds": ["a"], "k": 0})) == ["k"]


def test_route_with_one_bad_lead_stores_nothing(server: Server) -> None:
    good, bad = lead("2026-12-06"), lead("2026-12-06", created_at="31/31/2026")
    response = server.client("router").post("/v1/route", json={"leads": [good, bad]})
    assert response.status_code == 422
    assert fields(response) == ["leads[1].created_at"]
    assert count(server, Lead, lead_id=good["lead_id"]) == 0
    assert count(server, Assignment, day="2026-12-06") == 0


def test_concurrent_routes_with_a_bad_lead_fail_only_that_request(server: Server) -> None:
    """Concurrent requests are routed in batches; a bad value fails its own request only."""
    day, bad = "2026-12-07", 5
    bodies = [[lead(day)] for _ in range(12)]
    bodies[bad] = [lead(day, created_at="31/31/2026")]

    def post(body: list[dict[str, Any]]) -> httpx.Response:
        with server.client("router") as c:
            return c.post("/v1/route", json={"leads": body})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, bodies))
    for k, (body, response) in enumerate(zip(bodies, responses, strict=True)):
        lead_id = body[0]["lead_id"]
        if k == bad:
            assert response.status_code == 422
            assert fields(response) == ["leads[0].created_at"]
            assert count(server, Lead, lead_id=lead_id) == 0
        else:
            assert response.status_code == 200, response.text
            assert [a["lead_id"] for a in response.json()["assignments"]] == [lead_id]
            assert count(server, Lead, lead_id=lead_id) == 1
    assert count(server, Assignment, day=day) == len(bodies) - 1


def test_a_lead_without_created_at_arrives_now(server: Server) -> None:
    from datetime import UTC, datetime

    lead_id = f"NOW{next(_ids):06d}"
    c = server.client("router")
    scored = c.post("/v1/score", json={"leads": [{"lead_id": lead_id + "s", "source": "partner"}]})
    assert scored.status_code == 200, scored.text
    today = datetime.now(UTC).date().isoformat()
    routed = c.post("/v1/route", json={"leads": [{"lead_id": lead_id, "created_at": None}]})
    assert routed.status_code == 200, routed.text
    assert count(server, Assignment, lead_id=lead_id, day=today) == 1


def test_ids_are_read_like_csv_cells_even_in_a_busy_batch(server: Server) -> None:
    """Surrounding spaces are not part of an id; they once failed a whole batch (500)."""
    day = "2026-12-08"
    bodies = [[lead(day)] for _ in range(12)]
    spaced = f" SP{next(_ids):06d}\u00a0"
    bodies[3] = [lead(day, lead_id=spaced)]

    def post(body: list[dict[str, Any]]) -> httpx.Response:
        with server.client("router") as c:
            return c.post("/v1/route", json={"leads": body})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies)
    assert responses[3].json()["assignments"][0]["lead_id"] == spaced.strip()
    assert count(server, Lead, lead_id=spaced.strip()) == 1


def test_limit_is_bounded(server: Server) -> None:
    c = server.client("admin")
    for limit in (0, 1001, -5):
        response = c.get(f"/v1/reps/{server.reps[0]}/leads", params={"limit": limit})
        assert response.status_code == 422 and fields(response) == ["limit"]


def test_body_over_the_limit_is_413(server: Server) -> None:
    body = b'{"leads": [' + b'{"lead_id": "x"},' * 100_000 + b'{"lead_id": "y"}]}'
    c = server.client("router")
    response = c.post("/v1/route", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413

    def chunks() -> Any:
        yield b'{"leads": ['
        for _ in range(100_000):
            yield b'{"lead_id": "x"},'
        yield b'{"lead_id": "y"}]}'

    streamed = c.post("/v1/route", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


# ---------------------------------------------------------------- reload
def test_reload_bad_folder_keeps_the_old_model(server: Server, tmp_path: Path) -> None:
    admin = server.client("admin")
    before = admin.get("/readyz").json()["model_version"]
    (tmp_path / "manifest.json").write_text("{not json")
    for folder in (tmp_path / "missing", tmp_path):
        response = admin.post("/v1/admin/reload", json={"path": str(folder)})
        assert response.status_code == 422
        assert fields(response) == ["path"]
        assert "model folder" in response.text and "Traceback" not in response.text
    assert admin.get("/readyz").json()["model_version"] == before
    assert admin.post("/v1/score", json={"leads": [lead()]}).status_code == 200
    good = admin.post("/v1/admin/reload", json={"path": str(server.model_dir)})
    assert good.status_code == 200
    assert good.json() == {"version": before, "previous": before}
    metrics = admin.get("/metrics").text
    assert 'leadrank_model_reloads_total{result="failed"} 2' in metrics


# ---------------------------------------------------------------- metrics and docs
def test_metrics_are_prometheus_text(server: Server) -> None:
    c = server.client("router")
    c.post("/v1/score", json={"leads": [lead()]})
    before = c.get("/metrics").text
    c.post("/v1/route", json={"leads": [lead()]})
    response = c.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'leadrank_requests_total{method="POST",route="/v1/score",status="200"}' in text
    bucket = 'leadrank_request_duration_seconds_bucket{method="POST",route="/v1/score",le="+Inf"}'
    assert bucket in text
    version = c.get("/readyz").json()["model_version"]
    assert f'leadrank_model_info{{version="{version}"}} 1' in text

    def batched(text: str) -> int:
        line = next(x for x in text.splitlines() if x.startswith("leadrank_route_batched_"))
        return int(line.split()[-1])

    assert batched(text) == batched(before) + 1  # per worker process: one here


def test_openapi_has_an_example_for_every_endpoint(server: Server) -> None:
    assert server.client().get("/docs").status_code == 200
    spec = server.client().get("/openapi.json").json()
    text_of = str
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "example" in text_of(op) or _refs_have_examples(spec, op), (method, path)


def _refs_have_examples(spec: dict[str, Any], op: dict[str, Any]) -> bool:
    """Whether a schema the operation answers with carries examples."""
    schemas = spec["components"]["schemas"]
    refs = [r.rsplit("/", 1)[-1] for r in _find_refs(op.get("responses", {}).get("200", {}))]
    return any("examples" in schemas[name] for name in refs)


def _find_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _find_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _find_refs(v)]
    return []
