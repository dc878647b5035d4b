"""Benchmark: route one new lead over 1,000 reps in process, the whole library path.

``bench_routing.py`` times the assignment step alone (on a given probability matrix).
This script times what an in-process caller pays for one lead with a trained model:

* ``parse``: ``ModelBundle.leads_from_records`` (a JSON-like record to a typed frame);
* ``route``: ``ModelBundle.route`` on the typed lead (features, engagement, lead score,
  per-rep probabilities for every rep, capacity-aware assignment, runners-up);
* ``parse + route``: both, as the service and a script calling the library do;

p50 / p99 over ``--calls`` calls, one thread, next to a bare numpy baseline of the same
arithmetic size (one row of ``(18,) @ (18, 1000)`` plus ``argmax``) in the same run.

    python bench/bench_route_one.py [--calls 2000] [--reps 1000] [--rules TEXT]

The model (simulated team of ``--reps`` reps, 20,000 leads) is trained once into
``--work`` (shared with ``bench_service.py``) and reused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_service import build_model, lead, read_templates  # noqa: E402

from recommender.pipeline import ModelBundle  # noqa: E402


def percentiles(fn: Callable[[int], Any], calls: int, warm: int = 50) -> tuple[float, float]:
    """p50 and p99 in ms of ``fn(i)`` over ``calls`` calls after ``warm`` unmeasured ones."""
    for i in range(warm):
        fn(i)
    times = []
    for i in range(warm, warm + calls):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    q = statistics.quantiles(times, n=100)
    return q[49] * 1e3, q[98] * 1e3


def main() -> None:
    """Train (or reuse) the model, then print p50 / p99 per path."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--leads", type=int, default=20000, help="leads simulated for training")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "leadrank-bench")
    ap.add_argument(
        "--rules", default=None, help="eligibility rules to route by ('rep.region == lead.region')"
    )
    args = ap.parse_args()
    threadpool_limits(1)
    folder = build_model(args.work, args.reps, args.leads, args.rules)
    bundle = ModelBundle.load(folder)
    reps = bundle.reps.copy()
    reps["capacity"] = pd.array([None] * len(reps), dtype="Int64")
    templates = read_templates(args.work / f"data-{args.reps}")
    records = [lead(3 * 10**7 + i, templates) for i in range(args.calls + 50)]
    typed = bundle.leads_from_records(records[:1])

    def parse(i: int) -> None:
        bundle.leads_from_records([records[i]])

    def route(i: int) -> None:
        bundle.route(typed, reps=reps, used={}, events=None, seed=i, n_alternatives=3)

    def both(i: int) -> None:
        leads = bundle.leads_from_records([records[i]])
        bundle.route(leads, reps=reps, used={}, events=None, seed=i, n_alternatives=3)

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(1, 18)).astype(np.float32)
    right = rng.normal(size=(18, len(reps))).astype(np.float32)

    def bare(i: int) -> None:
        int(np.argmax(emb @ right))

    rules = f", rules: {args.rules}" if args.rules else ""
    print(f"one lead over {len(reps)} reps{rules}, {args.calls} calls, 1 thread (p50 / p99 ms)")
    for name, fn in (("bare numpy", bare), ("parse", parse), ("route", route), ("both", both)):
        p50, p99 = percentiles(fn, args.calls)
        print(f"  {name:<12} {p50:7.3f} / {p99:7.3f}")


if __name__ == "__main__":
    main()
