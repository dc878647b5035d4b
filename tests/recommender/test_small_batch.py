"""The few-leads path (no intermediate frames) gives exactly what the frame path gave.

``leads_from_records`` and ``ModelBundle.route`` build numpy columns instead of frames,
parse a few plain ISO dates with numpy and look categories up in dicts. The reference
below is the code they replaced (frames, ``pd.to_datetime``, full sorts), kept here only
to compare: typed leads, probabilities, choices, runners-up and error messages must match
on random simulated leads, odd values included, one at a time and as a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recommender import routing
from recommender.bundle import ModelBundle, _cell, _runners_up, _top_order, empty_events
from recommender.columns import Columns, Role
from recommender.data.dataset import FeatureColumns, FeatureSpec
from recommender.data.parse import MAX_YEAR, MIN_YEAR, missing_mask
from recommender.data.simulate import simulate
from recommender.errors import DataError
from recommender.models.channel import ChannelPrior
from recommender.models.gbm import GradientBoosting
from recommender.models.scorecard import Scorecard
from recommender.pipeline import train
from recommender.scoring import clip_probability

# ----------------------------------------------------------------- reference (old code)


def _blank(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[empty] = None
    return out


def _err(message: str, pos: int, column: str) -> DataError:
    return DataError(message, file="leads", row=pos + 1, column=column)


def ref_ids(values: np.ndarray, column: str, unique: bool, required: bool) -> pd.Series:
    empty = missing_mask(values)
    if required and empty.any():
        raise _err("is empty", int(np.flatnonzero(empty)[0]), column)
    if unique:
        dup = pd.Index(values).duplicated() & ~empty
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            raise _err(f"duplicate id '{values[pos]}'", pos, column)
    return pd.Series(_blank(values, empty), dtype=object)


def ref_times(values: np.ndarray, column: str) -> pd.Series:
    empty = missing_mask(values)
    if empty.any():
        raise _err("is empty", int(np.flatnonzero(empty)[0]), column)
    parsed = pd.DatetimeIndex(
        pd.to_datetime(_blank(values, empty), format="ISO8601", utc=True, errors="coerce")
    )
    years = np.asarray(parsed.year, dtype="float64")
    bad = (np.asarray(parsed.isna()) | ~((years >= MIN_YEAR) & (years <= MAX_YEAR))) & ~empty
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise _err(
            f"'{values[pos]}' is not an ISO 8601 date or datetime "
            f"between {MIN_YEAR} and {MAX_YEAR}",
            pos,
            column,
        )
    naive = parsed.tz_convert(None).to_numpy().astype("datetime64[ns]")
    return pd.Series(naive)


def ref_numbers(values: np.ndarray, column: str, missing: tuple[str, ...]) -> pd.Series:
    empty = missing_mask(values, missing)
    arr = np.asarray(pd.to_numeric(_blank(values, empty), errors="coerce"), dtype="float64")
    bad = (np.isnan(arr) & ~empty) | np.isinf(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise _err(f"'{values[pos]}' is not a number", pos, column)
    return pd.Series(arr, dtype="float64")


def ref_records(bundle: ModelBundle, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The old ``leads_from_records``: a frame of strings, then column by column."""
    rows = [{str(k): _cell(v, i + 1, str(k)) for k, v in r.items()} for i, r in enumerate(records)]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    frame = pd.DataFrame(
        [[r.get(c, "") for c in columns] for r in rows], columns=columns, dtype=object
    )
    for name in (Columns.LEAD, Columns.CREATED):
        if name not in frame.columns:
            raise DataError("required column is missing", file="leads", row=1, column=name)
    cells = {c: np.asarray(frame[c].to_numpy(dtype=object)) for c in frame.columns}
    roles, missing = bundle.schema.roles, bundle.schema.missing
    parsed = {
        Columns.LEAD: ref_ids(cells[Columns.LEAD], Columns.LEAD, True, True),
        Columns.CREATED: ref_times(cells[Columns.CREATED], Columns.CREATED),
    }
    if Columns.ACCOUNT in cells:
        parsed[Columns.ACCOUNT] = ref_ids(cells[Columns.ACCOUNT], Columns.ACCOUNT, False, False)
    for c in columns:
        if c in (Columns.LEAD, Columns.CREATED, Columns.ACCOUNT):
            continue
        if roles.get(c, Role.CATEGORICAL) == Role.NUMERIC:
            parsed[c] = ref_numbers(cells[c], c, missing)
        else:
            parsed[c] = pd.Series(_blank(cells[c], missing_mask(cells[c], missing)), dtype=object)
    return pd.DataFrame({c: parsed[c] for c in columns}, index=frame.index)


