"""Tests of recommender.routing: capacity, rules, exploration, optimality, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

import recommender.routing as routing_module
from recommender.routing import (
    EXPLORE,
    HOLDOUT,
    MODEL,
    NONE,
    RoutingResult,
    days_since_epoch,
    objective,
    route,
    route_one,
)

DAY = int(np.datetime64("2026-11-03", "D").astype(np.int64))


def exact(prob: np.ndarray, cap: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Reference: most leads placed, then best objective, by LSA on the full replicated matrix."""
    n, m = prob.shape
    cols = np.repeat(np.arange(m), np.where(cap < 0, n, np.minimum(cap, n)))
    if cols.size == 0:
        return np.full(n, -1)
    gain = np.where(allowed[:, cols], prob[:, cols] + prob.sum() + 1.0, 0.0)
    r, c = linear_sum_assignment(-gain)
    out = np.full(n, -1)
    ok = gain[r, c] > 0
    out[r[ok]] = cols[c[ok]]
    return out


def check_valid(
    res: RoutingResult,
    day: np.ndarray,
    cap: np.ndarray,
    active: np.ndarray,
    eligible: np.ndarray,
    used: dict[tuple[int, int], int],
) -> None:
    """Every invariant a routing result must satisfy."""
    n = day.size
    assert res.rep_index.shape == (n,) and res.policy.shape == (n,) and len(res.reason) == n
    for d in np.unique(day):
        got = np.bincount(res.rep_index[(day == d) & (res.rep_index >= 0)], minlength=cap.size)
        before = np.array([used.get((int(d), r), 0) for r in range(cap.size)])
        limited = cap >= 0
        assert np.all(got[limited] <= np.maximum(cap[limited] - before[limited], 0))
    for i in range(n):
        j = res.rep_index[i]
        if j < 0:
            assert res.policy[i] == NONE and res.reason[i] and res.propensity[i] == 0
        else:
            assert active[j] and eligible[i, j]
            assert res.policy[i] in (MODEL, EXPLORE, HOLDOUT) and res.reason[i] is None
            assert 0 < res.propensity[i] <= 1


