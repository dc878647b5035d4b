"""FeatureEncoder: one indicator per column (and per crossed pair), round trips, crosses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recommender.columns import Role
from recommender.data.dataset import FeatureSpec
from recommender.errors import NotFittedError
from recommender.features import MAGNITUDE_MAX_EDGES, FeatureEncoder, magnitude_edges

SPECS = [
    FeatureSpec("industry", Role.CATEGORICAL),
    FeatureSpec("employees", Role.NUMERIC),
    FeatureSpec("country", Role.CATEGORICAL),
    FeatureSpec("note", Role.TEXT),
]


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Leads: industry (3 levels), employees (numeric), country (20 levels), free text."""
    rng = np.random.default_rng(seed)
    emp = np.exp(rng.normal(5, 1.5, n))
    emp[:10] = np.nan
    ind = rng.choice(["software", "retail", "banking"], n).astype(object)
    ind[10:15] = None
    return pd.DataFrame(
        {
            "industry": ind,
            "employees": emp,
            "country": rng.choice([f"C{k}" for k in range(20)], n),
            "note": ["x"] * n,
        }
    )


def test_one_indicator_per_column_without_crosses() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=0).fit(df, SPECS)
    x = enc.transform(df)
    assert x.shape == (len(df), enc.n_features_out) and x.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(x.sum(axis=1)).ravel(), 3.0)  # text is skipped
    assert "industry = (missing)" in enc.labels_ and "employees = (missing)" in enc.labels_
    row = x[10].indices  # industry missing
    assert enc.labels_.index("industry = (missing)") in row


def test_default_has_no_crosses() -> None:
    """Crosses measured worse on the simulated team (bench/affinity_quality.py): off."""
    df = frame()
    assert FeatureEncoder().fit(df, SPECS).crosses_ == []


def test_crosses_pair_low_cardinality_columns_only() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12).fit(df, SPECS)
    names = [c["name"] for c in enc.columns_]
    pairs = {(names[c["a"]], names[c["b"]]) for c in enc.crosses_}
    assert pairs == {("industry", "employees")}  # country has 20 levels: not crossed
    x = enc.transform(df)
    np.testing.assert_array_equal(np.asarray(x.sum(axis=1)).ravel(), 4.0)
    # the crossed indicator of a row names exactly its industry and its employees bin
    cross_labels = [enc.labels_[j] for j in x[20].indices if " & " in enc.labels_[j]]
    assert len(cross_labels) == 1
    own = [enc.labels_[j] for j in x[20].indices if " & " not in enc.labels_[j]]
    industry = next(s for s in own if s.startswith("industry"))
    employees = next(s for s in own if s.startswith("employees"))
    assert cross_labels[0] == f"{industry} & {employees}"


def test_cross_rare_pairs_and_unseen_values_fall_into_other() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12, min_count=5).fit(df, SPECS)
    new = pd.DataFrame({"industry": ["mining"], "employees": [50.0], "country": ["C1"]})
    labels = [enc.labels_[j] for j in enc.transform(new).indices]
    assert "industry = (other)" in labels
    assert "industry & employees = (other)" in labels  # pair never seen in training


def test_max_crosses_caps_and_prefers_fewest_levels() -> None:
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame(
        {
            "a": rng.choice(list("ab"), n),
            "b": rng.choice(list("abc"), n),
            "c": rng.choice(list("abcdef"), n),
        }
    )
    specs = [FeatureSpec(c, Role.CATEGORICAL) for c in "abc"]
    enc = FeatureEncoder(cross_max_levels=12, max_crosses=1).fit(df, specs)
    assert [(c["a"], c["b"]) for c in enc.crosses_] == [(0, 1)]  # 2 x 3 is the smallest
    assert len(FeatureEncoder(cross_max_levels=12).fit(df, specs).crosses_) == 3


def test_round_trip_json_with_crosses() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12, n_bins=4).fit(df, SPECS)
    back = FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back.labels_ == enc.labels_
    assert (back.transform(df) != enc.transform(df)).nnz == 0


