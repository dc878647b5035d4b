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
