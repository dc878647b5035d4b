"""Load benchmark: POST /v1/route (one lead, 1,000 reps) next to a bare FastAPI endpoint.

Both run under uvicorn on loopback (``--loop``/``--http``, default uvloop + httptools,
``--workers`` processes each), in their own processes, and are driven by the same client
at the same concurrency, in the same run: wrk (default; one C thread; ``apt install
wrk``) or, with ``--client httpx``, an async httpx client (which caps both servers near
400 req/s on two cores, so its ratio measures the client). Every request is a new lead
with the fields of the next of the first 256 simulated leads; the leads are spread over
``--days`` days (default 196, so the leads of one batch fall on different days; 1: all
on one day, as live routing sees them). By default the reps' capacity is unlimited, so
every lead goes to the model's best rep for it (on the default simulated team, one rep
for all); ``--capacity reps`` keeps the team's 2 leads a rep a day, so leads spill over
to the next best reps. A line counts the reps and days the stored assignments went to.
The bare endpoint answers a constant JSON body of the same size as a route
answer, so the gap is what scoring, routing and the database cost. The service routes
concurrent requests together (``service/batching.py``); the mean requests per batch is
read from ``/metrics``. A last line times the library alone in this process
(``leads_from_records`` + ``ModelBundle.route``, one thread) for one lead and for 16
leads in one call.

    python bench/bench_service.py [--seconds 20] [--concurrency 32] [--db URL]
        [--workers N] [--loop uvloop|asyncio] [--http httptools|h11] [--repeat R]
        [--client wrk|httpx] [--days 1..196] [--requests 3000 (httpx only)]
        [--rules 'rep.region == lead.region'] [--capacity none|reps]

The model (1,000 reps) is simulated and trained once into ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from service.cli_support import create_key  # noqa: E402

BARE_APP = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path
    import uvicorn
    from fastapi import FastAPI, Response

    BODY = Path(os.environ["BARE_BODY"]).read_bytes()
    app = FastAPI()

    @app.post("/bare")
    async def bare() -> Response:
        return Response(BODY, media_type="application/json")

    if __name__ == "__main__":
        port, workers, loop, http = sys.argv[1:5]
        uvicorn.run("bare_app:app", host="127.0.0.1", port=int(port), workers=int(workers),
                    loop=loop, http=http, log_level="warning")
    """
)

SERVICE_APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    port, workers, loop, http = sys.argv[1:5]
    uvicorn.run("service.main:app_from_env", factory=True, host="127.0.0.1", port=int(port),
                workers=int(workers), loop=loop, http=http, log_level="warning")
    """
)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(work: Path, n_reps: int, n_leads: int, rules: str | None = None) -> Path:
    """Simulate and train once into ``work`` (reused on later runs); with ``rules``, the
    copy of the model that routes by them (:func:`with_rules`)."""
    from recommender.data.simulate import simulate
    from recommender.pipeline import train

    work.mkdir(parents=True, exist_ok=True)
    data, model = work / f"data-{n_reps}", work / f"model-{n_reps}"
    if not (data / "leads.csv").is_file():
        print(f"simulating {n_leads} leads x {n_reps} reps ...", file=sys.stderr)
        simulate(data, n_leads=n_leads, n_reps=n_reps, seed=7)
    if not (model / "manifest.json").is_file():
        print("training ...", file=sys.stderr)
        t = time.perf_counter()
        train(data, out=model)
        print(f"trained in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return with_rules(model, rules) if rules else model


def with_rules(model: Path, rules: str) -> Path:
    """A copy of the model folder that routes by ``rules`` (its ``rules.txt``)."""
    tag = zlib.crc32(rules.encode())
    folder = model.with_name(f"{model.name}-rules-{tag:08x}")
    if not (folder / "rules.txt").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(model, folder)
        (folder / "rules.txt").write_text(rules + "\n", encoding="utf-8")
    return folder


def start(code: str, *args: str, **env_vars: str) -> subprocess.Popen[bytes]:
    """Run ``code`` in a new Python process with ``args`` and extra environment variables.

    The working directory is the repository root; ``bare_app`` (the bare endpoint) is
    importable from ``env_vars["BARE_DIR"]`` when given (uvicorn workers import it).
    """
    path = os.pathsep.join([str(ROOT), env_vars.get("BARE_DIR", "")])
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", **env_vars)
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env)


def library_ms(
    model: Path, templates: list[dict[str, Any]], n: int = 300, batch: int = 1
) -> tuple[float, float]:
    """Median and mean ms of ``leads_from_records`` + ``route`` for ``batch`` leads."""
    from recommender.pipeline import ModelBundle

    bundle = ModelBundle.load(model)
    reps = bundle.reps.copy()
    reps["capacity"] = pd.array([None] * len(reps), dtype="Int64")
    times = []
    for i in range(n + 20):
        records = [lead(2 * 10**7 + i * batch + j, templates) for j in range(batch)]
        t = time.perf_counter()
        leads = bundle.leads_from_records(records)
        bundle.route(leads, reps=reps, used={}, events=None, seed=i, n_alternatives=3)
        times.append(time.perf_counter() - t)
    times = sorted(times[20:])
    return statistics.median(times) * 1e3, statistics.fmean(times) * 1e3


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


DAYS = 196
"""Default spread of the leads' ``created_at`` (``--days``; 28-day months from 2027-01-01)."""