@st.composite
def batches(draw: st.DrawFn, *, spread: bool = False) -> dict[str, Any]:
    """A random batch; ``spread``: most leads on days of their own, tighter capacities."""
    n = draw(st.integers(1, 30))
    m = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n_days = draw(st.integers(max(1, n // 2), 2 * n) if spread else st.integers(1, 3))
    used = {
        (d, r): int(rng.integers(0, 3))
        for d in range(n_days)
        for r in range(m)
        if rng.random() < (0.4 if spread else 0.3)
    }
    return {
        "prob": rng.random((n, m)),
        "day": rng.integers(0, n_days, n),
        "cap": rng.integers(-1, 3 if spread else 5, m),
        "active": rng.random(m) < 0.8,
        "eligible": rng.random((n, m)) < 0.7,
        "used": used,
        "seed": seed,
    }


@settings(max_examples=150, deadline=None)
@given(
    batch=batches(),
    method=st.sampled_from(["auto", "optimal", "greedy"]),
    explore=st.sampled_from([0.0, 0.3]),
    holdout=st.sampled_from([0.0, 0.2]),
    thompson=st.booleans(),
)
def test_capacity_activity_and_rules_are_never_broken(
    batch: dict[str, Any], method: str, explore: float, holdout: float, thompson: bool
) -> None:
    sigma = np.full(batch["prob"].shape, 0.7) if thompson else None
    res = route(
        batch["prob"],
        day=batch["day"],
        capacity=batch["cap"],
        active=batch["active"],
        eligible=batch["eligible"],
        used=batch["used"],
        uncertainty=sigma,
        explore=explore,
        holdout=holdout,
        seed=batch["seed"],
        method=method,
    )
    check_valid(res, batch["day"], batch["cap"], batch["active"], batch["eligible"], batch["used"])


@settings(max_examples=150, deadline=None)
@given(batch=batches(), with_value=st.booleans())
def test_optimal_matches_exact_assignment_per_day(batch: dict[str, Any], with_value: bool) -> None:
    prob, day, cap, active, eligible = (
        batch[k] for k in ("prob", "day", "cap", "active", "eligible")
    )
    value = np.random.default_rng(batch["seed"]).exponential(size=day.size) if with_value else None
    weight = prob if value is None else prob * value[:, None]
    res = route(
        prob, day=day, capacity=cap, active=active, eligible=eligible, value=value, method="optimal"
    )
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        ref = exact(weight[rows], cap, eligible[rows] & active[None, :])
        assert np.sum(res.rep_index[rows] >= 0) == np.sum(ref >= 0)
        assert objective(weight[rows], res.rep_index[rows]) == pytest.approx(
            objective(weight[rows], ref), abs=1e-9
        )


def test_binding_capacity_beats_greedy_and_matches_exact() -> None:
    rng = np.random.default_rng(3)
    prob = rng.beta(2, 5, size=(120, 15))
    cap = rng.integers(1, 12, 15)
    day = np.zeros(120, dtype=int)
    opt = route(prob, day=day, capacity=cap, method="optimal")
    greedy = route(prob, day=day, capacity=cap, method="greedy")
    ref = exact(prob, cap, np.ones_like(prob, dtype=bool))
    assert objective(prob, opt.rep_index) == pytest.approx(objective(prob, ref), abs=1e-9)
    assert objective(prob, opt.rep_index) >= objective(prob, greedy.rep_index)


def test_infeasible_batch_names_each_unplaced_lead() -> None:
    prob = np.array([[0.9, 0.1, 0.5]] * 5)
    eligible = np.ones((5, 3), dtype=bool)
    eligible[:, 1] = False  # rep 1 is never eligible
    eligible[3] = [False, False, False]
    eligible[4] = [False, True, False]  # only rep 1, which is active with room
    res = route(
        prob,
        day=np.full(5, DAY),
        capacity=np.array([1, 5, 1]),
        active=np.array([True, True, False]),
        eligible=eligible,
        eligible_why=[None, None, None, "lead.region == rep.region", None],
    )
    assert res.rep_index[:3].tolist().count(0) == 1
    assert [r for r in res.reason[:3] if r] == ["all eligible reps at capacity on 2026-11-03"] * 2
    assert res.reason[3] == "no eligible rep (rules: lead.region == rep.region)"
    assert res.rep_index[4] == 1 and res.reason[4] is None
    assert res.n_unassigned == 3


def test_reasons_for_inactive_reps() -> None:
    prob = np.full((2, 2), 0.5)
    none_active = route(prob, day=np.zeros(2), capacity=np.array([5, 5]), active=np.zeros(2, bool))
    assert none_active.reason == ["no active rep", "no active rep"]
    eligible = np.array([[True, False], [False, True]])
    res = route(
        prob,
        day=np.zeros(2),
        capacity=np.array([5, 5]),
        active=np.array([True, False]),
        eligible=eligible,
    )
    assert res.reason == [None, "no eligible rep is active"]


def test_unlimited_capacity_takes_each_leads_best_rep() -> None:
    rng = np.random.default_rng(0)
    prob = rng.random((50, 7))
    res = route(prob, day=np.zeros(50, dtype=int), capacity=np.full(7, -1))
    np.testing.assert_array_equal(res.rep_index, prob.argmax(axis=1))
    assert np.all(res.policy == MODEL) and np.all(res.propensity == 1.0)


def test_value_sends_the_valuable_lead_to_the_better_rep() -> None:
    prob = np.array([[0.9, 0.2], [0.8, 0.3]])
    kwargs: dict[str, Any] = {"day": np.zeros(2, dtype=int), "capacity": np.array([1, 1])}
    assert route(prob, **kwargs).rep_index.tolist() == [0, 1]
    assert route(prob, value=np.array([1.0, 100.0]), **kwargs).rep_index.tolist() == [1, 0]


def test_used_capacity_from_earlier_requests_counts() -> None:
    prob = np.array([[0.9, 0.1]] * 3)
    res = route(prob, day=np.full(3, 7), capacity=np.array([2, 5]), used={(7, 0): 1, (8, 0): 2})
    assert np.sum(res.rep_index == 0) == 1 and np.sum(res.rep_index == 1) == 2


def test_duplicate_and_old_leads_are_routed_in_input_order() -> None:
    prob = np.array([[0.2, 0.7], [0.2, 0.7], [0.6, 0.1]])
    day = np.array([0, 0, 20000])  # 1970 and 2024: no age window
    res = route(prob, day=day, capacity=np.array([1, 1]))
    assert res.rep_index.tolist() == [1, 0, 0] or res.rep_index.tolist() == [0, 1, 0]
    assert res.n_unassigned == 0


def test_fairness_floor_gives_every_active_rep_its_share() -> None:
    rng = np.random.default_rng(1)
    prob = rng.random((100, 5)) * 0.2
    prob[:, 0] += 0.7  # rep 0 is best for every lead
    day = np.repeat(np.arange(4), 25)
    active = np.array([True, True, True, True, False])
    res = route(prob, day=day, capacity=np.full(5, -1), active=active, fairness_floor=0.15)
    counts = np.bincount(res.rep_index, minlength=5)
    assert np.all(counts[1:4] >= 15) and counts[4] == 0
    plain = route(prob, day=day, capacity=np.full(5, -1), active=active)
    assert np.all(plain.rep_index == 0)


def test_fairness_floor_refuses_greedy() -> None:
    with pytest.raises(ValueError, match="fairness floor"):
        route(
            np.ones((1, 1)),
            day=np.zeros(1),
            capacity=np.ones(1),
            fairness_floor=0.1,
            method="greedy",
        )


def test_exploration_and_holdout_shares_and_propensities() -> None:
    n, m = 20000, 4
    rng = np.random.default_rng(5)
    prob = np.tile([0.9, 0.3, 0.2, 0.1], (n, 1)) + rng.random((n, m)) * 0.01
    res = route(
        prob, day=rng.integers(0, 3, n), capacity=np.full(m, -1), explore=0.2, holdout=0.1, seed=11
    )
    share = {p: np.mean(res.policy == p) for p in (MODEL, EXPLORE, HOLDOUT)}
    assert share[HOLDOUT] == pytest.approx(0.1, abs=0.015)
    assert share[EXPLORE] == pytest.approx(0.2, abs=0.015)
    assert share[MODEL] == pytest.approx(0.7, abs=0.015)
    held = np.bincount(res.rep_index[res.policy == HOLDOUT], minlength=m) / np.sum(
        res.policy == HOLDOUT
    )
    np.testing.assert_allclose(held, 0.25, atol=0.04)
    assert np.all(res.rep_index[res.policy == MODEL] == 0)
    # epsilon-greedy: rep 1 has 0.1/4 + 0.2/4 of being chosen, rep 0 also the model's 0.7
    assert np.allclose(res.propensity[res.rep_index == 1], 0.3 / 4)
    assert np.allclose(res.propensity[res.rep_index == 0], 0.3 / 4 + 0.7)


def test_thompson_propensity_is_close_to_the_draw_frequency() -> None:
    n = 3000
    prob = np.tile([0.5, 0.5, 0.05], (n, 1))
    res = route(
        prob,
        day=np.zeros(n, dtype=int),
        capacity=np.full(3, -1),
        uncertainty=np.full((n, 3), 1.0),
        explore=1.0,
        seed=2,
    )
    freq = np.bincount(res.rep_index, minlength=3) / n
    assert freq[0] == pytest.approx(0.5, abs=0.05) and freq[2] < 0.05
    assert np.mean(res.propensity[res.rep_index == 0]) == pytest.approx(freq[0], abs=0.08)


def test_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(9)
    prob = rng.random((300, 10))
    kwargs: dict[str, Any] = {
        "day": rng.integers(0, 3, 300),
        "capacity": rng.integers(5, 15, 10),
        "uncertainty": np.full((300, 10), 0.5),
        "explore": 0.2,
        "holdout": 0.1,
    }
    a, b = route(prob, seed=4, **kwargs), route(prob, seed=4, **kwargs)
    np.testing.assert_array_equal(a.rep_index, b.rep_index)
    np.testing.assert_array_equal(a.policy, b.policy)
    np.testing.assert_array_equal(a.propensity, b.propensity)
    assert a.reason == b.reason
    c = route(prob, seed=5, **kwargs)
    assert not np.array_equal(a.policy, c.policy)


def test_large_day_split_into_blocks_still_respects_capacity() -> None:
    rng = np.random.default_rng(4)
    prob = rng.random((200, 20))
    cap = rng.integers(0, 15, 20)
    day = np.zeros(200, dtype=int)
    res = route(prob, day=day, capacity=cap, max_cells=500)
    check_valid(res, day, cap, np.ones(20, bool), np.ones((200, 20), bool), {})
    assert np.sum(res.rep_index >= 0) == min(200, int(cap.sum()))


def test_matrix_budget_splits_inside_the_solver() -> None:
    rng = np.random.default_rng(8)
    prob = rng.random((60, 6))
    cap = np.array([30, 30, 30, 1, 1, 1])
    day = np.zeros(60, dtype=int)
    # 60 x 6 cells pass the first check; 60 x (copies) do not, so the solver works in blocks
    res = route(prob, day=day, capacity=cap, max_cells=400)
    check_valid(res, day, cap, np.ones(6, bool), np.ones((60, 6), bool), {})
    assert res.n_unassigned == 0


def test_route_one() -> None:
    row = np.array([0.2, 0.9, 0.5, 0.8])
    assert route_one(row, remaining=np.array([1, 1, 1, 1])) == 1
    assert route_one(row, remaining=np.array([1, 0, 1, 1])) == 3
    assert (
        route_one(row, remaining=np.array([1, -1, 1, 1]), active=np.array([1, 0, 1, 1], bool)) == 3
    )
    elig = np.array([True, False, True, False])
    assert route_one(row, remaining=np.array([-1, 1, 1, 1]), eligible_row=elig) == 2
    assert route_one(row, remaining=np.zeros(4, dtype=int)) == -1


def test_single_lead_batch_uses_the_greedy_path() -> None:
    res = route(np.array([[0.1, 0.6, 0.3]]), day=np.array([DAY]), capacity=np.array([1, 0, 1]))
    assert res.rep_index.tolist() == [2] and res.policy.tolist() == [MODEL]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prob": np.ones(3)}, "2-D"),
        ({"prob": np.full((2, 2), 1.5)}, r"\[0, 1\]"),
        ({"day": np.zeros(3)}, "day"),
        ({"capacity": np.ones(3)}, "capacity"),
        ({"explore": 0.7, "holdout": 0.5}, "at most 1"),
        ({"method": "hungarian"}, "method"),
        ({"uncertainty": np.ones((1, 2))}, "uncertainty"),
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, Any], match: str) -> None:
    args = {"prob": np.full((2, 2), 0.5), "day": np.zeros(2), "capacity": np.ones(2)} | kwargs
    with pytest.raises(ValueError, match=match):
        route(args.pop("prob"), **args)


def test_days_since_epoch() -> None:
    ts = np.array(["2026-11-03T23:59:00", "1970-01-02"], dtype="datetime64[s]")
    assert days_since_epoch(ts).tolist() == [DAY, 1]
    with pytest.raises(ValueError, match="NaT"):
        days_since_epoch(np.array(["NaT"], dtype="datetime64[s]"))


def test_tied_reps_share_the_leads_at_random_not_in_id_order() -> None:
    """A model with no per-rep signal gives every rep the same probability."""
    n, m = 600, 6
    prob = np.full((n, m), 0.2)
    days = np.repeat(np.arange(3), n // 3)  # three days of 200 leads
    for method in ("optimal", "greedy"):
        out = route(prob, day=days, capacity=np.full(m, -1), seed=5, method=method)
        counts = np.bincount(out.rep_index, minlength=m)
        assert counts.min() > 0.6 * n / m, (method, counts)  # not all to rep 0
        again = route(prob, day=days, capacity=np.full(m, -1), seed=5, method=method)
        assert np.array_equal(out.rep_index, again.rep_index)  # still deterministic
        assert np.allclose(out.propensity, 1.0 / m)  # the model picks 1 of m tied reps
    one = route(prob[:1], day=days[:1], capacity=np.full(m, -1), seed=1)
    assert one.propensity[0] == pytest.approx(1.0 / m)


def test_near_ties_and_large_values_still_spread_and_count_as_ties() -> None:
    n, m = 400, 4
    prob = np.full((n, m), 0.2)
    prob[:, 2] += 1e-16  # equal up to float noise (an unseen rep vs a shrunk one)
    days = np.zeros(n, dtype=np.int64)
    out = route(prob, day=days, capacity=np.full(m, 150), seed=2)
    assert np.bincount(out.rep_index, minlength=m).min() > 60
    assert np.allclose(out.propensity, 1.0 / m)
    big = route(prob, day=days, capacity=np.full(m, 150), value=np.full(n, 1e7), seed=2)
    assert np.bincount(big.rep_index, minlength=m).min() > 60  # jitter scales with weights


def test_an_unlimited_rep_stays_open_whatever_it_took_earlier_today() -> None:
    """Earlier leads count against a capacity, never against 'unlimited'."""
    p = np.array([[0.3, 0.2], [0.3, 0.2]])
    day = np.array([5, 5])
    busy = {(5, 0): 10, (5, 1): 10}
    out = route(p, day=day, capacity=np.array([-1, -1]), used=busy)
    assert out.rep_index.tolist() == [0, 0]
    capped = route(p, day=day, capacity=np.array([11, -1]), used=busy)
    assert capped.rep_index.tolist().count(0) == 1  # rep 0 has one place left today
    assert capped.rep_index.tolist().count(1) == 1


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 25),
    m=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    method=st.sampled_from(["auto", "optimal", "greedy"]),
    explore=st.sampled_from([0.0, 0.3]),
    floor=st.sampled_from([0.0, 0.1]),
)
def test_counts_of_reps_with_room_for_the_whole_batch_change_nothing(
    n: int, m: int, seed: int, method: str, explore: float, floor: float
) -> None:
    # The service reads only the counters of reps with less room left than the batch has
    # leads (service.store.repo.used_counts(room_below=n)): the others must not matter.
    rng = np.random.default_rng(seed)
    cap = rng.integers(-1, 40, m)
    n_days = int(rng.integers(1, 3))
    used = {(d, r): int(rng.integers(0, 40)) for d in range(n_days) for r in range(m)}
    tight = {(d, r): c for (d, r), c in used.items() if 0 <= cap[r] < c + n}
    if method == "greedy" and floor > 0:
        floor = 0.0  # the greedy path has no floor (tested above)
    kwargs: dict[str, Any] = {
        "day": rng.integers(0, n_days, n),
        "capacity": cap,
        "eligible": rng.random((n, m)) < 0.8,
        "uncertainty": np.full((n, m), 0.5),
        "explore": explore,
        "holdout": 0.1,
        "fairness_floor": floor,
        "seed": seed,
        "method": method,
    }
    prob = rng.random((n, m))
    full, part = route(prob, used=used, **kwargs), route(prob, used=tight, **kwargs)
    np.testing.assert_array_equal(full.rep_index, part.rep_index)
    np.testing.assert_array_equal(full.policy, part.policy)
    np.testing.assert_array_equal(full.propensity, part.propensity)
    assert full.reason == part.reason