def test_old_dict_without_crosses_loads() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=0).fit(df, SPECS)
    old = {k: v for k, v in enc.to_dict().items() if "cross" not in k}
    back = FeatureEncoder.from_dict(old)
    assert back.crosses_ == [] and (back.transform(df) != enc.transform(df)).nnz == 0


def test_absent_columns_are_missing_and_not_fitted_raises() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12).fit(df, SPECS)
    x = enc.transform(pd.DataFrame(index=range(2)))
    labels = [enc.labels_[j] for j in x[0].indices]
    assert "industry = (missing)" in labels and "employees = (missing)" in labels
    assert len(labels) == 4
    with pytest.raises(NotFittedError):
        FeatureEncoder().transform(df)


def test_cross_columns_restrict_crosses_to_pairs_within_the_list() -> None:
    rng = np.random.default_rng(2)
    n = 400
    df = pd.DataFrame({c: rng.choice(list("abc"), n) for c in "pqrs"})
    specs = [FeatureSpec(c, Role.CATEGORICAL) for c in "pqrs"]
    everything = FeatureEncoder(cross_max_levels=12).fit(df, specs)
    assert len(everything.crosses_) == 6  # every pair of the 4 columns
    enc = FeatureEncoder(cross_max_levels=12, cross_columns=["q", "s", "absent"]).fit(df, specs)
    names = [c["name"] for c in enc.columns_]
    assert [(names[c["a"]], names[c["b"]]) for c in enc.crosses_] == [("q", "s")]
    crossed = [label for label in enc.labels_ if " & " in label]
    assert crossed and all(
        label.startswith("q = ") and " & s = " in label for label in crossed[:-1]
    )
    assert crossed[-1] == "q & s = (other)"
    x = enc.transform(df)
    np.testing.assert_array_equal(np.asarray(x.sum(axis=1)).ravel(), 5.0)  # 4 columns + 1
    assert FeatureEncoder(cross_max_levels=12, cross_columns=[]).fit(df, specs).crosses_ == []
    assert FeatureEncoder(cross_max_levels=12, cross_columns=["q"]).fit(df, specs).crosses_ == []


def test_cross_columns_still_obey_cross_max_levels() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12, cross_columns=["industry", "country"]).fit(df, SPECS)
    assert enc.crosses_ == []  # country has 20 levels: no eligible pair is left


def test_round_trip_json_keeps_cross_columns() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12, cross_columns=("industry", "employees")).fit(
        df, SPECS
    )
    data = json.loads(json.dumps(enc.to_dict()))
    assert data["cross_columns"] == ["industry", "employees"]
    back = FeatureEncoder.from_dict(data)
    assert list(back.cross_columns or []) == ["industry", "employees"]
    assert back.crosses_ == enc.crosses_ and back.labels_ == enc.labels_
    assert (back.transform(df) != enc.transform(df)).nnz == 0
    # refitting the loaded encoder keeps the restriction
    refit = FeatureEncoder.from_dict(data)
    refit.fit(df, SPECS)
    assert refit.crosses_ == enc.crosses_
    unrestricted = FeatureEncoder(cross_max_levels=12).fit(df, SPECS).to_dict()
    assert FeatureEncoder.from_dict(unrestricted).cross_columns is None


def test_old_dict_without_cross_columns_loads_unrestricted() -> None:
    df = frame()
    enc = FeatureEncoder(cross_max_levels=12).fit(df, SPECS)
    old = {k: v for k, v in enc.to_dict().items() if k != "cross_columns"}
    back = FeatureEncoder.from_dict(old)
    assert back.cross_columns is None and back.crosses_ == enc.crosses_
    assert (back.transform(df) != enc.transform(df)).nnz == 0


def test_magnitude_edges_are_powers_of_ten_inside_a_wide_column() -> None:
    rng = np.random.default_rng(1)
    wide = np.exp(rng.normal(5, 1.5, 5_000))  # about 10 to 8,000
    edges = magnitude_edges(wide)
    assert edges is not None
    lo, hi = np.quantile(wide, [0.01, 0.99])
    assert np.all(np.log10(edges) == np.round(np.log10(edges)))
    assert edges.min() > lo and edges.max() <= hi
    assert edges.min() / 10 <= lo and edges.max() * 10 > hi  # every power inside is kept


