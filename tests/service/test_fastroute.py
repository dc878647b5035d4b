"""``POST /v1/route`` by the quick path (``service/fastroute.py``) answers as the usual one.

The shared ``server`` fixture never caches keys, so every request there goes the usual
way; this module runs its own server with the key cache on, where a router key seen
once takes the quick path afterwards.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from svc_helpers import Server, free_port, new_lead, running

from service.cli_support import create_key
from service.config import Settings
from service.fastroute import FastRoute
from service.main import create_app
from service.routers.leads import router as leads_router
from service.store.db import make_engine, write_transaction
from service.store.keys import hash_key
from service.store.models import ApiKey

_ids = itertools.count()
PLAIN = {"content-type": "application/json"}
USUAL = {"content-type": "application/json; charset=utf-8"}  # JSON too, but not quick


def lead(day: str = "2027-03-01", **extra: Any) -> dict[str, Any]:
    """A new lead created on ``day`` with a unique id."""
    return new_lead("Q", day, **extra)


def quick_answers() -> int:
    """How many requests the ``/v1/route`` route answered by the quick path so far."""
    route = next(r for r in leads_router.routes if getattr(r, "path", "") == "/v1/route")
    assert isinstance(route, FastRoute)
    return route.quick_answers


@pytest.fixture(scope="module")
def cached(db_url: str, model_dir: Path) -> Iterator[Server]:
    """A server whose key cache is on (60 s), on the session's database."""
    from recommender.pipeline import ModelBundle

    reps = [str(r) for r in ModelBundle.load(model_dir).reps["rep_id"]]
    settings = Settings(database_url=db_url, model_path=model_dir, key_cache_seconds=60.0)
    port = free_port()
    with running(create_app(settings), port, log_level="warning"):
        roles = ("admin", "router", "marketer", f"rep:{reps[0]}")
        keys = {role: create_key(role, db_url) for role in roles}
        keys["rep"] = keys.pop(f"rep:{reps[0]}")
        server = Server(f"http://127.0.0.1:{port}", db_url, model_dir, keys, reps)
        for role in keys:  # every key verified once: cached from now on
            with server.client(role) as c:
                c.post("/v1/route", json={"leads": [lead()]})
        yield server


