"""Metrics on tiny examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recommender.evaluation import metrics as m


def _f(value: float | None) -> float:
    """The value, asserted to be a number (for comparisons)."""
    assert value is not None
    return value


# ---------------------------------------------------------------- binary_metrics


def test_binary_metrics_perfect_separation() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9])
    out = m.binary_metrics(y, p)
    assert out["auc"] == 1.0
    assert out["average_precision"] == 1.0
    assert out["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    expected_ll = -(math.log(0.9) + math.log(0.8) + math.log(0.8) + math.log(0.9)) / 4
    assert out["log_loss"] == pytest.approx(expected_ll)
    assert out["n"] == 4 and out["n_positive"] == 2 and out["reason"] is None


def test_binary_metrics_hand_auc() -> None:
    # pairs (pos, neg): (0.4 vs 0.1) win, (0.4 vs 0.5) loss, (0.7 vs both) win -> 3/4
    out = m.binary_metrics(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.5, 0.7]))
    assert out["auc"] == pytest.approx(0.75)


def test_binary_metrics_one_class_keeps_proper_scores() -> None:
    out = m.binary_metrics(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]))
    assert out["auc"] is None and out["average_precision"] is None
    assert out["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    assert out["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7])))
    assert "one class" in out["reason"]


def test_binary_metrics_empty_and_bad_input() -> None:
    out = m.binary_metrics(np.array([], dtype=int), np.array([]))
    assert all(out[k] is None for k in ("auc", "average_precision", "log_loss", "brier"))
    with pytest.raises(ValueError):
        m.binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        m.binary_metrics(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError):
        m.binary_metrics(np.array([0, 1]), np.array([0.1]))


def test_constant_log_loss() -> None:
    y = np.array([1, 0, 0, 0])
    assert m.constant_log_loss(y, 0.25) == pytest.approx(-(math.log(0.25) + 3 * math.log(0.75)) / 4)
    assert m.constant_log_loss(np.array([], dtype=int), 0.5) is None


# ---------------------------------------------------------------- gains


def test_gains_perfect_and_reversed_order() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    perfect = np.arange(10, 0, -1, dtype=float)  # first leads score highest
    assert m.gains(y, perfect) == {"0.1": 0.5, "0.2": 1.0, "0.3": 1.0}
    assert m.gains(y, -perfect) == {"0.1": 0.0, "0.2": 0.0, "0.3": 0.0}


def test_gains_interpolates_partial_leads() -> None:
    y = np.array([1, 0, 0, 0])
    # 0.1 * 4 = 0.4 of the first (converted) lead -> 0.4 of one conversion
    assert m.gains(y, np.array([4.0, 3, 2, 1]), shares=(0.1, 0.5))["0.1"] == pytest.approx(0.4)


def test_gains_ties_keep_input_order() -> None:
    y = np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    flat = np.zeros(10)
    assert m.gains(y, flat)["0.1"] == 0.0
    assert m.gains(y, flat)["0.2"] == 1.0


def test_gains_none_without_positives() -> None:
    assert m.gains(np.zeros(5, dtype=int), np.arange(5.0)) == {
        "0.1": None,
        "0.2": None,
        "0.3": None,
    }


def test_gains_in_order_by_time() -> None:
    y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    times = pd.to_datetime(
        [
            *("2024-01-10", "2024-01-09", "2024-01-08", "2024-01-01", "2024-01-07"),
            *("2024-01-06", "2024-01-05", "2024-01-04", "2024-01-03", "2024-01-02"),
        ]
    )
    out = m.gains_in_order(y, times.to_numpy())
    assert out == {"0.1": 0.5, "0.2": 1.0, "0.3": 1.0}


# ---------------------------------------------------------------- calibration, PSI, grades


def test_calibration_of_perfect_probabilities() -> None:
    p = np.array([0.2] * 10 + [0.8] * 10)
    y = np.array([1, 1] + [0] * 8 + [1] * 8 + [0, 0])
    rows = m.calibration_table(y, p, n_bins=4)
    assert [r["n"] for r in rows] == [10, 10]
    for r in rows:
        assert r["observed_rate"] == pytest.approx(r["mean_p"])
    assert m.calibration_table(np.array([], dtype=int), np.array([])) == []


def test_calibration_bins_are_quantiles() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < p).astype(int)
    rows = m.calibration_table(y, p, n_bins=10)
    assert len(rows) == 10 and all(r["n"] == 100 for r in rows)
    assert all(abs(r["observed_rate"] - r["mean_p"]) < 0.15 for r in rows)


def test_psi_identical_small_and_shifted_large() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=2000)
    assert m.psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert _f(m.psi(a, rng.normal(size=2000))) < 0.1
    assert _f(m.psi(a, rng.normal(loc=1.5, size=2000))) > 0.25
    assert m.psi(a, np.array([])) is None


def test_psi_hand_computed() -> None:
    # cut points of expected [1, 2, 3, 4] with 2 bins: median 2.5 -> shares 0.5 / 0.5
    # actual [1, 1, 1, 4]: shares 0.75 / 0.25
    expected = 0.25 * math.log(0.75 / 0.5) + (-0.25) * math.log(0.25 / 0.5)
    assert m.psi(np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 1, 4]), n_bins=2) == pytest.approx(
        expected
    )


def test_psi_constant_expected_sees_a_shift() -> None:
    assert _f(m.psi(np.full(10, 0.5), np.full(10, 0.9))) > 1.0


def test_grade_table() -> None:
    rows = m.grade_table(np.array([1, 1, 0, 1, 0, 0]), np.array(["A", "A", "B", "B", "D", "D"]))
    by = {r["grade"]: r for r in rows}
    assert [r["grade"] for r in rows] == ["A", "B", "C", "D"]
    assert by["A"] == {"grade": "A", "n": 2, "converted": 2, "rate": 1.0}
    assert by["B"]["rate"] == 0.5 and by["C"]["rate"] is None and by["D"]["rate"] == 0.0


# ---------------------------------------------------------------- ranking


def test_ranking_metrics_known_ranks() -> None:
    out = m.ranking_metrics(np.array([1, 2, 4, 10]))
    assert out["n"] == 4
    assert out["hr@1"] == 0.25 and out["hr@3"] == 0.5 and out["hr@5"] == 0.75
    assert out["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.1) / 4)


def test_ranking_metrics_empty_and_bad() -> None:
    out = m.ranking_metrics(np.array([]))
    assert out == {"n": 0, "hr@1": None, "hr@3": None, "hr@5": None, "mrr": None}
    with pytest.raises(ValueError):
        m.ranking_metrics(np.array([0, 1]))


def test_rank_of_and_tie_policies() -> None:
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.2]])
    true_idx = np.array([1, 0])
    assert m.rank_of(true_idx, scores, ties="pessimistic").tolist() == [2, 3]
    assert m.rank_of(true_idx, scores, ties="optimistic").tolist() == [2, 1]
    r = m.rank_of(true_idx, scores, ties="random", seed=3)
    assert r[0] == 2 and 1 <= r[1] <= 3
    with pytest.raises(ValueError):
        m.rank_of(np.array([3]), scores[:1])
    with pytest.raises(ValueError):
        m.rank_of(true_idx, scores, ties="average")


def test_random_scores_match_the_analytic_baseline() -> None:
    rng = np.random.default_rng(0)
    n, n_items = 20000, 8
    true_idx = rng.integers(0, n_items, n)
    base = m.random_baseline_ranking(n_items, n)
    harmonic = sum(1 / i for i in range(1, n_items + 1))
    assert base["mrr"] == pytest.approx(harmonic / n_items)
    assert base["hr@3"] == pytest.approx(3 / 8)
    for scores in (rng.uniform(size=(n, n_items)), np.zeros((n, n_items))):
        got = m.ranking_metrics(m.rank_of(true_idx, scores, seed=1))
        assert got["mrr"] == pytest.approx(base["mrr"], abs=0.01)
        assert got["hr@1"] == pytest.approx(base["hr@1"], abs=0.01)


def test_random_baseline_degenerate() -> None:
    assert m.random_baseline_ranking(3, 0)["mrr"] is None
    assert m.random_baseline_ranking(2, 5)["hr@5"] == 1.0


def test_popularity_and_recency() -> None:
    pop = m.popularity_scores(np.array([0, 2, 2, 2]), 4)
    assert pop.tolist() == [1.0, 0.0, 3.0, 0.0]
    w = m.recency_weights(
        pd.to_datetime(["2024-01-31", "2024-01-01", "2024-02-10"]).to_numpy(), "2024-01-31", 30.0
    )
    assert w == pytest.approx([1.0, 0.5, 1.0])
    weighted = m.popularity_scores(np.array([0, 1, 1]), 2, weights=np.array([1.0, 0.25, 0.25]))
    assert weighted.tolist() == [1.0, 0.5]
    with pytest.raises(ValueError):
        m.popularity_scores(np.array([5]), 2)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_of_a_mean_covers_it() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(loc=2.0, scale=1.0, size=400)
    ci = m.bootstrap_ci(values, n_boot=500, seed=1)
    assert ci is not None
    lo, hi = ci
    assert lo < values.mean() < hi
    assert 0.1 < hi - lo < 0.3  # about 2 * 1.96 / sqrt(400) = 0.196
    assert m.bootstrap_ci(values, n_boot=500, seed=1) == (lo, hi)
    assert m.bootstrap_ci(np.array([])) is None


def test_bootstrap_ci_of_a_function_skips_undefined() -> None:
    y = np.array([0, 1] * 20)
    p = np.where(y == 1, 0.8, 0.2)

    def auc(yy: np.ndarray, pp: np.ndarray) -> float | None:
        value: float | None = m.binary_metrics(yy, pp)["auc"]
        return value

    assert m.bootstrap_ci(auc, y, p, n_boot=50) == (1.0, 1.0)
    assert m.bootstrap_ci(auc, np.array([1]), np.array([0.5]), n_boot=20) is None


# ---------------------------------------------------------------- leakage screen


def test_single_column_auc_flags_a_leak_not_an_id() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    X = pd.DataFrame(
        {
            "tags": np.where(y == 1, "Will revert", "Ringing"),
            "lead_number": [f"L{i}" for i in range(n)],
            "noise": rng.normal(size=n),
            "score_after_call": y * 10.0 + rng.normal(size=n) * 0.1,
        }
    )
    X.loc[::7, "noise"] = np.nan
    out = m.single_column_auc(X, y)
    assert out["tags"] == pytest.approx(1.0)
    assert out["score_after_call"] == pytest.approx(1.0)
    assert _f(out["lead_number"]) < 0.65
    assert _f(out["noise"]) < 0.65
    assert m.single_column_auc(X, np.zeros(n, dtype=int))["tags"] is None


# ---------------------------------------------------------------- routing policies


def test_policy_table_with_ipw() -> None:
    policy = np.array(["holdout", "model", "model", "model", "explore"])
    converted = np.array([0, 1, 1, 0, 1])
    q = np.array([0.1, 0.5, 0.25, 0.5, 1.0])
    rows = m.policy_table(policy, converted, q)
    assert [r["policy"] for r in rows] == ["model", "explore", "holdout"]
    model = rows[0]
    assert model["n"] == 3 and model["conversions"] == 2
    assert model["rate"] == pytest.approx(2 / 3)
    assert model["ipw_rate"] == pytest.approx((2 + 4) / (2 + 4 + 2))
    assert m.policy_table(policy, converted)[0]["ipw_rate"] is None
    with pytest.raises(ValueError):
        m.policy_table(policy, converted, np.zeros(5))