def ref_feature_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """The old ``Dataset.feature_frame``: one Series per categorical column."""
    n = len(frame)
    names = [f.name for f in bundle.features]
    columns = {name: frame[name].to_numpy() for name in names if name in frame.columns}
    acc = bundle.accounts
    if acc is not None and Columns.ACCOUNT in frame.columns:
        index = pd.Index(acc[Columns.ACCOUNT].to_numpy(dtype=object))
        pos = index.get_indexer(pd.Index(frame[Columns.ACCOUNT].to_numpy(dtype=object)))
        for spec in bundle.features:
            if spec.origin == "account" and spec.name in acc.columns:
                joined = np.append(acc[spec.name].to_numpy(dtype=object), np.array([None]))
                columns[spec.name] = joined.take(pos)
    out: dict[str, Any] = {}
    for spec in bundle.features:
        col = columns.get(spec.name)
        if spec.role == Role.NUMERIC:
            if col is None:
                out[spec.name] = np.full(n, np.nan)
            elif col.dtype == np.float64:
                out[spec.name] = np.array(col, dtype=np.float64)
            else:
                out[spec.name] = pd.to_numeric(
                    pd.Series(col, dtype=object), errors="coerce"
                ).to_numpy(dtype="float64", na_value=np.nan)
        else:
            obj = np.full(n, None, dtype=object) if col is None else np.array(col, dtype=object)
            obj[pd.isna(obj)] = None
            out[spec.name] = pd.Series(obj, dtype=object, copy=False)
    return pd.DataFrame(out, index=pd.RangeIndex(n), columns=names)


def ref_route(bundle: ModelBundle, leads: pd.DataFrame, reps: pd.DataFrame, k: int) -> pd.DataFrame:
    """The old ``route`` (no rules, no exploration): frames, then a full sort per lead."""
    frame = ref_feature_frame(bundle, leads)
    created = leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")
    eng = bundle.engagement.transform(
        empty_events(), leads[Columns.LEAD].astype(str).tolist(), created
    )
    eng.index = frame.index
    scored_p = clip_probability(bundle.scorer.predict_proba(pd.concat([frame, eng], axis=1)))
    rep_ids = [str(r) for r in reps[Columns.REP]]
    prob = bundle.rep_probabilities(leads, rep_ids, base_probability=scored_p, frame=frame)
    day_keys = routing.days_since_epoch(created)
    capacity = reps[Columns.CAPACITY].astype("Float64").fillna(-1).to_numpy(dtype=float)
    active = reps[Columns.ACTIVE].astype(bool).to_numpy()
    result = routing.route(
        prob,
        day=day_keys,
        capacity=np.where(capacity < 0, -1, capacity).astype(np.int64),
        active=active,
        used={},
        seed=0,
    )
    order = np.argsort(-prob, axis=1, kind="stable")
    chosen = result.rep_index
    alternatives = np.empty(len(leads), dtype=object)
    for i in range(len(leads)):
        runners = _runners_up(order[i], int(chosen[i]), active, k)
        alternatives[i] = [
            {Columns.REP: rep_ids[a], "probability": float(prob[i, a])} for a in runners
        ]
    return pd.DataFrame(
        {
            Columns.LEAD: leads[Columns.LEAD].tolist(),
            Columns.REP: pd.Series([rep_ids[j] if j >= 0 else None for j in chosen], dtype=object),
            "probability": [
                float(prob[i, j]) if j >= 0 else float(scored_p[i]) for i, j in enumerate(chosen)
            ],
            "policy": [str(v) for v in result.policy],
            "propensity": [float(v) for v in result.propensity],
            "reason": pd.Series(
                [None if v is None or v != v else v for v in result.reason], dtype=object
            ),
            "day": [routing.default_day_label(int(d)) for d in day_keys],
            "alternatives": pd.Series(alternatives, dtype=object),
        }
    )


# ----------------------------------------------------------------- data


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "team"
    simulate(out, n_leads=1500, n_reps=12, seed=21)
    return out


@pytest.fixture(scope="module")
def bundle(team: Path) -> ModelBundle:
    return train(team)


