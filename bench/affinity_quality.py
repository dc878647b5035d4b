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
- **crosses**: ``--crosses none|firmographic|all`` sets ``TrainConfig.affinity_crosses``
  (crossed indicators in the affinity model's lead representation); the number of
  crossed pairs and of indicators is printed.
- **time**: wall seconds of ``fit_bundle`` (whole training), with ``--threads`` threads.

With ``--rep-effect 0`` (a placebo team) the model must return the global score: the
strength should be 0 and the AUC equal the global score's.

Run: ``python bench/affinity_quality.py --leads 50000 --reps 200 --seed 0 [--rep-effect 1]
[--crosses firmographic]``

Measured on 2026-11-23 (200 reps, seed 0, LightFM, ``--threads 1``), Spearman all cells
with firmographic crosses (without): 20k 0.441 (0.441), 50k 0.566 (0.563), 100k 0.622
(0.612), 200k 0.712 (0.697), 500k 0.836 (0.733); the oracle 0.567, 0.709, 0.813, 0.875,
0.940. AUC at 50k: model 0.794, global score 0.791, truth 0.848. Placebo team at 50k:
strength 0 either way.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from recommender.columns import Columns, Outcome
from recommender.config import AFFINITY_BINS, AFFINITY_CROSSES, TrainConfig
from recommender.data.load import load_dataset
from recommender.data.simulate import knowable_base_logit, load_truth, simulate
from recommender.pipeline import fit_bundle, interactions, restrict, training_as_of
from recommender.scoring import clip_probability, logit

#: Shrinkage pseudo-weight of the oracle's per-(rep, segment) residual means.
ORACLE_K = 2.0


def dataset_folder(cache: Path, leads: int, reps: int, seed: int, rep_effect: float) -> Path:
    """Simulate (or reuse) the dataset folder for these parameters under ``cache``."""
    out = cache / f"sim_l{leads}_r{reps}_s{seed}_e{rep_effect:g}_v2"  # v2: truth has latent
    if not (out / "truth" / "truth.json").is_file():
        simulate(out, n_leads=leads, n_reps=reps, seed=seed, rep_effect=rep_effect)
    return out


def oracle_probabilities(
    bundle: Any,
    train: Any,
    truth: Any,
    seen: list[str],
    base: np.ndarray,
    seg: np.ndarray,
    cfg: TrainConfig,
    k: float = ORACLE_K,
) -> np.ndarray:
    """P(won | test lead, rep) from an oracle that is *told* each lead's true segment.

    Per (rep, segment): the shrunk mean residual of the training outcomes against the
    pipeline's own global score, sum(y - p) / (sum p (1 - p) + k), centred per segment,
    added to the global logit. It needs no representation learning, so it bounds what
    any affinity model can recover from these outcomes at this data size.
    """
    r, li, y = interactions(train, seen)
    as_of = training_as_of(train, cfg.horizon_days)
    p_tr = clip_probability(
        bundle.scorer.predict_proba(bundle.model_inputs(train.leads, train.events, as_of))
    )[li]
    pos = {v: i for i, v in enumerate(truth.lead_ids.tolist())}
    seg_tr = truth.lead_segment[[pos[v] for v in train.leads[Columns.LEAD].astype(str)]][li]
    n_seg = len(truth.segments)
    num = np.zeros((len(seen), n_seg))
    den = np.zeros((len(seen), n_seg))
    np.add.at(num, (r, seg_tr), y - p_tr)
    np.add.at(den, (r, seg_tr), p_tr * (1 - p_tr))
    effect = num / (den + k)
    effect -= effect.mean(axis=0)
    return 1.0 / (1.0 + np.exp(-(logit(base)[:, None] + effect[:, seg].T)))


@dataclass
class Setup:
    """One train/test split of a simulated folder, trained through the pipeline.

    ``leads`` are the test leads, ``base`` their global-score probability, ``seen`` the
    reps seen in training (columns of every ``(n_test_leads, n_seen)`` matrix), ``seg``
    each test lead's true segment, ``li``/``rj``/``y`` the closed test outcome rows
    (lead row, rep column, label).
    """

    ds: Any
    truth: Any
    train: Any
    bundle: Any
    cfg: TrainConfig
    fit_seconds: float
    leads: Any
    base: np.ndarray
    seen: list[str]
    p_true: np.ndarray
    seg: np.ndarray
    li: np.ndarray
    rj: np.ndarray
    y: np.ndarray
    base_true: np.ndarray
    p_knowable: np.ndarray | None


def prepare(folder: Path, cfg: TrainConfig, test_share: float) -> Setup:
    """Train through the pipeline on the early leads; collect the late ones' truth."""
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
    lead_ids = leads[Columns.LEAD].astype(str).tolist()
    p_true = truth.probability(lead_ids, seen)
    pos = {v: i for i, v in enumerate(truth.lead_ids.tolist())}
    seg = truth.lead_segment[[pos[v] for v in lead_ids]]

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
    p_knowable = None
    if truth.latent is not None:  # folders simulated before the latent was recorded lack it
        assert ds.events is not None  # a simulated folder always has events
        known = knowable_base_logit(truth, leads, ds.events, as_of)
        p_knowable = truth.probability(lead_ids, seen, base_logit=known)
    return Setup(
        ds,
        truth,
        train,
        bundle,
        cfg,
        t_fit,
        leads,
        base,
        seen,
        p_true,
        seg,
        li,
        rj,
        y,
        base_true,
        p_knowable,
    )


def cell_means(s: Setup, p: np.ndarray) -> np.ndarray:
    """Mean of ``p`` (test leads x seen reps) over the test leads of each true segment."""
    n_seg = len(s.truth.segments)
    return np.stack([p[s.seg == k].mean(axis=0) for k in range(n_seg)], axis=1)


def quality(s: Setup, p_model: np.ndarray) -> dict[str, float]:
    """Spearman (all cells, within segment) and AUC of a ``P(won | test lead, rep)`` matrix."""
    learned, true = cell_means(s, p_model), cell_means(s, s.p_true)
    rho_all = float(spearmanr(learned.ravel(), true.ravel()).statistic)
    # Undefined (NaN) where the model gives every rep the same value: the global score.
    within = [
        spearmanr(learned[:, k], true[:, k]).statistic if np.ptp(learned[:, k]) > 0 else np.nan
        for k in range(learned.shape[1])
    ]
    rho_within = float(np.nanmean(within)) if np.isfinite(within).any() else float("nan")
    return {
        "spearman_all": rho_all,
        "spearman_within": rho_within,
        "auc_model": float(roc_auc_score(s.y, p_model[s.li, s.rj])),
    }


def measure(folder: Path, cfg: TrainConfig, test_share: float) -> dict[str, float]:
    """Train through the pipeline on the early leads and measure on the late ones."""
    s = prepare(folder, cfg, test_share)
    p_model = s.bundle.rep_probabilities(s.leads, s.seen, base_probability=s.base)
    rep = s.bundle.affinity.report_ if s.bundle.affinity is not None else {}
    p_oracle = oracle_probabilities(s.bundle, s.train, s.truth, s.seen, s.base, s.seg, s.cfg)
    q, q_oracle = quality(s, p_model), quality(s, p_oracle)
    return {
        "n_train_leads": len(s.train.leads),
        "n_test_rows": int(s.y.size),
        **q,
        "auc_truth": float(roc_auc_score(s.y, s.p_true[s.li, s.rj])),
        "auc_global": float(roc_auc_score(s.y, s.base[s.li])),
        "auc_truth_no_rep": float(roc_auc_score(s.y, s.base_true)),
        "auc_truth_knowable": (
            float(roc_auc_score(s.y, s.p_knowable[s.li, s.rj]))
            if s.p_knowable is not None
            else float("nan")
        ),
        "spearman_oracle": q_oracle["spearman_all"],
        "spearman_within_oracle": q_oracle["spearman_within"],
        "auc_oracle": q_oracle["auc_model"],
        "strength": float(rep.get("strength", 0.0)),
        "z": float(rep.get("z", 0.0)),
        "fit_seconds": s.fit_seconds,
        "n_crosses": len(s.bundle.encoder.crosses_),
        "n_indicators": s.bundle.encoder.n_features_out,
    }


def main() -> None:
    """Parse arguments, run the measurement ``--repeats`` times and print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leads", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rep-effect", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", default=TrainConfig().affinity_engine)
    ap.add_argument(
        "--crosses", default=TrainConfig().affinity_crosses, choices=list(AFFINITY_CROSSES)
    )
    ap.add_argument(
        "--affinity-features",
        default=TrainConfig().affinity_features,
        choices=["all", "firmographic"],
    )
    ap.add_argument(
        "--affinity-bins",
        default=TrainConfig().affinity_bins,
        choices=list(AFFINITY_BINS),
        help="how the affinity model cuts numeric columns",
    )
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
        seed=args.seed,
        n_threads=args.threads,
        affinity_engine=args.engine,
        affinity_crosses=args.crosses,
        affinity_features=args.affinity_features,
        affinity_bins=args.affinity_bins,
        placebo=False,
    )
    r = measure(folder, cfg, args.test_share)
    print(
        f"leads={args.leads} reps={args.reps} seed={args.seed} rep_effect={args.rep_effect:g} "
        f"engine={args.engine} crosses={args.crosses} features={args.affinity_features} "
        f"bins={args.affinity_bins} "
        f"threads={args.threads} "
        f"(simulate {t_sim:.1f} s)"
    )
    print(
        f"  train leads {r['n_train_leads']}, test outcome rows {r['n_test_rows']}, "
        f"fit_bundle {r['fit_seconds']:.1f} s, {r['n_crosses']} crossed pairs, "
        f"{r['n_indicators']} lead indicators"
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
    print(
        f"  truth knowable at scoring time (no latent intent, events before as_of only) "
        f"{r['auc_truth_knowable']:.4f} (gap {r['auc_truth_knowable'] - r['auc_model']:+.4f})"
    )
    print(f"  strength {r['strength']:.3f} (z {r['z']:.1f})")
    print(
        f"  oracle told the true segment (k={ORACLE_K:g}): Spearman all cells "
        f"{r['spearman_oracle']:.3f} | within segment {r['spearman_within_oracle']:.3f} | "
        f"AUC {r['auc_oracle']:.4f}"
    )


if __name__ == "__main__":
    main()