TEMPLATES = 256
"""Leads of the simulated team whose fields the benchmark leads take in turn."""


def read_templates(data: Path, n: int = TEMPLATES) -> list[dict[str, Any]]:
    """The first ``n`` leads of ``data/leads.csv`` (their non-empty fields)."""
    with (data / "leads.csv").open(newline="") as fh:
        rows = csv.DictReader(fh)
        return [{k: v for k, v in row.items() if v} for _, row in zip(range(n), rows)]


def lead(i: int, templates: list[dict[str, Any]], days: int = DAYS) -> dict[str, Any]:
    """Lead ``i``: the fields of ``templates[i % len(templates)]`` under id ``i``, created
    on one of ``days`` days (1 to 196)."""
    template = templates[i % len(templates)]
    k = i % days
    day = 1 + k % 28
    month = 1 + (k // 28) % 7
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


WRK_LUA = """
local bodies = {@BODIES@}
local prefix = "w"
local n = 0
function init(args)
  prefix = args[1] or prefix
end
function request()
  n = n + 1
  local k = n % @DAYS@
  local day = 1 + k % 28
  local month = 1 + math.floor(k / 28) % 7
  local at = string.format("2027-%02d-%02dT10:00:00", month, day)
  local body = bodies[(n % #bodies) + 1]
  local b = string.gsub(string.gsub(body, "@ID@", prefix .. "-" .. n, 1), "@AT@", at, 1)
  return wrk.format("POST", nil, nil, b)
end
"""


def drive_wrk(
    url: str,
    templates: list[dict[str, Any]],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    prefix: str,
    work: Path,
    days: int = DAYS,
) -> tuple[dict[str, float], int]:
    """Run wrk (one thread, in C) for ``seconds``: every request a new lead id, created on
    one of ``days`` days, with the fields of the next of ``templates`` in turn.

    Returns the measured row (req/s, p50 and p99 ms) and the count of failed requests.
    """
    bodies = ",\n".join(
        "[==[" + json.dumps({"leads": [dict(t, lead_id="@ID@", created_at="@AT@")]}) + "]==]"
        for t in templates
    )
    script = work / "route.lua"
    script.write_text(WRK_LUA.replace("@BODIES@", bodies).replace("@DAYS@", str(days)))
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(
        [*cmd, url, "--", prefix], capture_output=True, text=True, check=True
    ).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(q: str) -> float:
        value = re.search(rf"^\s*{q}%\s+([\d.]+)(us|ms|s)$", out, re.M)
        return float(value[1]) * unit[value[2]] if value else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad[1]) if bad else 0
    errors += sum(int(x) for x in sock.groups()) if sock else 0
    return {"rps": rps, "p50_ms": latency("50"), "p99_ms": latency("99")}, errors


