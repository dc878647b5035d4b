"""``leadrank evaluate``: train before a split time, measure on the leads created after it.

How leakage is avoided: every model is fitted on the leads created before ``T`` only (with
the outcomes the files give them, as the contract prescribes); the model choice and the
calibration use a time-ordered slice of that window, never the test leads. A test lead's
engagement is counted as of ``created_at`` plus the horizon, never after its outcome
closed: the same rule as in training.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.bundle import ModelBundle
from recommender.columns import Columns, Outcome
from recommender.config import TrainConfig
from recommender.data.dataset import Dataset
from recommender.data.load import load_dataset
from recommender.errors import DataError
from recommender.evaluation import metrics as M
from recommender.evaluation.report import leakage_warnings, to_jsonable, validate_contract_json
from recommender.features import FeatureEncoder
from recommender.models.affinity import placebo_gain
from recommender.models.assignment import AssignmentPrior
from recommender.pipeline import (
    Progress,
    affinity_encoder,
    affinity_specs,
    fit_bundle,
    interactions,
    lead_labels,
    restrict,
    training_as_of,
)
from recommender.scoring import clip_probability, grade, logit

RECENT_DAYS = 60


def lead_probabilities(bundle: ModelBundle, ds: Dataset) -> np.ndarray:
    """The global score of every lead of ``ds``, engagement as of the training rule."""
    as_of = training_as_of(ds, bundle.config.horizon_days)
    return clip_probability(
        bundle.scorer.predict_proba(bundle.model_inputs(ds.leads, ds.events, as_of))
    )


def lead_score_part(
    bundle: ModelBundle, test: Dataset, p_train: np.ndarray, p_test: np.ndarray
) -> dict[str, Any]:
    """Metrics of the global lead score on the test leads whose fate is known."""
    y_all = lead_labels(test)
    known = ~np.isnan(y_all)
    p = p_test[known]
    y = y_all[known]
    created = test.leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")[known]
    out: dict[str, Any] = {"n": int(known.sum())}
    out.update(
        M.binary_metrics(y, p)
        if y.size
        else {"auc": None, "average_precision": None, "log_loss": None, "brier": None}
    )
    has_pos = y.size > 0 and y.sum() > 0
    out["gains"] = M.gains(y, p) if has_pos else {"0.1": None, "0.2": None, "0.3": None}
    out["gains_arrival_order"] = (
        M.gains_in_order(y, created.astype(np.int64))
        if has_pos
        else {"0.1": None, "0.2": None, "0.3": None}
    )
    if y.size:
        out["calibration"] = M.calibration_table(y, p)
        out["grades"] = M.grade_table(y, grade(p, bundle.grade_cuts))
        out["psi"] = M.psi(p_train, p_test)
    out["base_rate_train"] = bundle.base_rate
    out["grade_cuts"] = bundle.grade_cuts
    return out


def rep_ranking_part(
    bundle: ModelBundle,
    train: Dataset,
    test: Dataset,
    split: pd.Timestamp,
    seed: int,
    p_test: np.ndarray,
) -> dict[str, Any] | None:
    """Rank of the winning rep among the reps seen in training, with baselines.

    The model ranks the reps by P(rep won the lead | lead, won), proportional to
    P(rep is given the lead | lead) * P(won | lead, rep): the assignment prior
    (:func:`assignment_prior`, the team's past routing, over every lead column: see
    :func:`assignment_encoder`) times the win probability (what routing maximises).
    ``components`` reports each factor's ranking alone. ``p_test`` is the global score
    of every test lead (:func:`lead_probabilities`).
    """
    if train.outcomes is None or test.outcomes is None or train.reps is None:
        return None
    seen = sorted(set(train.outcomes[Columns.REP].dropna()))
    if not seen:
        return None
    pos = {r: i for i, r in enumerate(seen)}
    won = test.outcomes.loc[
        (test.outcomes[Columns.OUTCOME] == Outcome.WON) & test.outcomes[Columns.REP].isin(pos)
    ].drop_duplicates(subset=[Columns.LEAD])
    lead_pos = pd.Series(np.arange(len(test.leads)), index=test.leads[Columns.LEAD].to_numpy())
    rows = lead_pos.reindex(won[Columns.LEAD].to_numpy()).to_numpy().astype(np.int64)
    truth = np.array([pos[r] for r in won[Columns.REP]], dtype=np.int64)
    out: dict[str, Any] = {"n_reps": len(seen)}
    if rows.size == 0:
        empty = M.ranking_metrics(np.zeros(0))
        out.update(empty)
        out["baselines"] = {"random": empty, "popularity": empty, "recent_popularity": empty}
        out["components"] = {"win_probability_only": empty, "assignment_prior_only": empty}
        return out
    leads = test.leads.iloc[rows].reset_index(drop=True)
    base = p_test[rows]
    win = bundle.rep_probabilities(leads, seen, base_probability=base)
    encoder = assignment_encoder(train, bundle.config)
    given = assignment_prior(
        bundle,
        train,
        pos,
        split,
        encoder.transform(test.feature_frame(leads)),
        encoder.transform(train.feature_frame()),
    )
    scores = win if given is None else win * given
    out.update(M.ranking_metrics(M.rank_of(truth, scores, seed=seed)))
    out["components"] = {
        "win_probability_only": M.ranking_metrics(M.rank_of(truth, win, seed=seed)),
        "assignment_prior_only": (
            None if given is None else M.ranking_metrics(M.rank_of(truth, given, seed=seed))
        ),
    }
    o = train.outcomes
    wins = o.loc[(o[Columns.OUTCOME] == Outcome.WON) & o[Columns.REP].isin(pos)]
    win_idx = np.array([pos[r] for r in wins[Columns.REP]], dtype=np.int64)
    pop = M.popularity_scores(win_idx, len(seen))
    created = train.leads.set_index(Columns.LEAD)[Columns.CREATED]
    when = created.reindex(wins[Columns.LEAD].to_numpy()).to_numpy()
    recent = when >= np.datetime64(split - timedelta(days=RECENT_DAYS))
    rpop = M.popularity_scores(win_idx[recent], len(seen))
    n = rows.size
    out["baselines"] = {
        "random": M.random_baseline_ranking(len(seen), n),
        "popularity": M.ranking_metrics(M.rank_of(truth, np.tile(pop, (n, 1)), seed=seed)),
        "recent_popularity": M.ranking_metrics(M.rank_of(truth, np.tile(rpop, (n, 1)), seed=seed)),
    }
    return out


def assignment_encoder(train: Dataset, cfg: TrainConfig) -> FeatureEncoder:
    """The lead encoder of the assignment prior, fitted on the training leads.

    Who is *given* a lead follows the team's territories and owners, which any lead
    column may carry (country, product, source), so the prior reads every feature column
    with quantile bins, crossed as ``cfg`` asks: what it read before the affinity model's
    defaults became the account columns with magnitude bins (2026-11-23), which are about
    skill, not routing. On Maven CRM (split 2017-11-01) the rep-ranking MRR is 0.320 this
    way; the prior over the account columns alone gave 0.233, over every column with
    magnitude bins 0.297.
    """
    every = replace(cfg, affinity_features="all", affinity_bins="quantile")
    return affinity_encoder(train, every).fit(train.feature_frame(), affinity_specs(train, every))


def assignment_prior(
    bundle: ModelBundle,
    train: Dataset,
    rep_pos: dict[str, int],
    split: pd.Timestamp,
    lead_rows: sp.csr_matrix,
    train_rows: sp.csr_matrix | None = None,
) -> np.ndarray | None:
    """P(rep is given the lead) for ``lead_rows``, learned from the training assignments.

    Every training outcome row naming a rep of ``rep_pos`` is one assignment (won, lost
    or open; a (lead, rep) pair counts once), weighted by its lead's age at ``split``
    (half-life :data:`RECENT_DAYS`). ``None`` where there is no such row. ``lead_rows``
    and ``train_rows`` are indicator rows of one encoder (:func:`assignment_encoder`);
    ``train_rows`` (of ``train.leads``) defaults to ``bundle.lead_matrix(train.leads)``.
    """
    assert train.outcomes is not None
    o = train.outcomes
    pairs = o.loc[o[Columns.REP].isin(rep_pos)].drop_duplicates(subset=[Columns.LEAD, Columns.REP])
    if pairs.empty:
        return None
    lead_pos = pd.Series(np.arange(len(train.leads)), index=train.leads[Columns.LEAD].to_numpy())
    li = lead_pos.reindex(pairs[Columns.LEAD].to_numpy()).to_numpy()
    known = ~np.isnan(li)
    li = li[known].astype(np.int64)
    created = train.leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")[li]
    age = (np.datetime64(split) - created) / np.timedelta64(1, "D")
    reps = np.array([rep_pos[r] for r in pairs[Columns.REP].to_numpy()[known]], dtype=np.int64)
    prior = AssignmentPrior(half_life_days=RECENT_DAYS).fit(
        (bundle.lead_matrix(train.leads) if train_rows is None else train_rows)[li],
        reps,
        age,
        len(rep_pos),
    )
    return prior.predict_proba(lead_rows)


def win_probability_part(
    bundle: ModelBundle, train: Dataset, test: Dataset, p_test: np.ndarray
) -> dict[str, Any] | None:
    """P(won | lead, rep) on test outcome rows that name a rep and are closed.

    ``p_test`` is the global score of every test lead (:func:`lead_probabilities`).
    """
    if test.outcomes is None or test.reps is None:
        return None
    o = test.outcomes
    rows = o.loc[o[Columns.REP].notna() & o[Columns.OUTCOME].isin([Outcome.WON, Outcome.LOST])]
    if rows.empty:
        return None
    lead_pos = pd.Series(np.arange(len(test.leads)), index=test.leads[Columns.LEAD].to_numpy())
    li = lead_pos.reindex(rows[Columns.LEAD].to_numpy()).to_numpy().astype(np.int64)
    uniq, inv = np.unique(li, return_inverse=True)
    leads = test.leads.iloc[uniq].reset_index(drop=True)
    reps = sorted(set(rows[Columns.REP]))
    rp = {r: j for j, r in enumerate(reps)}
    base = p_test[uniq]
    mat = bundle.rep_probabilities(leads, reps, base_probability=base)
    p = mat[inv, [rp[r] for r in rows[Columns.REP]]]
    y = (rows[Columns.OUTCOME].to_numpy() == Outcome.WON).astype(float)
    out: dict[str, Any] = {"n": int(y.size)}
    bm = M.binary_metrics(y, p)
    out.update({k: bm.get(k) for k in ("auc", "log_loss", "brier", "average_precision")})
    out["auc_global_score_only"] = M.binary_metrics(y, base[inv]).get("auc")
    tr = train.outcomes
    if tr is not None:
        closed = tr.loc[
            tr[Columns.REP].notna() & tr[Columns.OUTCOME].isin([Outcome.WON, Outcome.LOST])
        ]
        if len(closed):
            rate = float((closed[Columns.OUTCOME] == Outcome.WON).mean())
            out["train_win_rate"] = rate
            out["log_loss_constant"] = M.constant_log_loss(y, rate)
            out["brier_constant"] = float(np.mean((y - rate) ** 2))
    return out


def policy_part(test: Dataset) -> list[dict[str, Any]] | None:
    """Conversion of the test leads by the routing policy their outcome rows record.

    Only where ``outcomes.csv`` has the optional ``policy`` column (``leadrank route`` and
    ``POST /v1/route`` give each decision one); closed rows only. With a ``propensity``
    column (all values > 0) the inverse-propensity-weighted rate is reported too.
    """
    o = test.outcomes
    if o is None or Columns.POLICY not in o.columns:
        return None
    closed = o.loc[o[Columns.POLICY].notna() & o[Columns.OUTCOME].isin([Outcome.WON, Outcome.LOST])]
    if closed.empty:
        return None
    won = closed[Columns.OUTCOME] == Outcome.WON
    per_lead = (
        closed.assign(_won=won)
        .groupby(Columns.LEAD, sort=False)
        .agg(policy=(Columns.POLICY, "first"), won=("_won", "max"))
    )
    propensity: np.ndarray | None = None
    if Columns.PROPENSITY in closed.columns:
        first = closed.groupby(Columns.LEAD, sort=False)[Columns.PROPENSITY].first()
        q = first.reindex(per_lead.index).to_numpy(dtype=float)
        propensity = q if np.all(q > 0) else None
    return M.policy_table(
        per_lead["policy"].to_numpy(), per_lead["won"].to_numpy(dtype=float), propensity
    )


def placebo_part(
    bundle: ModelBundle,
    train: Dataset,
    seed: int,
    p_train: np.ndarray,
    train_rows: sp.csr_matrix | None = None,
) -> dict[str, Any] | None:
    """Real per-rep gain next to a rep-permuted placebo, on a time-ordered slice.

    ``train_rows`` may pass ``bundle.lead_matrix(train.leads)`` when already built.
    """
    if bundle.affinity is None or train.reps is None:
        return None
    rep_ids = list(bundle.model_reps)
    r, li, label = interactions(train, rep_ids)
    base = logit(p_train)
    order = train.leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    rep_matrix = (
        bundle.rep_encoder.transform(train.reps) if bundle.rep_encoder is not None else None
    )
    result = placebo_gain(
        bundle.affinity,
        r,
        li,
        label,
        base[li],
        bundle.lead_matrix(train.leads) if train_rows is None else train_rows,
        rep_matrix,
        n_reps=len(rep_ids),
        order=order[li],
        seed=seed,
    )
    result["metric"] = "validation log-loss gain over the global score (nats per row)"
    result["description"] = (
        "both fits learn on the training window's earlier rows (n_train) and are scored on "
        "its latest (n_valid); train fits the whole window, so the strength it reports "
        "can differ from real_strength"
    )
    return result


def evaluate(
    data: Dataset | Path | str,
    split_time: pd.Timestamp | str,
    *,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train on leads created before ``split_time`` and evaluate on the rest.

    Returns the contract's JSON (``split_time``, ``n_train_leads``, ``n_test_leads``,
    ``lead_score``, ``rep_ranking``, ``win_probability``) plus readiness, warnings and
    the placebo check; parts the data cannot tell are ``None``.

    Raises:
        DataError: bad data, or no training lead with a known outcome.
    """
    cfg = config or TrainConfig()
    say = progress or (lambda _m: None)
    ds = data if isinstance(data, Dataset) else load_dataset(data)
    split = pd.Timestamp(split_time)
    split = split.tz_convert(None) if split.tzinfo is not None else split
    train = restrict(ds, split)
    if train.leads.empty:
        raise DataError(
            f"no lead was created before --split-time {split.isoformat()}: nothing to train on",
            file="leads.csv",
            column="created_at",
        )
    test = ds.subset(ds.leads[Columns.CREATED].to_numpy() >= np.datetime64(split))
    bundle = fit_bundle(train, config=cfg, progress=say)
    say("measuring")
    p_train = lead_probabilities(bundle, train)
    report = bundle.scorer.report_
    aucs = report.get("single_column_auc") or {}
    result: dict[str, Any] = {
        "split_time": split.isoformat(),
        "n_train_leads": len(train.leads),
        "n_test_leads": len(test.leads),
        "lead_score": None,
        "rep_ranking": None,
        "win_probability": None,
        "ready": {"verdict": report.get("ready"), "reasons": report.get("reasons", [])},
        "model": {"chosen": report.get("chosen"), "validation": report.get("candidates")},
        "warnings": leakage_warnings(aucs),
    }
    if not len(test.leads):
        last = pd.Timestamp(ds.leads[Columns.CREATED].max())
        result["warnings"].append(
            f"no lead was created at or after --split-time {split.isoformat()} (the last "
            f"one was at {last.isoformat()}): nothing to test, every measure is n/a"
        )
    # the training leads' indicator rows of the affinity model, read by the placebo only
    ranked = len(test.leads) > 0 and train.reps is not None
    ranked = ranked and train.outcomes is not None and test.outcomes is not None
    train_rows = bundle.lead_matrix(train.leads) if ranked and cfg.placebo else None
    if len(test.leads):
        p_test = lead_probabilities(bundle, test)
        result["lead_score"] = lead_score_part(bundle, test, p_train, p_test)
        result["rep_ranking"] = rep_ranking_part(bundle, train, test, split, cfg.seed, p_test)
        result["win_probability"] = win_probability_part(bundle, train, test, p_test)
        result["routing_policies"] = policy_part(test)
    if result["lead_score"] is None:
        nulls: dict[str, Any] = {k: None for k in ("auc", "average_precision", "log_loss", "brier")}
        nulls["gains"] = {"0.1": None, "0.2": None, "0.3": None}
        nulls["gains_arrival_order"] = {"0.1": None, "0.2": None, "0.3": None}
        result["lead_score"] = nulls
    if result["rep_ranking"] is not None and cfg.placebo:
        say("placebo check")
        result["rep_ranking"]["placebo"] = placebo_part(
            bundle, train, cfg.seed, p_train, train_rows
        )
    if result["rep_ranking"] is None:
        result["rep_ranking"] = _null_ranking()
    result["rep_ranking"].setdefault("placebo", None)  # not run (--no-placebo): same shape
    if result["win_probability"] is None:
        result["win_probability"] = {"n": 0, "auc": None, "log_loss": None, "brier": None}
    clean: dict[str, Any] = to_jsonable(result)
    missing = validate_contract_json(clean)
    if missing:  # a bug in this module, not in the user's data
        raise RuntimeError(f"evaluate JSON lacks contract keys: {missing}")
    return clean


def _null_ranking() -> dict[str, Any]:
    empty = {"n": 0, "hr@1": None, "hr@3": None, "hr@5": None, "mrr": None}
    return {
        **empty,
        "baselines": {
            "random": dict(empty),
            "popularity": dict(empty),
            "recent_popularity": dict(empty),
        },
        "components": {"win_probability_only": dict(empty), "assignment_prior_only": dict(empty)},
        "placebo": None,
    }
