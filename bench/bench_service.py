"""Load benchmark: POST /v1/route (one lead, 1,000 reps) next to a bare FastAPI endpoint.

Both run under uvicorn (uvloop + httptools) on loopback, each in its own process, and are
driven by the same async httpx client at the same concurrency, in the same run. The bare
endpoint answers a constant JSON body of the same size as a route answer, so the gap is
what scoring, routing and the database cost.

    python bench/bench_service.py [--requests 3000] [--concurrency 32] [--db URL]

The model (1,000 reps) is simulated and trained once into ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.cli_support import create_key  # noqa: E402

BARE_APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import uvicorn
    from fastapi import FastAPI, Response

    BODY = Path(sys.argv[2]).read_bytes()
    app = FastAPI()

    @app.post("/bare")
    async def bare() -> Response:
        return Response(BODY, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop",
                http="httptools", log_level="warning")
    """
)

SERVICE_APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from service.cli_support import serve
    serve(Path(sys.argv[2]), sys.argv[3], "127.0.0.1", int(sys.argv[1]), log_level="warning")
    """
)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(work: Path, n_reps: int, n_leads: int) -> Path:
    """Simulate and train once (reused on later runs)."""
    from recommender.data.simulate import simulate
    from recommender.pipeline import train

    data, model = work / f"data-{n_reps}", work / f"model-{n_reps}"
    if not (data / "leads.csv").is_file():
        print(f"simulating {n_leads} leads x {n_reps} reps ...", file=sys.stderr)
        simulate(data, n_leads=n_leads, n_reps=n_reps, seed=7)
    if not (model / "manifest.json").is_file():
        print("training ...", file=sys.stderr)
        t = time.perf_counter()
        train(data, out=model)
        print(f"trained in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return model


def start(code: str, *args: str) -> subprocess.Popen[bytes]:
    """Run ``code`` in a new Python process with ``args`` (cwd: the repository root)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env)


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until ``url`` answers (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def lead(i: int, template: dict[str, Any]) -> dict[str, Any]:
    """The template lead under id ``i``, spread over 196 days."""
    day = 1 + i % 28
    month = 1 + (i // 28) % 7
    return dict(template, lead_id=f"B{i:08d}", created_at=f"2027-{month:02d}-{day:02d}T10:00:00")


async def drive(
    url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int
) -> tuple[float, list[float], int]:
    """Send every body with ``concurrency`` in flight; (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                t = time.perf_counter()
                r = await client.post(url, content=body)
                latencies.append(time.perf_counter() - t)
                errors += r.status_code != 200

        start_t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start_t, latencies, errors


def report(name: str, seconds: float, latencies: list[float], errors: int) -> dict[str, float]:
    """Print and return req/s, p50 and p99 (ms)."""
    q = statistics.quantiles(latencies, n=100)
    row = {"rps": len(latencies) / seconds, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}
    print(
        f"{name:<28} {row['rps']:9.0f} req/s   p50 {row['p50_ms']:7.1f} ms   "
        f"p99 {row['p99_ms']:7.1f} ms   errors {errors}"
    )
    return row


def main() -> None:
    """Run the benchmark and print both rows side by side."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--leads", type=int, default=20000, help="leads simulated for training")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "leadrank-bench")
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.work, args.reps, args.leads)
    db = args.db or f"sqlite:///{args.work / f'bench-{os.getpid()}.db'}"
    admin, router = create_key("admin", db), create_key("router", db)
    with (args.work / f"data-{args.reps}" / "leads.csv").open(newline="") as fh:
        template = {k: v for k, v in next(csv.DictReader(fh)).items() if v}

    port_s, port_b = free_port(), free_port()
    service = start(SERVICE_APP, str(port_s), str(model), db)
    procs = [service]
    try:
        base = f"http://127.0.0.1:{port_s}"
        wait_up(base + "/healthz", service)
        auth = {"Authorization": f"Bearer {router}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=60) as c:
            from recommender.pipeline import ModelBundle

            # unlimited capacity: measure routing, not refusals once the days fill up
            for rep in ModelBundle.load(model).reps["rep_id"]:
                c.put(
                    f"/v1/admin/reps/{rep}",
                    json={"capacity": None},
                    headers={"Authorization": f"Bearer {admin}"},
                )
            sample = c.post("/v1/route", json={"leads": [lead(10**7, template)]}, headers=auth)
            sample.raise_for_status()
        constant = args.work / "constant.json"
        constant.write_bytes(sample.content)
        bare = start(BARE_APP, str(port_b), str(constant))
        procs.append(bare)
        wait_up(f"http://127.0.0.1:{port_b}/docs", bare)

        bodies = [json.dumps({"leads": [lead(i, template)]}).encode() for i in range(args.requests)]
        warm = [json.dumps({"leads": [lead(10**7 + i, template)]}).encode() for i in range(200)]
        print(
            f"POST one lead, {args.reps} reps, {args.requests} requests, concurrency "
            f"{args.concurrency}, answer {len(sample.content)} bytes, db {db.split(':')[0]}"
        )
        asyncio.run(drive(f"http://127.0.0.1:{port_b}/bare", warm, auth, args.concurrency))
        bare_row = report(
            "bare FastAPI constant",
            *asyncio.run(drive(f"http://127.0.0.1:{port_b}/bare", bodies, auth, args.concurrency)),
        )
        asyncio.run(drive(base + "/v1/route", warm, auth, args.concurrency))
        route_row = report(
            "POST /v1/route",
            *asyncio.run(drive(base + "/v1/route", bodies, auth, args.concurrency)),
        )
        print(f"route / bare throughput: {route_row['rps'] / bare_row['rps']:.1%}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