def post(server: Server, role: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST ``body`` to ``/v1/route`` with ``role``'s key and ``headers``."""
    with server.client(role) as c:
        return c.post("/v1/route", content=body, headers=headers)


def test_quick_answer_is_the_usual_answer(cached: Server) -> None:
    body = httpx.Request("POST", "/", json={"leads": [lead(), lead("2027-03-02")]}).content
    before = quick_answers()
    quick = post(cached, "router", body, PLAIN)
    assert quick_answers() == before + 1
    assert quick.status_code == 200, quick.text
    usual = post(cached, "router", body, USUAL)  # the same leads: their stored assignments
    assert quick_answers() == before + 1
    assert usual.status_code == 200, usual.text
    assert quick.content == usual.content
    for name in ("content-type", "content-length"):
        assert quick.headers[name] == usual.headers[name]
    assignments = quick.json()["assignments"]
    assert [a["rep_id"] in cached.reps for a in assignments] == [True, True]


def test_a_number_id_is_read_alike_on_both_paths(cached: Server) -> None:
    # pydantic's JSON mode reads 7.0 as "7" where FastAPI (Python mode) reads "7.0": the
    # same lead sent by both paths would be stored twice and routed twice
    n = next(_ids) + 1000
    body = b'{"leads": [{"lead_id": %d.0, "created_at": "2027-03-05"}]}' % n
    before = quick_answers()
    quick = post(cached, "router", body, PLAIN)
    assert quick_answers() == before + 1
    usual = post(cached, "router", body, USUAL)
    assert quick.status_code == usual.status_code == 200, quick.text
    assert quick.json()["assignments"][0]["lead_id"] == f"{n}.0"
    assert quick.content == usual.content  # the stored first assignment, not a second one


BAD_BODIES = [
    (b'{"leads": [{"source": "x"}]}', "leads[0].lead_id"),
    (b'{"leads": []}', "leads"),
    (b'{"lead": []}', "leads"),
    (b'{"leads": [{"lead_id": "x", "created_at": "not a date"}]}', "leads[0].created_at"),
    (b'{"leads": [{"lead_id": "d"}, {"lead_id": "d"}]}', "leads"),
    (b'{"leads": [{"lead_id": "n", "x": NaN}]}', "leads[0].x"),
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_bodies_with_a_cached_key_are_422_as_usual(
    cached: Server, body: bytes, field: str
) -> None:
    before = quick_answers()
    quick, usual = post(cached, "router", body, PLAIN), post(cached, "router", body, USUAL)
    assert quick_answers() == before
    assert quick.status_code == usual.status_code == 422, quick.text
    assert field in [item["field"] for item in quick.json()["detail"]], quick.text
    assert "Traceback" not in quick.text
    assert quick.json() == usual.json()


def test_cached_key_of_another_role_is_403(cached: Server) -> None:
    body = httpx.Request("POST", "/", json={"leads": [lead()]}).content
    response = post(cached, "marketer", body, PLAIN)
    assert response.status_code == 403 and "role" in response.json()["detail"]
    other_scheme = {**PLAIN, "Authorization": f"Basic {cached.keys['router']}"}
    with httpx.Client(base_url=cached.url, timeout=60) as c:
        assert c.post("/v1/route", content=body, headers=other_scheme).status_code == 401


def test_cached_rep_key_is_403_on_both_paths(cached: Server) -> None:
    body = httpx.Request("POST", "/", json={"leads": [lead()]}).content
    before = quick_answers()
    for _ in range(2):  # the first call verifies (and caches) the key, the second hits it
        response = post(cached, "rep", body, PLAIN)
        assert response.status_code == 403 and "role" in response.json()["detail"]
    assert quick_answers() == before


def test_revoked_key_is_refused_once_the_cache_lets_it_go(db_url: str, model_dir: Path) -> None:
    """A short cache: a revoked key still routes until its entry expires, then 401; and an
    app with dependency overrides never takes the quick path."""
    settings = Settings(database_url=db_url, model_path=model_dir, key_cache_seconds=0.5)
    app = create_app(settings)
    port = free_port()
    secret = create_key("router", db_url)
    body = httpx.Request("POST", "/", json={"leads": [lead()]}).content
    headers = {**PLAIN, "Authorization": f"Bearer {secret}"}
    with (
        running(app, port, log_level="warning"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c,
    ):
        assert c.post("/v1/route", content=body, headers=headers).status_code == 200
        engine = make_engine(db_url)
        with write_transaction(engine) as conn:
            conn.execute(delete(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        engine.dispose()
        time.sleep(0.7)
        again = httpx.Request("POST", "/", json={"leads": [lead()]}).content
        assert c.post("/v1/route", content=again, headers=headers).status_code == 401
        router = create_key("router", db_url)
        headers = {**PLAIN, "Authorization": f"Bearer {router}"}
        assert c.post("/v1/route", content=again, headers=headers).status_code == 200  # cached
        app.dependency_overrides[create_key] = create_key  # any override at all
        before = quick_answers()
        third = httpx.Request("POST", "/", json={"leads": [lead()]}).content
        assert c.post("/v1/route", content=third, headers=headers).status_code == 200
        assert quick_answers() == before


def test_quick_path_never_overfills_a_rep(cached: Server) -> None:
    day = "2027-03-20"
    admin = cached.client("admin")
    for rep_id in cached.reps:
        assert admin.put(f"/v1/admin/reps/{rep_id}", json={"capacity": 2}).status_code == 200
    before = quick_answers()
    try:

        def route_one(one: dict[str, Any]) -> dict[str, Any]:
            body = httpx.Request("POST", "/", json={"leads": [one]}).content
            r = post(cached, "router", body, PLAIN)
            assert r.status_code == 200, r.text
            return dict(r.json()["assignments"][0])

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(route_one, [lead(day) for _ in range(40)]))
    finally:
        for rep_id in cached.reps:
            admin.put(f"/v1/admin/reps/{rep_id}", json={"capacity": None})
    assert quick_answers() == before + 40
    assigned = [r["rep_id"] for r in results if r["rep_id"] is not None]
    assert max(assigned.count(rep) for rep in cached.reps) <= 2
    assert len(assigned) == 2 * len(cached.reps)
    assert all(r["reason"] for r in results if r["rep_id"] is None)
