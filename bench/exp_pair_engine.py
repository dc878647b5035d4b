"""Experiment: supervised (rep, lead) pair models as affinity-engine candidates.

Same folders, same split and same metrics as ``bench/affinity_quality.py`` (its
``prepare`` / ``quality`` / ``oracle_probabilities`` are reused), for these candidates:

- ``global``: the pipeline's global score alone (what the placebo team must match).
- ``lightfm``: the pipeline's current combiner (``bundle.rep_probabilities``).
- ``oracle``: told each lead's true segment (see ``affinity_quality``).
- ``ceiling``: the global score plus the *true* rep part ``rep_bias + affinity[r, seg]``:
  the best any affinity on top of this global score can reach.
- ``glm``: penalised logistic regression with the global logit as offset on
  ``rep bias + rep x lead indicator`` (the pipeline encoder's one-hot columns): an
  additive empirical-Bayes model of per-(rep, feature value) effects (Gaussian prior =
  L2 penalty, its strength picked on the time-ordered last 20 % of the training rows,
  "no adjustment" included in the choice), refitted on all rows.
- ``glm-x``: the same on an encoder with crossed pairs of low-cardinality columns.
- ``lgbm``: LightGBM on (lead indicators + rep id as a categorical feature) with
  ``init_score`` = the global logit, small trees, strong categorical smoothing, early
  stopping on the time-ordered validation slice (zero rounds kept when none helps).
- ``lgbm-raw``: the same on the raw lead feature frame (categories and numbers), which
  an engine does not get (it sees the encoder's indicators only): how much the binning
  loses.
- ``pair``: the engine ``recommender.models.affinity_pair.PairAffinity`` run through the
  real combiner ``RepAffinity`` (strength, shrinkage), when that module exists.

Adjustments are centred per lead over the reps seen in training, as the combiner does.

Run: ``python bench/exp_pair_engine.py --leads 50000 [--rep-effect 0] [--only glm,lgbm]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from affinity_quality import (
    Setup,
    dataset_folder,
    oracle_probabilities,
    prepare,
    quality,
)

from recommender.columns import Columns
from recommender.config import TrainConfig
from recommender.features import FeatureEncoder
from recommender.models.affinity import RepAffinity, split_rows
from recommender.pipeline import interactions, training_as_of
from recommender.scoring import clip_probability, logit

LAMBDAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


class Train:
    """Training interaction rows with the pipeline's global logit as offset."""

    def __init__(self, s: Setup) -> None:
        self.r, self.li, self.y = interactions(s.train, s.seen)
        as_of = training_as_of(s.train, s.cfg.horizon_days)
        p = clip_probability(
            s.bundle.scorer.predict_proba(
                s.bundle.model_inputs(s.train.leads, s.train.events, as_of)
            )
        )
        self.base = logit(p)[self.li]
        created = s.train.leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        self.order = created[self.li]
        self.tr, self.va = split_rows(len(self.r), 0.2, self.order, 0)
        self.frame_train = s.train.feature_frame()


def _pair_matrix(x: sp.csr_matrix, rep: np.ndarray, n_reps: int) -> sp.csr_matrix:
    """Rows ``[rep one-hot | rep x indicator]``: columns ``r`` and ``n_reps + r * p + f``."""
    x = sp.csr_matrix(x)
    p = x.shape[1]
    nnz = np.diff(x.indptr)
    rows_rep = np.repeat(rep, nnz)
    cols = n_reps + rows_rep * p + x.indices
    m = x.shape[0]
    inter = sp.csr_matrix((np.ones(len(cols)), cols, x.indptr), shape=(m, n_reps * (p + 1)))
    bias = sp.csr_matrix((np.ones(m), (np.arange(m), rep)), shape=(m, n_reps * (p + 1)))
    return sp.csr_matrix(inter + bias)