@st.composite
def lone_day_batches(draw: st.DrawFn) -> dict[str, Any]:
    """``route`` arguments of spread batches, with ties, deal values and either method."""
    batch = draw(batches(spread=True))
    args = {k: batch[k] for k in ("prob", "day", "active", "eligible", "used", "seed")}
    args["capacity"] = batch["cap"]
    if draw(st.booleans()):  # ties, which the seeded jitter must break alike
        args["prob"] = np.round(batch["prob"], 1)
    rng = np.random.default_rng(batch["seed"] + 1)
    args["value"] = rng.uniform(1e-3, 1e3, len(batch["day"])) if draw(st.booleans()) else None
    args["method"] = draw(st.sampled_from(["auto", "greedy"]))
    return args


@settings(max_examples=300, deadline=None)
@given(batch=lone_day_batches())
def test_runs_of_one_lead_days_route_exactly_as_the_per_day_loop(batch: dict[str, Any]) -> None:
    fast = route(**batch)
    routing_module._LONE_DAY_RUNS = False
    try:
        slow = route(**batch)
    finally:
        routing_module._LONE_DAY_RUNS = True
    np.testing.assert_array_equal(fast.rep_index, slow.rep_index)
    np.testing.assert_array_equal(fast.policy, slow.policy)
    np.testing.assert_array_equal(fast.propensity, slow.propensity)
    assert fast.reason == slow.reason