def _stat_seconds(stat: Path) -> float:
    """User + system CPU seconds in a ``/proc`` ``stat`` file (a process's or a thread's).

    Raises:
        OSError, ValueError, IndexError: the file cannot be read or parsed.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants.

    Read from ``/proc`` (Linux); ``nan`` where it cannot be read.
    """
    total = 0.0
    todo = [pid]
    try:
        while todo:
            p = todo.pop()
            total += _stat_seconds(Path(f"/proc/{p}/stat"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError, IndexError):
        return float("nan")
    return total


def loop_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by the main thread of process ``pid``.

    With one uvicorn process that is the event loop: HTTP parsing, the middleware, JSON
    in and out; the rest of the process's time is its worker threads (routing, SQL).
    ``nan`` where ``/proc`` cannot be read.
    """
    try:
        return _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))
    except (OSError, ValueError, IndexError):
        return float("nan")


def spread(db: str) -> str:
    """How the routed leads spread: leads stored, assigned, distinct reps and days (every
    assignment in the database, so those of earlier runs on a reused ``--db`` too)."""
    from sqlalchemy import text

    from service.store.db import make_engine

    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            leads, assigned, reps, days = conn.execute(
                text(
                    "SELECT COUNT(*), COUNT(rep_id), COUNT(DISTINCT rep_id), COUNT(DISTINCT day) "
                    "FROM assignments"
                )
            ).one()
    finally:
        engine.dispose()
    return f"routed leads: {leads}, assigned {assigned}, to {reps} distinct reps, on {days} days"


def print_row(name: str, row: dict[str, float], errors: int) -> None:
    """Print one measured row (with the server's CPU time per request where measured)."""
    cpu = f"   server cpu {row['cpu_us']:5.0f} us/req" if "cpu_us" in row else ""
    if "loop_us" in row:
        cpu += f" (event loop {row['loop_us']:.0f})"
    print(
        f"{name:<28} {row['rps']:9.0f} req/s   p50 {row['p50_ms']:7.1f} ms   "
        f"p99 {row['p99_ms']:7.1f} ms   errors {errors}{cpu}"
    )


def report(name: str, seconds: float, latencies: list[float], errors: int) -> dict[str, float]:
    """Print and return req/s, p50 and p99 (ms)."""
    q = statistics.quantiles(latencies, n=100)
    row = {"rps": len(latencies) / seconds, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}
    print_row(name, row, errors)
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
    ap.add_argument("--workers", type=int, default=1, help="uvicorn processes per server")
    ap.add_argument(
        "--capacity",
        default="none",
        choices=["none", "reps"],
        help="reps' daily capacity: none (unlimited, the default) or reps (the simulated "
        "team's own: leads spill over to the next best reps)",
    )
    ap.add_argument(
        "--rules",
        default=None,
        help="eligibility rules (rules.txt text) the served model routes by, e.g. "
        "'rep.region == lead.region' (default: none)",
    )
    ap.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    ap.add_argument("--http", default="httptools", choices=["httptools", "h11"])
    ap.add_argument("--repeat", type=int, default=1, help="measure each server this many times")
    ap.add_argument(
        "--client",
        default="wrk" if shutil.which("wrk") else "httpx",
        choices=["wrk", "httpx"],
        help="load generator: wrk (C, one thread; apt install wrk) or the async httpx client",
    )
    ap.add_argument("--seconds", type=float, default=15.0, help="wrk: seconds per measurement")
    ap.add_argument(
        "--days",
        type=int,
        default=DAYS,
        choices=range(1, DAYS + 1),
        metavar=f"1..{DAYS}",
        help="days the leads' created_at is spread over (1: all arrive the same day, as "
        f"live routing sees them; default {DAYS}: every lead of a batch on its own day)",
    )
    args = ap.parse_args()
    threadpool_limits(1)

    model = build_model(args.work, args.reps, args.leads, args.rules)
    db = args.db or f"sqlite:///{args.work / f'bench-{os.getpid()}.db'}"
    admin, router = create_key("admin", db), create_key("router", db)
    templates = read_templates(args.work / f"data-{args.reps}")

    port_s, port_b = free_port(), free_port()
    serving = [str(args.workers), args.loop, args.http]
    service = start(
        SERVICE_APP,
        str(port_s),
        *serving,
        LEADRANK_MODEL_PATH=str(model.resolve()),
        LEADRANK_DATABASE_URL=db,
    )
    procs = [service]
    try:
        base = f"http://127.0.0.1:{port_s}"
        wait_up(base + "/healthz", service)
        auth = {"Authorization": f"Bearer {router}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=60) as c:
            from recommender.pipeline import ModelBundle

            # default: unlimited capacity, to measure routing, not refusals once the days
            # fill up (every lead then goes to the model's best rep for it);
            # --capacity reps sets the simulated reps' own (also on a reused --db)
            for rep, capacity in (
                ModelBundle.load(model).reps[["rep_id", "capacity"]].itertuples(index=False)
            ):
                c.put(
                    f"/v1/admin/reps/{rep}",
                    json={"capacity": None if args.capacity == "none" else int(capacity)},
                    headers={"Authorization": f"Bearer {admin}"},
                ).raise_for_status()
            sample = c.post("/v1/route", json={"leads": [lead(10**7, templates)]}, headers=auth)
            sample.raise_for_status()
        bare_dir = args.work / "bare"
        bare_dir.mkdir(exist_ok=True)
        (bare_dir / "bare_app.py").write_text(BARE_APP)
        constant = args.work / "constant.json"
        constant.write_bytes(sample.content)
        bare = start(
            BARE_APP, str(port_b), *serving, BARE_BODY=str(constant), BARE_DIR=str(bare_dir)
        )
        procs.append(bare)
        wait_up(f"http://127.0.0.1:{port_b}/docs", bare)

        load = f"wrk {args.seconds:g} s" if args.client == "wrk" else f"{args.requests} requests"
        print(
            f"POST one lead, {args.reps} reps, {load} (client {args.client}), concurrency "
            f"{args.concurrency}, answer {len(sample.content)} bytes, db {db.split(':')[0]}, "
            f"{args.workers} worker(s) {args.loop} + {args.http}"
            + f", capacity: {'unlimited' if args.capacity == 'none' else 'the reps own'}"
            + (f", rules: {args.rules}" if args.rules else "")
        )
        urls = {"bare FastAPI constant": f"http://127.0.0.1:{port_b}/bare"}
        urls["POST /v1/route"] = base + "/v1/route"
        offset = 0
        rows: dict[str, list[float]] = {name: [] for name in urls}
        cpus: dict[str, list[float]] = {name: [] for name in urls}
        loops: dict[str, list[float]] = {name: [] for name in urls}
        pids = {"bare FastAPI constant": bare.pid, "POST /v1/route": service.pid}
        for r in range(args.repeat):
            for name, url in urls.items():
                if args.client == "wrk":
                    tag = f"r{r}-{name.split()[0]}-{os.getpid()}"
                    drive_wrk(
                        url,
                        templates,
                        auth,
                        args.concurrency,
                        2,
                        f"{tag}-warm",
                        args.work,
                        args.days,
                    )
                    cpu0, loop0 = cpu_seconds(pids[name]), loop_cpu_seconds(pids[name])
                    row, errors = drive_wrk(
                        url,
                        templates,
                        auth,
                        args.concurrency,
                        args.seconds,
                        tag,
                        args.work,
                        args.days,
                    )
                    served = row["rps"] * args.seconds
                    row["cpu_us"] = (cpu_seconds(pids[name]) - cpu0) / served * 1e6
                    if args.workers == 1:  # else the loops are in the worker processes
                        row["loop_us"] = (loop_cpu_seconds(pids[name]) - loop0) / served * 1e6
                        loops[name].append(row["loop_us"])
                    print_row(f"{name} #{r + 1}", row, errors)
                    rows[name].append(row["rps"])
                    cpus[name].append(row["cpu_us"])
                    continue
                warm = [
                    json.dumps({"leads": [lead(offset + i, templates, args.days)]}).encode()
                    for i in range(200)
                ]
                bodies = [
                    json.dumps({"leads": [lead(offset + 200 + i, templates, args.days)]}).encode()
                    for i in range(args.requests)
                ]
                offset += 200 + args.requests
                asyncio.run(drive(url, warm, auth, args.concurrency))
                measured = asyncio.run(drive(url, bodies, auth, args.concurrency))
                rows[name].append(report(f"{name} #{r + 1}", *measured)["rps"])
        bare_rps, route_rps = rows["bare FastAPI constant"], rows["POST /v1/route"]
        ratios = [r / b for r, b in zip(route_rps, bare_rps, strict=True)]
        print(
            f"route / bare throughput: {min(ratios):.1%} .. {max(ratios):.1%} "
            f"(route {min(route_rps):.0f}..{max(route_rps):.0f} req/s, "
            f"bare {min(bare_rps):.0f}..{max(bare_rps):.0f} req/s)"
        )
        if cpus["POST /v1/route"]:
            route_cpu, bare_cpu = cpus["POST /v1/route"], cpus["bare FastAPI constant"]
            print(
                f"server cpu per request (median): route {statistics.median(route_cpu):.0f} us, "
                f"bare {statistics.median(bare_cpu):.0f} us"
            )
        if loops["POST /v1/route"] and loops["bare FastAPI constant"]:
            route_loop = statistics.median(loops["POST /v1/route"])
            rest = [c - lp for c, lp in zip(cpus["POST /v1/route"], loops["POST /v1/route"])]
            print(
                f"of which in the event loop thread (median): route {route_loop:.0f} us, in "
                f"the worker threads that route and store {statistics.median(rest):.0f} us; "
                f"bare {statistics.median(loops['bare FastAPI constant']):.0f} us"
            )
            # Where both servers are CPU-bound on one core (req/s x cpu per request near
            # 1 s a second), route/bare throughput is about bare cpu / route cpu a request.
            busy = {
                name: statistics.median(
                    r * c / 1e6 for r, c in zip(rows[name], cpus[name], strict=True)
                )
                for name in rows
            }
            print(
                "server cpu seconds a second (one core is 1.0): "
                + ", ".join(f"{name} {value:.2f}" for name, value in busy.items())
            )
            bare_all = statistics.median(cpus["bare FastAPI constant"])
            budget = bare_all / 0.7 - route_loop
            print(
                f"ceiling if routing and storing cost nothing: {bare_all / route_loop:.0%} of "
                f"bare; at 70 % of bare they may cost {budget:.0f} us a request "
                f"(now {statistics.median(rest):.0f} us)"
            )
        with httpx.Client(base_url=base, timeout=60) as c:
            text = c.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).text
        counts = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("leadrank_route_batch")
        }
        batches = counts.get("leadrank_route_batches_total", 0.0)
        if batches:
            print(
                "requests per route batch (mean, in the worker that answered /metrics): "
                f"{counts['leadrank_route_batched_requests_total'] / batches:.1f}"
            )
        print(spread(db))
        one = library_ms(model, templates)
        sixteen = library_ms(model, templates, n=100, batch=16)
        print(
            "library alone (leads_from_records + route, 1 thread): one lead median "
            f"{one[0]:.1f} ms; 16 leads together median {sixteen[0]:.1f} ms"
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