def fit_glm(
    a: sp.csr_matrix, y: np.ndarray, offset: np.ndarray, lam: float, w0: np.ndarray | None = None
) -> np.ndarray:
    """L2-penalised logistic regression with offset (L-BFGS), weights of ``a``'s columns."""
    at = sp.csr_matrix(a.T)

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = offset + a @ w
        p = sigmoid(z)
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w @ w)
        return loss, at @ (p - y) + lam * w

    w = np.zeros(a.shape[1]) if w0 is None else w0
    res = minimize(f, w, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return np.asarray(res.x)


def logloss(y: np.ndarray, z: np.ndarray) -> float:
    """Mean binary log loss of labels ``y`` under logits ``z``."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def glm_candidate(
    s: Setup, t: Train, encoder: FeatureEncoder, n_reps: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Adjustment matrix (test leads x seen reps) of the penalised pair GLM."""
    x_tr = encoder.transform(t.frame_train)[t.li]
    a = _pair_matrix(x_tr, t.r, n_reps)
    base_va = logloss(t.y[t.va], t.base[t.va])
    scores = {}
    w = None
    for lam in sorted(LAMBDAS, reverse=True):
        w = fit_glm(a[t.tr], t.y[t.tr], t.base[t.tr], lam, w)
        scores[lam] = logloss(t.y[t.va], t.base[t.va] + a[t.va] @ w)
    best = min(scores, key=lambda k: scores[k])
    info: dict[str, Any] = {"lambda": best, "valid_gain": base_va - scores[best]}
    x_te = encoder.transform(s.ds.feature_frame(s.leads))
    if scores[best] >= base_va:
        return np.zeros((x_te.shape[0], n_reps)), info
    w = fit_glm(a, t.y, t.base, best)
    p = x_te.shape[1]
    bias = w[:n_reps]
    table = w[n_reps:].reshape(n_reps, p)
    adj = np.asarray(x_te @ table.T) + bias[None, :]
    return adj, info


def lgbm_candidate(
    s: Setup, t: Train, n_reps: int, raw: bool, encoder: FeatureEncoder
) -> tuple[np.ndarray, dict[str, Any]]:
    """Adjustment matrix of LightGBM with rep id categorical and the global logit as init."""
    cat: Any
    ftr: Any
    if raw:
        ftr = t.frame_train.iloc[t.li].reset_index(drop=True)
        fte = s.ds.feature_frame(s.leads).reset_index(drop=True)
        for c in ftr.columns:
            if ftr[c].dtype == object or str(ftr[c].dtype) in ("str", "string"):
                cats = pd.Index(sorted(ftr[c].dropna().astype(str).unique()))
                ftr[c] = pd.Categorical(ftr[c].astype(object), categories=cats)
                fte[c] = pd.Categorical(fte[c].astype(object), categories=cats)
        ftr["rep"] = pd.Categorical(t.r, categories=np.arange(n_reps))
        cat = "auto"
    else:
        ftr = sp.hstack(
            [
                sp.csr_matrix(t.r[:, None].astype(np.float64)),
                encoder.transform(t.frame_train)[t.li],
            ],
            format="csr",
        )
        cat = [0]
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 8,
        "max_depth": 4,
        "min_data_in_leaf": 50,
        "min_data_per_group": 50,
        "cat_smooth": 50.0,
        "cat_l2": 10.0,
        "max_cat_threshold": 32,
        "lambda_l2": 10.0,
        "num_threads": 1,
        "verbose": -1,
        "seed": 0,
    }

    def rows(idx: np.ndarray) -> Any:
        return ftr.iloc[idx] if raw else ftr[idx]

    dtr = lgb.Dataset(
        rows(t.tr), t.y[t.tr], init_score=t.base[t.tr], categorical_feature=cat, free_raw_data=False
    )
    dva = lgb.Dataset(
        rows(t.va), t.y[t.va], init_score=t.base[t.va], categorical_feature=cat, reference=dtr
    )
    booster = lgb.train(
        params,
        dtr,
        num_boost_round=1000,
        valid_sets=[dva],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    best = booster.best_iteration
    z_va = booster.predict(rows(t.va), raw_score=True, num_iteration=best)
    gain = logloss(t.y[t.va], t.base[t.va]) - logloss(t.y[t.va], t.base[t.va] + z_va)
    info: dict[str, Any] = {"best_iteration": best, "valid_gain": gain}
    n_te = len(s.leads)
    if best <= 0 or gain <= 0:
        return np.zeros((n_te, n_reps)), info
    dall = lgb.Dataset(ftr, t.y, init_score=t.base, categorical_feature=cat)
    booster = lgb.train(params, dall, num_boost_round=best)
    adj = np.empty((n_te, n_reps))
    if raw:
        for j in range(n_reps):
            fj = fte.copy()
            fj["rep"] = pd.Categorical(np.full(n_te, j), categories=np.arange(n_reps))
            adj[:, j] = booster.predict(fj, raw_score=True)
    else:
        x_te = encoder.transform(s.ds.feature_frame(s.leads))
        for j in range(n_reps):
            xj = sp.hstack([sp.csr_matrix(np.full((n_te, 1), float(j))), x_te], format="csr")
            adj[:, j] = booster.predict(xj, raw_score=True)
    return adj, info


def pair_candidate(s: Setup, t: Train, n_reps: int, **kw: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``pair`` engine through the real combiner (as the pipeline would fit it)."""
    x_tr = s.bundle.encoder.transform(t.frame_train)
    model = RepAffinity("pair", seed=0, n_threads=1, **kw).fit(
        t.r, t.li, t.y, t.base, x_tr, None, n_reps=n_reps, order=t.order
    )
    x_te = s.bundle.encoder.transform(s.ds.feature_frame(s.leads))
    adj = model.predict_logit_adjustment(x_te).astype(np.float64)
    rep = model.report_
    return adj, {"strength": rep.get("strength"), "z": rep.get("z"), "k": rep.get("k")}


def run(args: argparse.Namespace) -> None:
    """Fit the pipeline once, then each candidate, and print one line per candidate."""
    folder = dataset_folder(args.cache, args.leads, args.reps, args.seed, args.rep_effect)
    cfg = TrainConfig(seed=args.seed, n_threads=1, affinity_engine="lightfm", placebo=False)
    s = prepare(folder, cfg, args.test_share)
    t = Train(s)
    n_reps = len(s.seen)
    auc_truth = float(roc_auc_score(s.y, s.p_true[s.li, s.rj]))
    auc_global = float(roc_auc_score(s.y, s.base[s.li]))
    print(
        f"leads={args.leads} reps={args.reps} seed={args.seed} rep_effect={args.rep_effect:g}: "
        f"train rows {len(t.r)}, test rows {s.y.size}; AUC truth {auc_truth:.4f}, "
        f"global {auc_global:.4f}"
    )
    only = set(args.only.split(",")) if args.only else None
    base_logit = logit(s.base)

    def report(name: str, p: np.ndarray, seconds: float, info: dict[str, Any]) -> None:
        q = quality(s, p)
        extra = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
        )
        print(
            f"  {name:9s} Spearman all {q['spearman_all']:.3f} within {q['spearman_within']:.3f}"
            f" | AUC {q['auc_model']:.4f} (truth gap {auc_truth - q['auc_model']:+.4f}, "
            f"vs global {q['auc_model'] - auc_global:+.4f}) | {seconds:.1f} s {extra}",
            flush=True,
        )

    def centred(adj: np.ndarray) -> np.ndarray:
        return sigmoid(base_logit[:, None] + adj - adj.mean(axis=1, keepdims=True))

    def want(name: str) -> bool:
        return only is None or name in only

    if want("global"):
        report("global", np.repeat(s.base[:, None], n_reps, axis=1), 0.0, {})
    if want("lightfm"):
        rep = s.bundle.affinity.report_ if s.bundle.affinity is not None else {}
        p = s.bundle.rep_probabilities(s.leads, s.seen, base_probability=s.base)
        report("lightfm", p, s.fit_seconds, {"strength": rep.get("strength", 0.0)})
    if want("oracle"):
        p = oracle_probabilities(s.bundle, s.train, s.truth, s.seen, s.base, s.seg, s.cfg)
        report("oracle", p, 0.0, {})
    if want("ceiling"):
        ri = [list(s.truth.rep_ids).index(v) for v in s.seen]
        true_rep = s.truth.rep_bias[ri][None, :] + s.truth.affinity[ri][:, s.seg].T
        report("ceiling", sigmoid(base_logit[:, None] + true_rep), 0.0, {})
    if want("glm"):
        t0 = time.perf_counter()
        adj, info = glm_candidate(s, t, s.bundle.encoder, n_reps)
        report("glm", centred(adj), time.perf_counter() - t0, info)
    if want("glm-x"):
        t0 = time.perf_counter()
        enc = FeatureEncoder(cross_max_levels=args.cross_levels, min_count=20).fit(
            t.frame_train, s.train.features
        )
        adj, info = glm_candidate(s, t, enc, n_reps)
        info["n_features"] = enc.n_features_out
        report("glm-x", centred(adj), time.perf_counter() - t0, info)
    if want("lgbm"):
        t0 = time.perf_counter()
        adj, info = lgbm_candidate(s, t, n_reps, False, s.bundle.encoder)
        report("lgbm", centred(adj), time.perf_counter() - t0, info)
    if want("lgbm-raw"):
        t0 = time.perf_counter()
        adj, info = lgbm_candidate(s, t, n_reps, True, s.bundle.encoder)
        report("lgbm-raw", centred(adj), time.perf_counter() - t0, info)
    if want("pair"):
        t0 = time.perf_counter()
        adj, info = pair_candidate(s, t, n_reps, n_components=args.pair_components)
        report("pair", sigmoid(base_logit[:, None] + adj), time.perf_counter() - t0, info)


def main() -> None:
    """Parse arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leads", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rep-effect", type=float, default=1.0)
    ap.add_argument("--test-share", type=float, default=0.2)
    ap.add_argument("--cross-levels", type=int, default=13)
    ap.add_argument("--only", default="")
    ap.add_argument("--pair-components", type=int, default=16)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "leadrank_aq")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
