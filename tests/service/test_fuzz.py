"""Malformed requests (hypothesis): never a 500, and every 422 names a field."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import Server

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
cells = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | json_values
lead_objects = st.dictionaries(
    st.sampled_from(["lead_id", "created_at", "source", "country", "pages_first_visit", "x"])
    | st.text(max_size=5),
    cells,
    max_size=6,
)
bodies = {
    "/v1/score": st.fixed_dictionaries({"leads": st.lists(lead_objects, max_size=3)}) | json_values,
    "/v1/route": st.fixed_dictionaries({"leads": st.lists(lead_objects, max_size=3)}) | json_values,
    "/v1/lookalikes": st.fixed_dictionaries(
        {"seeds": st.lists(st.text(max_size=10) | st.integers(), max_size=3), "k": cells}
    )
    | json_values,
    "/v1/outcomes": st.fixed_dictionaries(
        {
            "outcomes": st.lists(
                st.dictionaries(
                    st.sampled_from(["lead_id", "rep_id", "outcome", "closed_at", "value"]), cells
                ),
                max_size=3,
            )
        }
    ),
    "/v1/events": st.fixed_dictionaries(
        {
            "events": st.lists(
                st.dictionaries(st.sampled_from(["lead_id", "event", "at", "weight"]), cells),
                max_size=3,
            )
        }
    ),
}


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 422:
        detail = response.json()["detail"]
        assert isinstance(detail, list) and all(item["field"] for item in detail), detail


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(sorted(bodies)), data=st.data())
def test_malformed_bodies_never_500(server: Server, path: str, data: st.DataObject) -> None:
    body = data.draw(bodies[path])
    with server.client("admin") as c:
        # json.dumps writes NaN and Infinity as bare tokens: the server must cope with them
        content = json.dumps(body).encode()
        _check(c.post(path, content=content, headers={"content-type": "application/json"}))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(rep=st.text(min_size=1, max_size=30), limit=st.text(max_size=6) | st.integers())
def test_malformed_rep_list_queries_never_500(server: Server, rep: str, limit: Any) -> None:
    with server.client("admin") as c:
        _check(c.get(f"/v1/reps/{quote(rep, safe='')}/leads", params={"limit": limit}))


# Regressions found by bench/fuzz_service.py: each answered a 4xx that named no field.
def _body_field_422(response: Any) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [item["field"] for item in detail] == ["body"], detail
    assert detail[0]["type"] == "json_invalid" and "not valid JSON" in detail[0]["msg"]


def test_body_that_is_not_utf8_is_422_naming_the_body(server: Server) -> None:
    # FastAPI answered 400 "There was an error parsing the body"
    with server.client("admin") as c:
        body = b'{"leads": [{"lead_id": "\xff"}]}'
        r = c.post("/v1/score", content=body, headers={"content-type": "application/json"})
    _body_field_422(r)
    assert "UTF-8" in r.json()["detail"][0]["msg"]


def test_body_nested_too_deeply_is_422_naming_the_body(server: Server) -> None:
    body = b'{"leads": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    with server.client("admin") as c:
        r = c.post("/v1/route", content=body, headers={"content-type": "application/json"})
    _body_field_422(r)


def test_integer_of_5000_digits_is_422_naming_the_body(server: Server) -> None:
    body = b'{"seeds": ["a"], "k": ' + b"9" * 5000 + b"}"
    with server.client("admin") as c:
        r = c.post("/v1/lookalikes", content=body, headers={"content-type": "application/json"})
    _body_field_422(r)


def test_json_syntax_error_names_the_body_not_a_character_offset(server: Server) -> None:
    # the field was "[9]": FastAPI puts the character offset where the field name belongs
    with server.client("admin") as c:
        r = c.post(
            "/v1/score", content=b'{"leads": [', headers={"content-type": "application/json"}
        )
    _body_field_422(r)
    assert "at character" in r.json()["detail"][0]["msg"]


def test_unknown_key_names_the_authorization_header(server: Server) -> None:
    with server.client() as c:
        r = c.get("/readyz", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "Authorization" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_unknown_path_and_method_name_the_path(server: Server) -> None:
    with server.client("admin") as c:
        missing = c.get("/v1/nowhere")
        wrong = c.delete("/v1/score")
    assert missing.status_code == 404 and "'/v1/nowhere'" in missing.json()["detail"]
    assert wrong.status_code == 405 and "'/v1/score'" in wrong.json()["detail"]


def test_rep_id_with_a_slash_is_404_naming_the_rep(server: Server) -> None:
    # "/" in a rep id ("team/alice") matched no route: a bare 404 "Not Found"
    with server.client("admin") as c:
        listed = c.get(f"/v1/reps/{quote('team/alice', safe='')}/leads")
        updated = c.put(f"/v1/admin/reps/{quote('team/alice', safe='')}", json={"capacity": 3})
    assert listed.status_code == 404 and "'team/alice'" in listed.json()["detail"]
    assert updated.status_code == 404 and "'team/alice'" in updated.json()["detail"]


def test_rep_routes_still_work_for_a_known_rep(server: Server) -> None:
    rep = server.reps[2]
    with server.client("admin") as c:
        listed = c.get(f"/v1/reps/{rep}/leads")
    assert listed.status_code == 200 and listed.json()["rep_id"] == rep
