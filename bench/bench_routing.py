"""Benchmark: routing a batch of leads to reps with binding daily capacities.

Prints, measured in the same run:

* ``route`` on 10,000 leads x 1,000 reps over 5 days (capacities binding, region rules from
  ``recommender.rules``), with 1 and 2 threads, without and with exploration, next to a
  bare ``numpy.argmax`` over the same matrix (which ignores capacity) and the greedy method;
* ``route_one`` and ``route`` on one lead: p50 / p99 over 2,000 calls, next to a bare
  ``numpy.argmax`` of one row;
* the objective of ``route`` against exact ``scipy.optimize.linear_sum_assignment`` on the
  fully capacity-replicated matrix, on instances small enough for it, and on one full day
  of the big batch.

Run: ``python bench/bench_routing.py [--leads 10000] [--reps 1000] [--days 5]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from recommender.routing import objective, route, route_one
from recommender.rules import eligibility, parse_rules

T = TypeVar("T")
RULES = 'lead.region == rep.region\nlead.employees >= 500 -> rep.team == "Enterprise"'


def timed(fn: Callable[[], T], repeats: int = 1) -> tuple[float, T]:
    """Fastest wall time (seconds) of ``repeats`` calls, and the last result."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def affinity(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """P(won | lead, rep): a lead base rate times a low-rank rep affinity, in (0, 1)."""
    lead_f, rep_f = rng.normal(size=(n, 8)), rng.normal(size=(m, 8))
    logit = -2.0 + 0.6 * rng.normal(size=(n, 1)) + 0.3 * lead_f @ rep_f.T / np.sqrt(8)
    return np.asarray(1 / (1 + np.exp(-logit)))


def exact(prob: np.ndarray, cap: np.ndarray, allowed: np.ndarray) -> tuple[float, np.ndarray]:
    """Bare LSA on the fully replicated matrix (most leads placed first); time and choice."""
    n = prob.shape[0]
    cols = np.repeat(np.arange(cap.size), np.minimum(cap, n))
    t = time.perf_counter()
    gain = np.where(allowed[:, cols], prob[:, cols] + n + 1.0, 0.0)
    r, c = linear_sum_assignment(-gain)
    out = np.full(n, -1)
    ok = gain[r, c] > 0
    out[r[ok]] = cols[c[ok]]
    return time.perf_counter() - t, out


def big_batch(args: argparse.Namespace, skewed: bool) -> None:
    """Route the big batch; print times and objectives beside the bare baselines.

    ``skewed=False``: region rules, capacities 1-3 a day (binding). ``skewed=True``: some reps
    are better for every lead (rep quality x1 to x3), no rules, capacities 0-9 a day: the
    hard case for assignment solvers (near-rank-1 costs).
    """
    rng = np.random.default_rng(0)
    n, m = args.leads, args.reps
    prob = affinity(n, m, rng)
    day = 20_000 + rng.integers(0, args.days, n)
    if skewed:
        prob = prob * (1 + 2 * rng.random(m))[None, :] / 3
        cap = rng.integers(0, 10, m)
        elig = np.ones((n, m), dtype=bool)
        print(f"\n{n} leads x {m} reps, {args.days} days, skewed rep quality, no rules")
    else:
        cap = rng.integers(1, 4, m)  # mean 2 a day: about the leads of a day, so binding
        leads = pd.DataFrame(
            {"region": rng.choice(["EU", "US", "APAC"], n), "employees": rng.integers(1, 2000, n)}
        )
        reps = pd.DataFrame(
            {
                "region": rng.choice(["EU", "US", "APAC"], m),
                "team": rng.choice(["Enterprise", "SMB"], m),
            }
        )
        t_rules, elig = timed(lambda: eligibility(parse_rules(RULES), leads, reps))
        print(f"\n{n} leads x {m} reps, {args.days} days, region + size rules")
        print(f"  rules.eligibility (2 rules):       {t_rules:7.3f} s")
    print(f"  total capacity {cap.sum()} a day for about {n // args.days} leads a day")
    t_argmax, best = timed(lambda: np.argmax(np.where(elig, prob, -1.0), axis=1), 3)
    upper = objective(prob, np.asarray(best))
    print(f"  bare numpy argmax (no capacity):   {t_argmax:7.3f} s   objective {upper:.1f}")
    sigma = np.full((n, m), 0.5)
    for threads in (1, 2):
        with threadpool_limits(threads):
            configs: list[tuple[str, dict[str, Any]]] = [
                ("route (model only)", {}),
                (
                    "route (explore .1, holdout .05)",
                    {"explore": 0.1, "holdout": 0.05, "uncertainty": sigma},
                ),
                ("route method=greedy", {"method": "greedy"}),
            ]
            for label, kw in configs:
                t, res = timed(partial(route, prob, day=day, capacity=cap, eligible=elig, **kw))
                r = res.rep_index
                print(
                    f"  {label:<31} threads={threads}: {t:7.3f} s   objective "
                    f"{objective(prob, r):.1f}, placed {np.sum(r >= 0)}"
                )
    first = np.flatnonzero(day == day.min())
    t_lsa, ref = exact(prob[first], cap, elig[first])
    t_ours, ours = timed(
        lambda: route(prob[first], day=day[first], capacity=cap, eligible=elig[first])
    )
    got = ours.rep_index
    print(
        f"  one day ({first.size} leads): bare LSA on the replicated matrix {t_lsa:.3f} s, "
        f"objective {objective(prob[first], ref):.4f}, placed {np.sum(ref >= 0)}; "
        f"route {t_ours:.3f} s, objective {objective(prob[first], got):.4f}, "
        f"placed {np.sum(got >= 0)}"
    )


def single_lead(args: argparse.Namespace) -> None:
    """p50 / p99 of one-lead routing over 2,000 calls."""
    rng = np.random.default_rng(1)
    m = args.reps
    prob = affinity(2000, m, rng)
    remaining = rng.integers(-1, 4, m)
    elig = rng.random((2000, m)) < 0.5
    active = rng.random(m) < 0.95
    day = np.array([20_000])

    def lat(fn: Callable[[int], object]) -> tuple[float, float]:
        times = []
        for i in range(2000):
            t = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t)
        return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)

    base = lat(lambda i: np.argmax(prob[i]))
    one = lat(
        lambda i: route_one(prob[i], remaining=remaining, eligible_row=elig[i], active=active)
    )
    full = lat(
        lambda i: route(
            prob[i : i + 1], day=day, capacity=remaining, active=active, eligible=elig[i : i + 1]
        )
    )
    full_x = lat(
        lambda i: route(
            prob[i : i + 1],
            day=day,
            capacity=remaining,
            active=active,
            eligible=elig[i : i + 1],
            uncertainty=np.full((1, m), 0.5),
            explore=0.1,
            holdout=0.05,
            seed=i,
        )
    )
    print(f"one lead over {m} reps, 2000 calls (p50 / p99 ms):")
    print(f"  bare numpy argmax of a row:    {base[0]:.4f} / {base[1]:.4f}")
    print(f"  route_one:                     {one[0]:.4f} / {one[1]:.4f}")
    print(f"  route (1 lead):                {full[0]:.4f} / {full[1]:.4f}")
    print(f"  route (1 lead, explore+hold):  {full_x[0]:.4f} / {full_x[1]:.4f}")


def optimality(args: argparse.Namespace) -> None:
    """Objective of route and of greedy against exact LSA on small single-day instances."""
    rng = np.random.default_rng(2)
    gaps, greedy_gaps, placed_diff, t_ours, t_lsa = [], [], 0, 0.0, 0.0
    for _ in range(args.instances):
        n, m = int(rng.integers(50, 400)), int(rng.integers(5, 60))
        prob = affinity(n, m, rng)
        cap = rng.integers(0, max(2, 3 * n // m), m)
        allowed = rng.random((n, m)) < 0.8
        day = np.zeros(n, dtype=int)
        t_ref, ref = exact(prob, cap, allowed)
        t, res = timed(lambda: route(prob, day=day, capacity=cap, eligible=allowed))  # noqa: B023
        greedy = route(prob, day=day, capacity=cap, eligible=allowed, method="greedy")
        best = objective(prob, ref)
        got = res.rep_index
        gaps.append((best - objective(prob, got)) / best)
        greedy_gaps.append((best - objective(prob, greedy.rep_index)) / best)
        placed_diff += int(np.sum(ref >= 0)) - int(np.sum(got >= 0))
        t_ours, t_lsa = t_ours + t, t_lsa + t_ref
    print(f"objective vs exact LSA, {args.instances} instances (50-400 leads, 5-60 reps):")
    print(f"  route:  max relative gap {max(gaps):.2e}, mean {np.mean(gaps):.2e}, {t_ours:.2f} s")
    print(f"  greedy: max relative gap {max(greedy_gaps):.2e}, mean {np.mean(greedy_gaps):.2e}")
    print(f"  bare LSA total {t_lsa:.2f} s; leads placed, LSA minus route: {placed_diff}")


def main() -> None:
    """Parse the arguments and run the three benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--instances", type=int, default=30)
    args = parser.parse_args()
    big_batch(args, skewed=False)
    big_batch(args, skewed=True)
    single_lead(args)
    optimality(args)


if __name__ == "__main__":
    main()
