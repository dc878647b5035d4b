"""Benchmark: the service's route batch in process, without HTTP.

``service.routing.route_batch`` routes the one-lead requests that arrived together
(``service/batching.py``): parsing, features, the scorer, every rep's probability,
assignment, SQL on a real SQLite store. This times a batch of ``--sizes`` requests (each
one new lead, the fields of the first 256 simulated leads in turn, over 196 days), so
the fixed cost of a batch and the cost of each lead show apart from
``bench_service.py``'s HTTP. One thread; the median of ``--batches`` batches after 5
warm-up batches.

    python bench/bench_route_batch.py [--sizes 1 8 27 64] [--batches 40]
        [--capacity none|reps] [--rules 'rep.region == lead.region']

The model (1,000 reps) is the one ``bench_service.py`` trains into ``--work``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_service import DAYS, build_model, lead, read_templates  # noqa: E402
from sqlalchemy import text  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from service import routing, schemas  # noqa: E402
from service.config import Settings  # noqa: E402
from service.main import _start  # noqa: E402
from service.metrics import Metrics  # noqa: E402


def main() -> None:
    """Time route batches of each size and print ms a batch and µs a lead."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 27, 64])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--leads", type=int, default=20000, help="leads simulated for training")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "leadrank-bench")
    ap.add_argument("--capacity", default="none", choices=["none", "reps"])
    ap.add_argument("--rules", default=None, help="eligibility rules to route by")
    args = ap.parse_args()
    threadpool_limits(1)
    model = build_model(args.work, args.reps, args.leads, args.rules)
    templates = read_templates(args.work / f"data-{args.reps}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(model_path=model, database_url=f"sqlite:///{tmp}/store.db")
        runtime = _start(settings, Metrics())
        if args.capacity == "none":
            with runtime.engine.begin() as conn:
                conn.execute(text("UPDATE reps SET capacity = NULL"))
        assert runtime.model is not None
        label = f"capacity {args.capacity}" + (f", rules: {args.rules}" if args.rules else "")
        print(f"route_batch, {args.reps} reps, one lead a request, {label}, 1 thread")
        n = 0
        for size in args.sizes:
            times = []
            for _ in range(args.batches + 5):
                items = []
                for _ in range(size):
                    n += 1
                    body = {"leads": [lead(n, templates, DAYS)]}
                    items.append((runtime.model, schemas.LeadsRequest.model_validate(body)))
                start = time.perf_counter()
                out = routing.route_batch(runtime, items)
                times.append(time.perf_counter() - start)
                failed = [o for o in out if isinstance(o, Exception)]
                if failed:
                    raise failed[0]
            median = statistics.median(times[5:])
            print(
                f"  {size:3d} requests: {median * 1e3:7.2f} ms a batch, "
                f"{median / size * 1e6:6.0f} us a lead"
            )
        runtime.engine.dispose()


if __name__ == "__main__":
    main()