ODD_TIMES = [
    "2026-03-01",
    "2026-03-01 08:30",
    "2026-03-01T08:30:15.5",
    "2026-03-01T08:30:15.123456789",
    "2026-03-01T23:59:59",
    "2026-03-01T08:30:00Z",
    "2026-03-01T08:30:00+02:00",
    "2026-03-01T00:00:00-11:30",
    "2024-02-29",
    "1678-01-01",
    "2261-12-31T23:59:59",
]
BAD_TIMES = ["2026-02-30", "2026-13-01", "1600-01-01", "2300-01-01", "soon", "2026/03/01"]
ODD_VALUES: list[Any] = [None, "", "  ", 0, 7, -3, 2.5, 1e300, True, False, "NA", "n/a", "zz"]


def records(team: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` leads of the simulated file, with random odd values and layouts."""
    raw = pd.read_csv(team / "leads.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(raw.sample(n, random_state=seed).to_dict("records")):
        rec: dict[str, Any] = {str(k): v for k, v in row.items()}
        rec[Columns.LEAD] = f"S{seed}-{i}"
        if rng.random() < 0.3:
            rec[Columns.CREATED] = ODD_TIMES[rng.integers(len(ODD_TIMES))]
        for key in list(rec):
            if key in (Columns.LEAD, Columns.CREATED):
                continue
            u = rng.random()
            if u < 0.08:
                rec[key] = ODD_VALUES[rng.integers(len(ODD_VALUES))]
            elif u < 0.12:
                del rec[key]
            elif u < 0.2 and str(rec[key]).replace(".", "", 1).isdigit():
                rec[key] = float(rec[key]) if "." in str(rec[key]) else int(rec[key])
        if rng.random() < 0.05:
            rec[Columns.ACCOUNT] = "A-UNKNOWN"
        out.append(rec)
    return out


def unlimited(bundle: ModelBundle) -> pd.DataFrame:
    reps = bundle.reps.copy()
    reps[Columns.CAPACITY] = pd.array([None] * len(reps), dtype="Int64")
    reps.loc[reps.index[::4], Columns.ACTIVE] = False  # a few inactive reps
    return reps


# ----------------------------------------------------------------- tests


def test_records_type_exactly_as_before(bundle: ModelBundle, team: Path) -> None:
    recs = records(team, 300, seed=1)
    batch = bundle.leads_from_records(recs)  # over the small-batch size: pandas parsing
    pd.testing.assert_frame_equal(batch, ref_records(bundle, recs), check_exact=True)
    for i, rec in enumerate(recs[:150]):  # one at a time: numpy dates, set-based ids
        one = bundle.leads_from_records([rec])
        pd.testing.assert_frame_equal(one, ref_records(bundle, [rec]), check_exact=True)
        expected = batch.iloc[[i]].reset_index(drop=True)[list(one.columns)]
        pd.testing.assert_frame_equal(one, expected, check_exact=True)


@pytest.mark.parametrize("bad", BAD_TIMES)
def test_bad_values_raise_the_same_error(bundle: ModelBundle, bad: str) -> None:
    recs: list[dict[str, Any]] = [
        {"lead_id": "A", "created_at": "2026-01-01"},
        {"lead_id": "B", "created_at": bad},
    ]
    try:
        expected = ref_records(bundle, recs)
    except DataError as exc:
        with pytest.raises(DataError) as new:
            bundle.leads_from_records(recs)
        assert str(new.value) == str(exc)
        assert (new.value.file, new.value.row, new.value.column) == ("leads", 2, Columns.CREATED)
    else:  # pandas reads a few other layouts too ("2026/03/01"): so must the new path
        assert bad == "2026/03/01"
        pd.testing.assert_frame_equal(bundle.leads_from_records(recs), expected, check_exact=True)


@pytest.mark.parametrize(
    "recs",
    [
        [
            {"lead_id": "A", "created_at": "2026-01-01"},
            {"lead_id": "A", "created_at": "2026-01-02"},
        ],
        [{"lead_id": "A", "created_at": "2026-01-01"}, {"lead_id": "", "created_at": "2026-01-02"}],
        [{"lead_id": "A", "created_at": "2026-01-01"}, {"lead_id": "B", "created_at": None}],
        [{"lead_id": "A"}],
        [{"created_at": "2026-01-01"}],
        [],
    ],
)
def test_bad_leads_raise_the_same_error(bundle: ModelBundle, recs: list[dict[str, Any]]) -> None:
    with pytest.raises(DataError) as new:
        bundle.leads_from_records(recs)
    with pytest.raises(DataError) as old:
        ref_records(bundle, recs)
    assert str(new.value) == str(old.value)
    assert (new.value.row, new.value.column) == (old.value.row, old.value.column)


def test_route_matches_the_frame_path(bundle: ModelBundle, team: Path) -> None:
    reps = unlimited(bundle)
    recs = records(team, 250, seed=2)
    leads = bundle.leads_from_records(recs)
    batch = bundle.route(leads, reps=reps, used={}, n_alternatives=3)
    pd.testing.assert_frame_equal(batch, ref_route(bundle, leads, reps, 3), check_exact=True)
    for i in range(0, 250, 3):
        lead = bundle.leads_from_records([recs[i]])
        one = bundle.route(lead, reps=reps, used={}, n_alternatives=3)
        pd.testing.assert_frame_equal(one, ref_route(bundle, lead, reps, 3), check_exact=True)


def test_inputs_and_scores_match_the_frame_path(bundle: ModelBundle, team: Path) -> None:
    leads = bundle.leads_from_records(records(team, 200, seed=3))
    frame = ref_feature_frame(bundle, leads)
    pd.testing.assert_frame_equal(bundle._feature_frame(leads).to_frame(), frame, check_exact=True)
    created = leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")
    inputs = bundle.model_inputs(leads, as_of=created)
    eng = bundle.engagement.transform(empty_events(), leads[Columns.LEAD].tolist(), created)
    expected = pd.concat([frame, eng], axis=1)
    pd.testing.assert_frame_equal(inputs, expected, check_exact=True)
    assert np.array_equal(
        bundle.scorer.predict_proba(expected), bundle.scorer.predict_proba(inputs)
    )
    one = [bundle.rep_probabilities(leads.iloc[[i]]) for i in range(0, 200, 7)]
    assert np.array_equal(np.vstack(one), bundle.rep_probabilities(leads)[::7])


@pytest.mark.parametrize("seed", range(20))
def test_partial_order_gives_the_runners_up_of_a_full_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_reps = int(rng.integers(2, 60))
    prob = np.round(rng.random((5, n_reps)), int(rng.integers(1, 3)))  # many ties
    active = rng.random(n_reps) < rng.uniform(0.2, 1.0)
    prob[:, ~active] += 0.5  # inactive reps on top: the runners-up lie deeper
    full = np.argsort(-prob, axis=1, kind="stable")
    for k in (0, 1, 3, 10):
        top = _top_order(prob, active, k)
        for i in range(len(prob)):
            for chosen in (-1, int(full[i, 0]), int(rng.integers(n_reps))):
                expected = _runners_up(full[i], chosen, active, k)
                assert _runners_up(top[i], chosen, active, k) == expected


def test_models_agree_on_one_row_arrays_and_a_frame(bundle: ModelBundle, team: Path) -> None:
    leads = bundle.leads_from_records(records(team, 300, seed=4))
    X = bundle.model_inputs(leads, as_of=leads[Columns.CREATED].to_numpy())
    y = np.random.default_rng(4).random(len(X)) < 0.3
    specs = [
        *bundle.features,
        *(FeatureSpec(n, Role.NUMERIC) for n in bundle.engagement.feature_names_),
    ]
    models: list[Any] = [
        Scorecard(min_iv=0.0).fit(X, y, specs),
        ChannelPrior().fit(X, y, specs),
        GradientBoosting().fit(X, y, specs),
        bundle.scorer,
    ]
    arrays = {str(c): X[c].to_numpy() for c in X.columns}
    batch = FeatureColumns(arrays, len(X))  # over the small-batch size: index lookups
    for model in models:
        full = model.decision_function(X)
        assert np.array_equal(model.decision_function(batch), full)
        assert np.array_equal(model.explain(batch), model.explain(X))
        for i in range(0, len(X), 5):  # one row: dict lookups, no missing-value scans
            one = FeatureColumns({c: a[i : i + 1] for c, a in arrays.items()}, 1)
            row = X.iloc[[i]].reset_index(drop=True)
            assert np.array_equal(model.decision_function(one), model.decision_function(row))
            assert np.array_equal(model.explain(one), model.explain(row))
            # a one-row product may round its last bit unlike the batch's (BLAS blocking)
            assert np.allclose(model.decision_function(one), full[i], rtol=0, atol=1e-12)
