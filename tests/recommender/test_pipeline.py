"""train -> ModelBundle: round trips, cold start, fallbacks, leakage, determinism."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from recommender.artifacts import atomic_folder
from recommender.bundle import ModelBundle
from recommender.columns import Columns
from recommender.config import TrainConfig
from recommender.data import load_dataset
from recommender.data.simulate import load_truth, simulate
from recommender.errors import DataError, ModelFolderError, UnknownIdError
from recommender.pipeline import affinity_encoder, train


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pipe") / "team"
    simulate(out, n_leads=2500, n_reps=8, seed=11)
    return out


@pytest.fixture(scope="module")
def model(team: Path) -> Path:
    out = team.parent / "model"
    train(team, out)
    return out


@pytest.fixture(scope="module")
def bundle(model: Path) -> ModelBundle:
    return ModelBundle.load(model)


@pytest.fixture(scope="module")
def leads(bundle: ModelBundle, team: Path) -> pd.DataFrame:
    return bundle.read_leads_csv(team / "leads.csv").iloc[:300].reset_index(drop=True)


def test_save_load_round_trip_is_exact(team: Path, model: Path, tmp_path: Path) -> None:
    fresh = train(team)  # same data, same seed, in memory
    loaded = ModelBundle.load(model)
    frame = loaded.read_leads_csv(team / "leads.csv").iloc[:200]
    a, b = fresh.score(frame), loaded.score(frame)
    assert np.array_equal(a["probability"].to_numpy(), b["probability"].to_numpy())
    assert a["reasons"].tolist() == b["reasons"].tolist()
    assert np.allclose(fresh.rep_probabilities(frame), loaded.rep_probabilities(frame))
    seed = loaded.lookalike_index.ids_[0] if loaded.lookalike_index is not None else None
    assert seed is not None
    assert fresh.lookalike([seed], 5).equals(loaded.lookalike([seed], 5))


def test_scores_are_well_formed(bundle: ModelBundle, leads: pd.DataFrame) -> None:
    out = bundle.score(leads)
    p = out["probability"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    assert out["score"].between(0, 100).all()
    assert set(out["grade"]) <= {"A", "B", "C", "D"}
    assert all(len(r) <= 3 for r in out["reasons"])
    assert all("points" in reason for r in out["reasons"] for reason in r)
    # higher probability never gets a worse grade
    order = np.argsort(p)
    ranks = out["grade"].map({"D": 0, "C": 1, "B": 2, "A": 3}).to_numpy()[order]
    assert (np.diff(ranks) >= 0).all()


def test_batch_equals_one_by_one(bundle: ModelBundle, leads: pd.DataFrame) -> None:
    batch = bundle.score(leads.iloc[:20])
    single = pd.concat([bundle.score(leads.iloc[[i]]) for i in range(20)], ignore_index=True)
    assert np.allclose(batch["probability"], single["probability"])
    assert batch["reasons"].tolist() == single["reasons"].tolist()


def test_score_ranks_leads_by_true_fit(bundle: ModelBundle, team: Path) -> None:
    truth = load_truth(team)
    frame = bundle.read_leads_csv(team / "leads.csv")
    p = bundle.score(frame)["probability"].to_numpy()
    fit = pd.Series(truth.fit_logit, index=truth.lead_ids).reindex(frame["lead_id"]).to_numpy()
    rho = spearmanr(p, fit).statistic
    assert rho > 0.5, rho


def test_cold_start_lead_and_unknown_account(bundle: ModelBundle) -> None:
    new = bundle.leads_from_records(
        [
            {
                "lead_id": "N1",
                "created_at": "2026-11-20",
                "account_id": "NEVER-SEEN",
                "source": "a channel nobody saw",
                "seniority": "Astronaut",
            },
            {"lead_id": "N2", "created_at": "2026-11-20T10:00:00"},
        ]
    )
    out = bundle.score(new)
    assert out["probability"].between(0, 1, inclusive="neither").all()
    # a reason naming a value the scorer never learned says so; learned values do not
    every = bundle.score(new, n_reasons=100)["reasons"].iloc[0]
    unseen = [r for r in every if "a channel nobody saw" in r or "Astronaut" in r]
    assert unseen and all("(rare or new value)" in r for r in unseen), every
    source = sorted(bundle.scorer.known_levels()["source"])[0]
    seen = bundle.leads_from_records(
        [{"lead_id": "N3", "created_at": "2026-11-20", "source": source}]
    )
    assert not any(
        "(rare or new value)" in r for r in bundle.score(seen, n_reasons=100)["reasons"].iloc[0]
    )
    probs = bundle.rep_probabilities(new)
    assert probs.shape == (2, len(bundle.model_reps))


def test_unseen_rep_falls_back_to_the_global_score(
    bundle: ModelBundle, leads: pd.DataFrame
) -> None:
    base = bundle.score(leads)["probability"].to_numpy()
    probs = bundle.rep_probabilities(leads, ["BRAND-NEW-REP"])
    assert np.allclose(probs[:, 0], base)


def test_records_read_like_csv_cells(bundle: ModelBundle, team: Path) -> None:
    csv_frame = bundle.read_leads_csv(team / "leads.csv").iloc[:5]
    raw = pd.read_csv(team / "leads.csv", dtype=str, keep_default_na=False).iloc[:5]
    records = raw.to_dict("records")
    for rec in records:  # numbers as JSON numbers, as an API client would send them
        for key, value in rec.items():
            if value.isdigit():
                rec[key] = int(value)
    json_frame = bundle.leads_from_records(records)
    assert np.allclose(
        bundle.score(csv_frame)["probability"], bundle.score(json_frame)["probability"]
    )
    with pytest.raises(DataError) as info:
        bundle.leads_from_records(
            [{"lead_id": "X", "created_at": "2026-01-01"}, {"lead_id": "Y", "created_at": "soon"}]
        )
    assert info.value.row == 2 and info.value.column == "created_at"


def test_recommend_and_route(bundle: ModelBundle, leads: pd.DataFrame) -> None:
    rep = bundle.model_reps[0]
    top = bundle.recommend(rep, leads, 10)
    assert len(top) == 10 and top["probability"].is_monotonic_decreasing
    with pytest.raises(UnknownIdError):
        bundle.recommend("NOBODY", leads, 5)
    a = bundle.route(leads, seed=3, explore=0.2, holdout=0.2)
    b = bundle.route(leads, seed=3, explore=0.2, holdout=0.2)
    assert a[Columns.REP].tolist() == b[Columns.REP].tolist()
    assert set(a["policy"]) <= {"model", "explore", "holdout", "none"}
    active = set(bundle.reps.loc[bundle.reps[Columns.ACTIVE], Columns.REP])
    assert set(a[Columns.REP].dropna()) <= active
    cap = bundle.reps.set_index(Columns.REP)[Columns.CAPACITY]
    counts = a.dropna(subset=[Columns.REP]).groupby([Columns.REP, "day"]).size()
    for (rep_id, _day), n in counts.items():
        if not pd.isna(cap[rep_id]):
            assert n <= cap[rep_id]


def test_leaky_column_is_never_used(tmp_path: Path, team: Path) -> None:
    data = tmp_path / "leaky"
    data.mkdir()
    for f in team.iterdir():
        if f.is_file():
            (data / f.name).write_bytes(f.read_bytes())
    leads = pd.read_csv(data / "leads.csv", dtype=str, keep_default_na=False)
    won = set(pd.read_csv(data / "outcomes.csv", dtype=str).query("outcome == 'won'")["lead_id"])
    leads["Tags"] = np.where(leads["lead_id"].isin(won), "closed-won", "no answer")
    leads.to_csv(data / "leads.csv", index=False)
    (data / "schema.toml").write_text('[columns]\nTags = "leaky"\n')
    bundle = train(data)
    assert "Tags" not in bundle.scorer.feature_names_
    frame = bundle.read_leads_csv(data / "leads.csv").iloc[:50]
    flipped = frame.copy()
    flipped["Tags"] = "closed-won"
    assert np.array_equal(bundle.score(frame)["probability"], bundle.score(flipped)["probability"])


def test_until_uses_only_earlier_leads(team: Path) -> None:
    ds = load_dataset(team)
    cut = ds.leads["created_at"].quantile(0.5)
    bundle = train(ds, until=cut)
    assert bundle.manifest["training_window"]["n_leads"] == int(
        (ds.leads["created_at"] < cut).sum()
    )


def test_atomic_folder_keeps_the_old_model_on_failure(model: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    with atomic_folder(target) as tmp:
        (tmp / "manifest.json").write_text("{}")
    before = (target / "manifest.json").read_text()
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "manifest.json").write_text('{"half": true}')
        raise RuntimeError("crash mid-write")
    assert (target / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_damaged_model_folder_is_a_clear_error(model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"format_version": 99}')
    with pytest.raises(ModelFolderError, match="format version"):
        ModelBundle.load(broken)
    with pytest.raises(ModelFolderError):
        ModelBundle.load(tmp_path / "missing")


def test_lookalike_rep_seeds_and_filters(bundle: ModelBundle, team: Path) -> None:
    rep = next(r for r, wins in bundle.lookalike_seeds["rep_wins"].items() if wins)
    wins = set(bundle.lookalike_seeds["rep_wins"][rep])
    out = bundle.lookalike(rep=rep, k=20)
    assert len(out) == 20 and not (set(out["id"]) & wins)
    assigned = set(bundle.lookalike_seeds["assigned"])
    free = bundle.lookalike(rep=rep, k=20, exclude_assigned=True)
    assert not (set(free["id"]) & assigned)
    accounts = pd.read_csv(team / "accounts.csv", dtype=str)
    region = accounts["region"].iloc[0]
    same = bundle.lookalike([accounts["account_id"].iloc[0]], 10, where={"region": region})
    regions = accounts.set_index("account_id")["region"]
    assert (regions.reindex(same["id"]) == region).all()
    with pytest.raises(DataError):
        bundle.lookalike(["A00001"], 5, where={"no_such_column": "x"})
    with pytest.raises(UnknownIdError):
        bundle.lookalike(rep="NOBODY")


def test_only_declared_numeric_columns_reject_bad_values(team: Path, tmp_path: Path) -> None:
    data = tmp_path / "declared"
    data.mkdir()
    for f in team.iterdir():
        if f.is_file():
            (data / f.name).write_bytes(f.read_bytes())
    (data / "schema.toml").write_text('[columns]\nform_fill_seconds = "numeric"\n')
    bundle = train(data)
    ok = bundle.leads_from_records(
        [{"lead_id": "N1", "created_at": "2026-11-20", "pages_first_visit": "lots"}]
    )
    assert bundle.score(ok)["probability"].between(0, 1).all()  # inferred numeric: coerced
    with pytest.raises(DataError) as info:
        bundle.leads_from_records(
            [{"lead_id": "N2", "created_at": "2026-11-20", "form_fill_seconds": "slow"}]
        )
    assert info.value.column == "form_fill_seconds"


def test_firmographic_crosses_train_save_and_load(team: Path, tmp_path: Path) -> None:
    ds = load_dataset(team)
    account = {f.name for f in ds.features if f.origin == "account"}
    cfg = TrainConfig(affinity_crosses="firmographic")
    out = tmp_path / "crossed"
    fresh = train(ds, out, config=cfg)
    names = [c["name"] for c in fresh.encoder.columns_]
    pairs = {(names[c["a"]], names[c["b"]]) for c in fresh.encoder.crosses_}
    assert pairs and all(a in account and b in account for a, b in pairs)
    assert ("industry", "employees") in pairs
    assert fresh.affinity is not None
    loaded = ModelBundle.load(out)
    assert loaded.config.affinity_crosses == "firmographic"
    assert loaded.encoder.crosses_ == fresh.encoder.crosses_
    frame = loaded.read_leads_csv(team / "leads.csv").iloc[:200]
    assert np.allclose(fresh.rep_probabilities(frame), loaded.rep_probabilities(frame))
    # without accounts there is nothing firmographic to cross
    lead_only = replace(ds, features=tuple(f for f in ds.features if f.origin != "account"))
    enc = affinity_encoder(lead_only, cfg).fit(lead_only.feature_frame(), lead_only.features)
    assert enc.cross_columns == [] and enc.crosses_ == []
    with pytest.raises(ValueError, match="affinity_crosses"):
        TrainConfig(affinity_crosses="everything")


def test_a_config_saved_before_crosses_existed_loads_as_none() -> None:
    old = TrainConfig().to_dict()
    del old["affinity_crosses"]
    assert TrainConfig.from_dict(old).affinity_crosses == "none"
    del old["affinity_bins"]  # and before magnitude bins: quantile bins
    assert TrainConfig.from_dict(old).affinity_bins == "quantile"
    with pytest.raises(ValueError, match="affinity_bins must be one of quantile, magnitude"):
        TrainConfig(affinity_bins="log")
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