@pytest.mark.parametrize(
    "values",
    [
        np.linspace(40.0, 60.0, 100),  # narrow: less than two orders of magnitude
        np.linspace(-500.0, 500.0, 100),  # 1st percentile not positive
        np.array([]),
    ],
)
def test_magnitude_edges_none_for_narrow_or_signed_columns(values: np.ndarray) -> None:
    assert magnitude_edges(values) is None


def test_magnitude_edges_ignore_nan_and_inf() -> None:
    rng = np.random.default_rng(1)
    wide = np.exp(rng.normal(5, 1.5, 5_000))
    bad = np.repeat([np.nan, np.inf, -np.inf], 300)  # 6% each: enough to move both ends
    mixed = rng.permutation(np.concatenate([wide, bad]))
    edges, clean = magnitude_edges(mixed), magnitude_edges(wide)
    assert edges is not None and clean is not None
    assert edges.tolist() == clean.tolist()


@pytest.mark.parametrize("values", [np.full(10, np.nan), np.array([np.nan, np.inf, -np.inf])])
def test_magnitude_edges_none_without_finite_values(values: np.ndarray) -> None:
    assert magnitude_edges(values) is None


@pytest.mark.parametrize(
    ("decades", "n_edges"),
    [(MAGNITUDE_MAX_EDGES, MAGNITUDE_MAX_EDGES), (MAGNITUDE_MAX_EDGES + 1, None), (300, None)],
)
def test_magnitude_edges_none_beyond_max_edges(decades: int, n_edges: int | None) -> None:
    edges = magnitude_edges(np.logspace(0.5, 0.5 + decades, 10_001))  # ``decades`` powers
    assert (None if edges is None else len(edges)) == n_edges


def test_magnitude_bins_keep_quantiles_for_a_column_over_too_many_decades() -> None:
    df = frame(2_000)
    df["balance"] = np.logspace(-100, 100, len(df))  # not a size column: 200 decades
    df.loc[:20, "balance"] = np.inf
    specs = [*SPECS, FeatureSpec("balance", Role.NUMERIC)]
    enc = FeatureEncoder(bins="magnitude").fit(df, specs)
    edges = {c["name"]: c.get("edges") for c in enc.columns_}
    quant = {c["name"]: c.get("edges") for c in FeatureEncoder().fit(df, specs).columns_}
    balance = edges["balance"]
    assert balance is not None and len(balance) == 4 and balance == quant["balance"]
    assert edges["employees"] == [10.0, 100.0, 1000.0]


def test_magnitude_bins_cut_wide_columns_and_keep_quantiles_for_others() -> None:
    df = frame(2_000)
    df["score"] = np.linspace(40.0, 60.0, len(df))
    specs = [*SPECS, FeatureSpec("score", Role.NUMERIC)]
    enc = FeatureEncoder(bins="magnitude").fit(df, specs)
    quant = FeatureEncoder().fit(df, specs)
    edges = {c["name"]: c.get("edges") for c in enc.columns_}
    assert edges["employees"] == [10.0, 100.0, 1000.0]
    assert edges["score"] == {c["name"]: c.get("edges") for c in quant.columns_}["score"]
    assert "employees in [100, 1000)" in enc.labels_
    x = enc.transform(pd.DataFrame({"employees": [99.0, 100.0, 5e6]}))
    hit = [enc.labels_[j] for j in x.indices if enc.labels_[j].startswith("employees")]
    assert hit == ["employees in [10, 100)", "employees in [100, 1000)", "employees in [1000, inf)"]
    again = FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again.bins == "magnitude" and again.labels_ == enc.labels_


def test_unknown_bins_rejected_and_old_dict_loads_as_quantile() -> None:
    with pytest.raises(ValueError, match="bins must be one of"):
        FeatureEncoder(bins="log")
    data = FeatureEncoder().fit(frame(), SPECS).to_dict()
    del data["bins"]
    assert FeatureEncoder.from_dict(data).bins == "quantile"
