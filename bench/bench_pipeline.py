"""Speed of the contract's promises (CONTRACT section 4), next to the bare libraries.

    python bench/bench_pipeline.py [--big 25000] [--small 3000] [--reps 60] [--threads 2]

Measures, on simulated teams with accounts:
- ``train`` of 25,000 leads x 60 reps (promise: 60 s) and of 3,000 leads (15 s);
- ``evaluate`` of the 25,000-lead team (2 minutes);
- ``route`` of 2,500 leads (10 s) and ``score`` of 100,000 leads (issue target: 5 s);
and, in the same run, a bare LightGBM fit plus a bare LightFM fit on the same rows (one
thread, as leadrank trains), and a bare LightGBM predict of the same booster on the same
rows next to the in-process score, so a slow machine shows up in both columns.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(label: str, cmd: list[str]) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{label} failed:\n{res.stderr[-2000:]}")
    return took


def bare_baseline(data: Path, threads: int) -> float:
    """Seconds for LightGBM + LightFM fitted directly on the same leads (no leadrank)."""
    code = f"""
import time, numpy as np, pandas as pd, lightgbm as lgb, scipy.sparse as sp
from lightfm import LightFM
leads = pd.read_csv('{data}/leads.csv'); out = pd.read_csv('{data}/outcomes.csv')
t = time.perf_counter()
won = set(out.loc[out.outcome == 'won', 'lead_id'])
y = leads.lead_id.isin(won).astype(int).to_numpy()
X = leads.drop(columns=['lead_id', 'created_at', 'account_id'])
for c in X.columns:
    if not pd.api.types.is_numeric_dtype(X[c]): X[c] = X[c].astype('category')
lgb.train({{'objective': 'binary', 'num_threads': {threads}, 'verbose': -1}},
          lgb.Dataset(X, y), num_boost_round=300)
closed = out[out.outcome.isin(['won', 'lost']) & out.rep_id.notna()]
reps = {{r: i for i, r in enumerate(sorted(closed.rep_id.unique()))}}
lid = {{l: i for i, l in enumerate(leads.lead_id)}}
inter = sp.coo_matrix(((closed.outcome == 'won').map({{True: 1, False: -1}}).to_numpy(),
    (closed.rep_id.map(reps).to_numpy(), closed.lead_id.map(lid).to_numpy())),
    shape=(len(reps), len(leads)))
feats = sp.csr_matrix(pd.get_dummies(X.select_dtypes('category')).to_numpy(dtype=np.float32))
LightFM(no_components=16, loss='logistic', random_state=0).fit(
    inter, item_features=feats, epochs=30, num_threads={threads})
print(time.perf_counter() - t)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-2000:])
    return float(res.stdout.strip().splitlines()[-1])


def score_in_process(model: Path, leads: Path) -> tuple[float, float]:
    """Seconds for ModelBundle.score on a read file, and for LightGBM's bare predict of
    the same booster on the same rows (probabilities only)."""
    code = f"""
import time, numpy as np
from recommender.bundle import ModelBundle
b = ModelBundle.load('{model}')
leads = b.read_leads_csv('{leads}')
b.score(leads.iloc[:100])
t = time.perf_counter(); b.score(leads); lib = time.perf_counter() - t
gbm = b.scorer.gbm_ or None
X = b.model_inputs(leads)
if gbm is not None:
    m = gbm._matrix(X)
    t = time.perf_counter(); gbm.booster_.predict(m, num_threads=2); bare = time.perf_counter() - t
else:
    bare = float('nan')
print(lib, bare)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-2000:])
    lib, bare = res.stdout.strip().splitlines()[-1].split()
    return float(lib), float(bare)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--big", type=int, default=25_000)
    ap.add_argument("--small", type=int, default=3_000)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--score-leads", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    cli = [sys.executable, "-m", "service.cli"]
    rows: list[tuple[str, float, float | None, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n, promise in ((args.small, 15.0), (args.big, 60.0)):
            data = root / f"team{n}"
            timed(
                "simulate",
                [
                    *cli,
                    "simulate",
                    str(data),
                    "--leads",
                    str(n),
                    "--reps",
                    str(args.reps),
                    "--seed",
                    "1",
                ],
            )
            took = timed("train", [*cli, "train", str(data), "--out", str(root / f"m{n}")])
            rows.append(
                (
                    f"train {n:,} leads x {args.reps} reps",
                    took,
                    bare_baseline(data, 1),
                    f"<= {promise:.0f} s",
                )
            )
        big = root / f"team{args.big}"
        took = timed("evaluate", [*cli, "evaluate", str(big), "--split-time", "2026-08-01"])
        rows.append((f"evaluate {args.big:,} leads", took, None, "<= 120 s"))
        lines = (big / "leads.csv").read_text().splitlines()
        batch = root / "batch.csv"
        batch.write_text("\n".join(lines[:2501]) + "\n")
        took = timed(
            "route",
            [
                *cli,
                "route",
                str(root / f"m{args.big}"),
                str(batch),
                "--reps",
                str(big / "reps.csv"),
            ],
        )
        rows.append(("route 2,500 leads (whole command)", took, None, "<= 10 s"))
        many = root / "many"
        timed(
            "simulate",
            [
                *cli,
                "simulate",
                str(many),
                "--leads",
                str(args.score_leads),
                "--reps",
                "10",
                "--seed",
                "2",
            ],
        )
        took = timed("score", [*cli, "score", str(root / f"m{args.big}"), str(many / "leads.csv")])
        rows.append((f"score {args.score_leads:,} leads (whole command)", took, None, "-"))
        lib, bare = score_in_process(root / f"m{args.big}", many / "leads.csv")
        rows.append(
            (f"score {args.score_leads:,} leads in process (+grade, reasons)", lib, bare, "<= 5 s")
        )
    print(f"{'what':52s} {'leadrank s':>11s} {'bare libs s':>12s}  promise")
    for what, took, bare, promise in rows:
        bare_s = f"{bare:12.1f}" if bare is not None else f"{'-':>12s}"
        print(f"{what:52s} {took:11.1f} {bare_s}  {promise}")


if __name__ == "__main__":
    main()
