"""Benchmark: how well the per-rep affinity recovers the simulator's planted truth.

Simulates a team with :func:`recommender.data.simulate.simulate`, trains through the real
pipeline (:func:`recommender.pipeline.fit_bundle` on the leads created before the split,
exactly what ``leadrank evaluate`` trains) and measures on the test leads (created at or
after the split, the latest ``--test-share`` of leads):

- **Spearman (rep, segment)**: for every rep seen in training and every segment ``s`` of
  the truth, ``learned[r, s]`` = mean over the test leads of segment ``s`` of the model's
  ``P(won | lead, r)`` (``bundle.rep_probabilities``), ``true[r, s]`` = the same mean of
  ``Truth.probability``. Printed: Spearman over all (rep, segment) cells (``all cells``;
  this includes the between-segment differences that the global score alone gets right),
  and the mean over segments of the Spearman across reps within one segment
  (``within segment``: the rep-specific part only).
- **AUC**: on the closed outcome rows of test leads that name a rep, the AUC of the
  model's ``P(won | lead, rep)`` next to the AUC of the true probability on the same
  rows, of the global score alone, and of the true probability without the rep part
  (``sigmoid(base_logit)``): the gap left to the global score vs. to the affinity.
- **strength**: the combiner's fitted strength (0 means the global score is returned).
- **time**: wall seconds of ``fit_bundle`` (whole training), with ``--threads`` threads.

With ``--rep-effect 0`` (a placebo team) the model must return the global score: the
strength should be 0 and the AUC equal the global score's.

Run: ``python bench/affinity_quality.py --leads 50000 --reps 200 --seed 0 [--rep-effect 1]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from recommender.columns import Columns, Outcome
from recommender.config import TrainConfig
from recommender.data.load import load_dataset
from recommender.data.simulate import load_truth, simulate
from recommender.pipeline import fit_bundle, restrict, training_as_of
from recommender.scoring import clip_probability


def dataset_folder(cache: Path, leads: int, reps: int, seed: int, rep_effect: float) -> Path:
    """Simulate (or reuse) the dataset folder for these parameters under ``cache``."""
    out = cache / f"sim_l{leads}_r{reps}_s{seed}_e{rep_effect:g}"
    if not (out / "truth" / "truth.json").is_file():
        simulate(out, n_leads=leads, n_reps=reps, seed=seed, rep_effect=rep_effect)
    return out


def measure(folder: Path, cfg: TrainConfig, test_share: float) -> dict[str, float]:
    """Train through the pipeline on the early leads and measure on the late ones."""
    ds = load_dataset(folder)
    truth = load_truth(folder)
    created = ds.leads[Columns.CREATED]
    split = created.sort_values().iloc[int(len(created) * (1 - test_share))]
    train = restrict(ds, split)
    t0 = time.perf_counter()
    bundle = fit_bundle(train, config=cfg)
    t_fit = time.perf_counter() - t0

    test_mask = (created >= split).to_numpy()
    leads = ds.leads.loc[test_mask].reset_index(drop=True)
    as_of = training_as_of(ds, cfg.horizon_days)[test_mask]
    base = clip_probability(
        bundle.scorer.predict_proba(bundle.model_inputs(leads, ds.events, as_of))
    )
    seen = sorted(set(train.outcomes[Columns.REP].dropna()))  # type: ignore[index]
    p_model = bundle.rep_probabilities(leads, seen, base_probability=base)
    lead_ids = leads[Columns.LEAD].astype(str).tolist()
    p_true = truth.probability(lead_ids, seen)
    pos = {v: i for i, v in enumerate(truth.lead_ids.tolist())}
    seg = truth.lead_segment[[pos[v] for v in lead_ids]]

    n_seg = len(truth.segments)
    learned = np.stack([p_model[seg == s].mean(axis=0) for s in range(n_seg)], axis=1)
    true = np.stack([p_true[seg == s].mean(axis=0) for s in range(n_seg)], axis=1)
    rho_all = float(spearmanr(learned.ravel(), true.ravel()).statistic)
    # Undefined (NaN) where the model gives every rep the same value: the global score.
    within = [
        spearmanr(learned[:, s], true[:, s]).statistic if np.ptp(learned[:, s]) > 0 else np.nan
        for s in range(n_seg)
    ]
    rho_within = float(np.nanmean(within)) if np.isfinite(within).any() else float("nan")

    o = ds.outcomes
    rows = o.loc[  # type: ignore[union-attr]
        o[Columns.LEAD].isin(set(lead_ids))  # type: ignore[index]
        & o[Columns.REP].isin(set(seen))  # type: ignore[index]
        & o[Columns.OUTCOME].isin([Outcome.WON, Outcome.LOST])  # type: ignore[index]
    ]
    lpos = {v: i for i, v in enumerate(lead_ids)}
    rpos = {v: j for j, v in enumerate(seen)}
    li = np.array([lpos[v] for v in rows[Columns.LEAD]], dtype=np.int64)
    rj = np.array([rpos[v] for v in rows[Columns.REP]], dtype=np.int64)
    y = (rows[Columns.OUTCOME].to_numpy() == Outcome.WON).astype(int)
    base_true = 1.0 / (1.0 + np.exp(-truth.base_logit[[pos[lead_ids[i]] for i in li]]))
    rep = bundle.affinity.report_ if bundle.affinity is not None else {}
    return {
        "n_train_leads": len(train.leads),
        "n_test_rows": int(y.size),
        "spearman_all": rho_all,
        "spearman_within": rho_within,
        "auc_model": float(roc_auc_score(y, p_model[li, rj])),
        "auc_truth": float(roc_auc_score(y, p_true[li, rj])),
        "auc_global": float(roc_auc_score(y, base[li])),
        "auc_truth_no_rep": float(roc_auc_score(y, base_true)),
        "strength": float(rep.get("strength", 0.0)),
        "z": float(rep.get("z", 0.0)),
        "fit_seconds": t_fit,
    }


def main() -> None:
    """Parse arguments, run the measurement ``--repeats`` times and print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leads", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rep-effect", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", default="lightfm")
    ap.add_argument("--test-share", type=float, default=0.2)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "leadrank_aq")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    args.cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    folder = dataset_folder(args.cache, args.leads, args.reps, args.seed, args.rep_effect)
    t_sim = time.perf_counter() - t
    cfg = TrainConfig(
        seed=args.seed, n_threads=args.threads, affinity_engine=args.engine, placebo=False
    )
    r = measure(folder, cfg, args.test_share)
    print(
        f"leads={args.leads} reps={args.reps} seed={args.seed} rep_effect={args.rep_effect:g} "
        f"engine={args.engine} threads={args.threads} (simulate {t_sim:.1f} s)"
    )
    print(
        f"  train leads {r['n_train_leads']}, test outcome rows {r['n_test_rows']}, "
        f"fit_bundle {r['fit_seconds']:.1f} s"
    )
    print(
        f"  Spearman (rep, segment) all cells {r['spearman_all']:.3f} | "
        f"within segment (mean of 9) {r['spearman_within']:.3f} (nan: no rep differences)"
    )
    print(
        f"  AUC model {r['auc_model']:.4f} | truth {r['auc_truth']:.4f} "
        f"(gap {r['auc_truth'] - r['auc_model']:+.4f}) | global score only "
        f"{r['auc_global']:.4f} | truth without rep part {r['auc_truth_no_rep']:.4f}"
    )
    print(f"  strength {r['strength']:.3f} (z {r['z']:.1f})")


if __name__ == "__main__":
    main()
