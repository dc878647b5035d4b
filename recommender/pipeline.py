"""The one place that wires data, features and models together: ``train`` a bundle.

The CLI and the HTTP service both call this module, so each capability is written once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recommender import __version__
from recommender.artifacts import (
    FORMAT_VERSION,
    atomic_folder,
    check_model_target,
    fingerprint,
    package_versions,
)
from recommender.bundle import ModelBundle, empty_events
from recommender.columns import Columns, Outcome, Role
from recommender.config import TrainConfig
from recommender.data.dataset import Dataset, FeatureSpec
from recommender.data.load import load_dataset
from recommender.data.schema import Schema
from recommender.errors import DataError
from recommender.features import FeatureEncoder
from recommender.lookalike import LookalikeIndex
from recommender.models.affinity import RepAffinity
from recommender.models.engagement import EngagementModel
from recommender.models.selection import LeadScorer
from recommender.scoring import clip_probability, learn_grade_cuts, logit

log = logging.getLogger(__name__)

RULES_FILES = ("rules.txt",)
Progress = Callable[[str], None]

AFFINITY_CROSS_MAX_LEVELS = 12
"""Columns with at most this many levels are crossed when ``affinity_crosses`` asks for it.

12 admits every column of the simulated team (its 11 industries included): ``all`` then
crosses 55 pairs (2,222 indicators at 50,000 leads), ``firmographic`` its 5 account
columns' 10 pairs (498 indicators).
"""


def restrict(ds: Dataset, until: pd.Timestamp | None) -> Dataset:
    """Return the part of ``ds`` known before ``until``: leads created before it.

    Outcome rows of those leads are kept as the files give them (no censoring at
    ``until``, as the contract's ``evaluate`` prescribes); events at or after ``until``
    are dropped.
    """
    if until is None:
        return ds
    stamp = pd.Timestamp(until)
    t = np.datetime64(stamp.tz_convert(None) if stamp.tzinfo is not None else stamp)
    keep = ds.leads[Columns.CREATED].to_numpy() < t
    return ds.subset(keep, events_before=t)


def lead_labels(ds: Dataset) -> np.ndarray:
    """Return each lead's fate: 1.0 converted (any won), 0.0 not, NaN unknown.

    A lead is not converted when its outcome rows are all ``lost`` or it has none; a lead
    whose rows are all ``open`` (or open and lost) has an unknown fate.
    """
    n = len(ds.leads)
    y = np.zeros(n)
    if ds.outcomes is None or ds.outcomes.empty:
        return y
    o = ds.outcomes
    won = set(o.loc[o[Columns.OUTCOME] == Outcome.WON, Columns.LEAD])
    open_ = set(o.loc[o[Columns.OUTCOME] == Outcome.OPEN, Columns.LEAD]) - won
    ids = ds.leads[Columns.LEAD]
    y[ids.isin(won).to_numpy()] = 1.0
    y[ids.isin(open_).to_numpy()] = np.nan
    return y


def training_as_of(ds: Dataset, horizon_days: float) -> np.ndarray:
    """Return, per lead, the moment its engagement is measured for training.

    ``created_at`` plus ``horizon_days``, but never at or after the lead's first closed
    outcome (events after the outcome would leak it).
    """
    created = ds.leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")
    as_of = created + np.timedelta64(int(horizon_days * 86400), "s")
    if ds.outcomes is not None and not ds.outcomes.empty:
        closed = (
            ds.outcomes.dropna(subset=[Columns.CLOSED]).groupby(Columns.LEAD)[Columns.CLOSED].min()
        )
        first = closed.reindex(ds.leads[Columns.LEAD].to_numpy()).to_numpy(dtype="datetime64[ns]")
        has = ~np.isnat(first)
        as_of[has] = np.maximum(np.minimum(as_of[has], first[has]), created[has])
    return as_of


def interactions(ds: Dataset, rep_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (rep index, lead index, label) of closed outcome rows that name a rep.

    ``won`` is 1.0, ``lost`` 0.0; ``open`` rows and rows without a rep are left out.
    """
    if ds.outcomes is None or ds.outcomes.empty or not rep_ids:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    o = ds.outcomes
    closed = o[Columns.OUTCOME].isin([Outcome.WON, Outcome.LOST]) & o[Columns.REP].notna()
    o = o.loc[closed]
    rep_pos = pd.Series(np.arange(len(rep_ids)), index=rep_ids)
    lead_pos = pd.Series(np.arange(len(ds.leads)), index=ds.leads[Columns.LEAD].to_numpy())
    r = rep_pos.reindex(o[Columns.REP].to_numpy()).to_numpy()
    ld = lead_pos.reindex(o[Columns.LEAD].to_numpy()).to_numpy()
    ok = ~(np.isnan(r) | np.isnan(ld))
    label = (o[Columns.OUTCOME].to_numpy() == Outcome.WON).astype(float)
    return r[ok].astype(np.int64), ld[ok].astype(np.int64), label[ok]


def _rules_text(folder: Path | None) -> str | None:
    if folder is None:
        return None
    for name in RULES_FILES:
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    return None


def fit_bundle(
    ds: Dataset,
    *,
    config: TrainConfig | None = None,
    rules_text: str | None = None,
    manifest: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> ModelBundle:
    """Fit every model of a bundle on ``ds`` (already restricted to the training window).

    Raises:
        DataError: the data has no outcomes table, or no lead with a known fate to learn
            from.
    """
    if ds.outcomes is None:  # every lead would read as not converted: a model of nothing
        raise DataError("the outcomes table is required for training", file="outcomes.csv")
    cfg = config or TrainConfig()
    say = progress or (lambda _msg: None)
    y = lead_labels(ds)
    known = ~np.isnan(y)
    if not known.any():
        raise DataError(
            "no lead has a known outcome (won or lost) to learn from", file="outcomes.csv"
        )
    as_of = training_as_of(ds, cfg.horizon_days)
    events = ds.events if ds.events is not None else empty_events()
    lead_ids = ds.leads[Columns.LEAD].astype(str).tolist()

    say("engagement")
    engagement = EngagementModel(half_life_days=cfg.half_life_days).fit(events)
    frame = ds.feature_frame()
    eng = engagement.transform(events, lead_ids, as_of)
    eng.index = frame.index
    X = pd.concat([frame, eng], axis=1)
    specs = list(ds.features) + [
        FeatureSpec(name=c, role=Role.NUMERIC, origin="engagement") for c in eng.columns
    ]

    say("lead score")
    order = ds.leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    scorer = LeadScorer(seed=cfg.seed).fit(
        X.loc[known].reset_index(drop=True), y[known], specs, order=order[known]
    )
    p_all = clip_probability(scorer.predict_proba(X))
    base_rate = float(np.clip(np.mean(y[known]), 1e-4, 1 - 1e-4))
    cuts = learn_grade_cuts(p_all[known], y[known])

    say("per-rep affinity")
    encoder = affinity_encoder(ds, cfg).fit(frame, affinity_specs(ds, cfg))
    lead_matrix = encoder.transform(frame)
    reps = ds.reps
    rep_ids = [] if reps is None else [str(r) for r in reps[Columns.REP]]
    r_idx, l_idx, label = interactions(ds, rep_ids)
    affinity = rep_encoder = None
    if label.size >= 20 and 0 < label.sum() < label.size:
        rep_encoder = (
            FeatureEncoder(min_count=1).fit(reps, ds.rep_attributes) if reps is not None else None
        )
        rep_matrix = (
            rep_encoder.transform(reps) if rep_encoder is not None and reps is not None else None
        )
        affinity = RepAffinity(
            engine=cfg.affinity_engine,
            n_components=cfg.n_components,
            seed=cfg.seed,
            n_threads=cfg.n_threads,
        ).fit(
            r_idx,
            l_idx,
            label,
            logit(p_all[l_idx]),
            lead_matrix,
            rep_matrix,
            n_reps=len(rep_ids),
            order=order[l_idx],
        )

    say("lookalike index")
    lookalike, kind = _fit_lookalike(ds, cfg, scorer, engagement, encoder, affinity, X)

    info = dict(manifest or {})
    info.setdefault("format_version", FORMAT_VERSION)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    info.setdefault("created_at", created)
    info.setdefault("version", f"{created}-{str(info.get('data_fingerprint', 'nodata'))[:8]}")
    info["leadrank_version"] = __version__
    info["packages"] = package_versions()
    info["config"] = cfg.to_dict()
    info["training_window"] = {
        "first_created_at": str(ds.leads[Columns.CREATED].min()),
        "last_created_at": str(ds.leads[Columns.CREATED].max()),
        "n_leads": len(ds.leads),
        "n_known_outcome": int(known.sum()),
        "n_converted": int(np.nansum(y)),
        "n_rep_interactions": int(label.size),
    }
    info["metrics"] = {
        "lead_score": scorer.report_,
        "affinity": getattr(affinity, "report_", None),
        "lookalike": {
            "kind": kind,
            "index": getattr(lookalike, "kind_", None),
            "recall": getattr(lookalike, "recall_", None),
        },
        "grade_cuts": cuts,
    }
    return ModelBundle(
        config=cfg,
        manifest=info,
        schema=Schema(roles=dict(ds.declared_roles), missing=ds.missing_values),
        features=ds.features,
        rep_attributes=ds.rep_attributes,
        reps=reps,
        accounts=ds.accounts,
        engagement=engagement,
        scorer=scorer,
        base_rate=base_rate,
        grade_cuts=cuts,
        encoder=encoder,
        rep_encoder=rep_encoder,
        affinity=affinity,
        model_reps=rep_ids if affinity is not None else [],
        lookalike=lookalike,
        lookalike_kind=kind,
        lookalike_seeds=lookalike_seeds(ds, kind),
        rules_text=rules_text,
    )


def affinity_specs(ds: Dataset, cfg: TrainConfig) -> list[FeatureSpec]:
    """The lead columns the affinity model reads, as ``cfg.affinity_features`` asks.

    ``firmographic``: the columns joined from ``accounts.csv`` (all columns when the data
    has none); ``all``: every feature column.
    """
    if cfg.affinity_features == "firmographic":
        account = [f for f in ds.features if f.origin == "account"]
        if account:
            return account
    return list(ds.features)


def affinity_encoder(ds: Dataset, cfg: TrainConfig) -> FeatureEncoder:
    """The unfitted lead encoder of the affinity model, crossed as ``cfg`` asks.

    Numeric columns are cut as ``cfg.affinity_bins`` says. ``cfg.affinity_crosses``:
    ``none`` no crosses; ``firmographic`` pairs of the columns
    joined from ``accounts.csv`` (``FeatureSpec.origin == "account"``; none when the data
    has no accounts); ``all`` pairs of every column. Either way only columns with at most
    :data:`AFFINITY_CROSS_MAX_LEVELS` levels are crossed.

    Raises:
        ValueError: ``cfg.affinity_crosses`` is none of these.
    """
    mode, bins = cfg.affinity_crosses, cfg.affinity_bins
    if mode == "none":
        return FeatureEncoder(bins=bins)
    if mode == "firmographic":
        account = [f.name for f in ds.features if f.origin == "account"]
        return FeatureEncoder(
            cross_max_levels=AFFINITY_CROSS_MAX_LEVELS, cross_columns=account, bins=bins
        )
    if mode == "all":
        return FeatureEncoder(cross_max_levels=AFFINITY_CROSS_MAX_LEVELS, bins=bins)
    raise ValueError(f"unknown affinity_crosses {mode!r}: none, firmographic or all")


def lookalike_seeds(ds: Dataset, kind: str) -> dict[str, Any]:
    """Catalogue ids known from history: each rep's won ids, and the ids already worked.

    For an account catalogue an id is the lead's ``account_id``; otherwise the lead id.
    """
    out: dict[str, Any] = {"rep_wins": {}, "assigned": []}
    if ds.outcomes is None or ds.outcomes.empty:
        return out
    o = ds.outcomes
    if kind == "account":
        if Columns.ACCOUNT not in ds.leads.columns:
            return out
        to_id = ds.leads.set_index(Columns.LEAD)[Columns.ACCOUNT]
        ids = to_id.reindex(o[Columns.LEAD].to_numpy()).to_numpy()
    else:
        ids = o[Columns.LEAD].to_numpy()
    frame = pd.DataFrame(
        {
            "id": ids,
            "rep": o[Columns.REP].to_numpy(),
            "won": (o[Columns.OUTCOME] == Outcome.WON).to_numpy(),
        }
    ).dropna(subset=["id"])
    out["assigned"] = sorted({str(i) for i in frame["id"]})
    wins = frame.loc[frame["won"] & frame["rep"].notna()]
    out["rep_wins"] = {
        str(rep): sorted({str(i) for i in group["id"]}) for rep, group in wins.groupby("rep")
    }
    return out


def _fit_lookalike(
    ds: Dataset,
    cfg: TrainConfig,
    scorer: LeadScorer,
    engagement: EngagementModel,
    encoder: FeatureEncoder,
    affinity: RepAffinity | None,
    X: pd.DataFrame,
) -> tuple[LookalikeIndex | None, str]:
    """Embed every account (or lead, without accounts) in the ICP space and index it."""
    ids, emb, kind = lookalike_embedding(ds, cfg, scorer, engagement, encoder, affinity, X)
    if len(ids) < 2:
        return None, kind
    index = LookalikeIndex(
        exact_threshold=cfg.exact_threshold, seed=cfg.seed, n_threads=cfg.n_threads
    )
    return index.fit(list(ids), emb), kind


def lookalike_embedding(
    ds: Dataset,
    cfg: TrainConfig,
    scorer: LeadScorer,
    engagement: EngagementModel,
    encoder: FeatureEncoder,
    affinity: RepAffinity | None,
    X: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The lookalike catalogue: ids, raw float32 embeddings (one row per id) and its kind.

    Accounts when ``ds`` has them (``kind`` ``account``, embedded from their own columns
    with no events), else leads (``lead``, from ``X``). The embedding is the scorer's
    per-feature log-odds contributions (``cfg.embedding == "contributions"``, their sum is
    the row's logit less the base value) or the affinity model's lead representation.
    Unnormalised: the index decides the geometry.
    """
    if ds.accounts is not None and len(ds.accounts):
        kind = "account"
        ids = ds.accounts[Columns.ACCOUNT].astype(str).to_numpy()
        acc_cols = [f.name for f in ds.features if f.origin == "account"]
        frame = pd.DataFrame({f.name: [None] * len(ids) for f in ds.features})
        for c in acc_cols:
            frame[c] = ds.accounts[c].to_numpy()
        frame = Dataset(leads=frame, features=ds.features).feature_frame(frame)
        eng = engagement.transform(
            empty_events(), list(ids), np.full(len(ids), np.datetime64("now"))
        )
        eng.index = frame.index
        inputs = pd.concat([frame, eng], axis=1)
    else:
        kind = "lead"
        ids = ds.leads[Columns.LEAD].astype(str).to_numpy()
        frame = ds.feature_frame()
        inputs = X
    if len(ids) < 2:
        return ids, np.zeros((len(ids), 1), dtype=np.float32), kind
    if cfg.embedding == "affinity" and affinity is not None:
        emb = affinity.engine_.lead_embeddings(encoder.transform(frame))
    else:
        emb = np.asarray(scorer.explain(inputs), dtype=np.float32)
    return ids, np.nan_to_num(np.asarray(emb, dtype=np.float32)), kind


def train(
    data: Dataset | Path | str,
    out: Path | str | None = None,
    *,
    until: pd.Timestamp | str | None = None,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> ModelBundle:
    """Fit every model on the history before ``until`` and (optionally) write the folder.

    Args:
        data: a dataset folder, or an already loaded :class:`Dataset`.
        out: the model folder to write (atomically: a crash never leaves half a model).
        until: only leads created before this time are used (default: all).
        config: hyper-parameters.
        progress: called with the name of each step as it starts.

    Raises:
        DataError: the dataset breaks the contract, or has nothing to learn from.
        ModelFolderError: ``out`` holds something other than a model (checked first).
    """
    if out is not None:
        check_model_target(out)  # before training, not after
    folder = None
    if isinstance(data, Dataset):
        ds = data
        manifest: dict[str, Any] = {}
    else:
        folder = Path(data)
        ds = load_dataset(folder)
        manifest = {"data_fingerprint": fingerprint(folder), "data_path": str(folder.resolve())}
    cut = pd.Timestamp(until) if until is not None else None
    if cut is not None and cut.tzinfo is not None:
        cut = cut.tz_convert(None)
    window = restrict(ds, cut)
    if window.leads.empty:
        raise DataError(f"no lead was created before {cut}", file="leads.csv", column="created_at")
    manifest["until"] = None if cut is None else cut.isoformat()
    bundle = fit_bundle(
        window, config=config, rules_text=_rules_text(folder), manifest=manifest, progress=progress
    )
    if out is not None:
        save_bundle(bundle, out)
    return bundle


def save_bundle(bundle: ModelBundle, out: Path | str) -> None:
    """Write ``bundle`` to the folder ``out`` atomically (replacing any older model).

    Raises:
        ModelFolderError: ``out`` holds something other than a model (nothing is written).
    """
    check_model_target(out)
    with atomic_folder(out) as tmp:
        bundle.save(tmp)


__all__ = [
    "ModelBundle",
    "TrainConfig",
    "affinity_encoder",
    "fit_bundle",
    "lead_labels",
    "restrict",
    "save_bundle",
    "train",
    "training_as_of",
]
