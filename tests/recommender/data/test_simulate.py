"""Tests of the synthetic sales-team simulator (recommender/data/simulate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.columns import Columns, Files, Outcome
from recommender.data.load import load_dataset
from recommender.data.simulate import (
    SEGMENTS,
    TRUTH_DIR,
    SimulationSummary,
    Truth,
    knowable_base_logit,
    load_truth,
    simulate,
)
from recommender.errors import UnknownIdError

N_LEADS = 3000
N_REPS = 12


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    """One seeded dataset shared by the read-only tests."""
    out = tmp_path_factory.mktemp("sim") / "data"
    return out, simulate(out, n_leads=N_LEADS, n_reps=N_REPS, seed=7)


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _closed_rows(folder: Path, before: str | None = None) -> pd.DataFrame:
    """Outcome rows with a rep and a closed outcome, optionally of leads created before."""
    out = _read(folder, Files.OUTCOMES)
    leads = _read(folder, Files.LEADS)[[Columns.LEAD, Columns.CREATED]]
    out = out.merge(leads, on=Columns.LEAD)
    keep = (out[Columns.OUTCOME] != Outcome.OPEN) & (out[Columns.REP] != "")
    if before is not None:
        keep &= out[Columns.CREATED] < before
    return out[keep]


def _true_p(truth: Truth, rows: pd.DataFrame) -> np.ndarray:
    li = {v: i for i, v in enumerate(truth.lead_ids)}
    ri = {v: i for i, v in enumerate(truth.rep_ids)}
    p = truth.probability()
    return np.asarray(
        p[rows[Columns.LEAD].map(li).to_numpy(), rows[Columns.REP].map(ri).to_numpy()]
    )


def test_writes_contract_files_and_columns(sim: tuple[Path, SimulationSummary]) -> None:
    out, summary = sim
    names = {p.name for p in out.iterdir()}
    assert names == {
        Files.LEADS,
        Files.REPS,
        Files.OUTCOMES,
        Files.EVENTS,
        Files.ACCOUNTS,
        TRUTH_DIR,
    }
    leads = _read(out, Files.LEADS)
    assert list(leads.columns[:4]) == [
        Columns.LEAD,
        Columns.CREATED,
        Columns.ACCOUNT,
        Columns.SOURCE,
    ]
    assert {"form_fill_seconds", "browser", "pages_first_visit", "seniority"} <= set(leads.columns)
    assert leads[Columns.LEAD].is_unique and len(leads) == summary.n_leads == N_LEADS
    created = pd.to_datetime(leads[Columns.CREATED], format="ISO8601")
    assert created.min() >= pd.Timestamp("2025-11-01") and created.max() < pd.Timestamp(
        "2026-11-01"
    )
    assert leads[Columns.SOURCE].nunique() == 6

    accounts = _read(out, Files.ACCOUNTS)
    assert accounts[Columns.ACCOUNT].is_unique and len(accounts) == summary.n_accounts
    assert set(accounts[Columns.IS_CUSTOMER]) == {"true", "false"}
    assert set(leads[Columns.ACCOUNT]) <= set(accounts[Columns.ACCOUNT])
    assert leads[Columns.ACCOUNT].duplicated().any()  # several leads share an account

    reps = _read(out, Files.REPS)
    assert list(reps[Columns.REP]) == [f"R{i:03d}" for i in range(1, N_REPS + 1)]
    assert (reps[Columns.CAPACITY].astype(int) >= 1).all()
    assert set(reps[Columns.ACTIVE]) == {"true", "false"}
    assert {"team", "region", "tenure_years"} <= set(reps.columns)


def test_outcomes_and_events_are_consistent(sim: tuple[Path, SimulationSummary]) -> None:
    out, summary = sim
    leads = _read(out, Files.LEADS)
    created = pd.to_datetime(leads.set_index(Columns.LEAD)[Columns.CREATED], format="ISO8601")
    oc = _read(out, Files.OUTCOMES)
    assert oc[Columns.LEAD].is_unique
    assert 0 < N_LEADS - len(oc) < 0.06 * N_LEADS  # a few leads were never worked
    assert set(oc[Columns.OUTCOME]) == set(Outcome.ALL)
    assert 0 < (oc[Columns.REP] == "").sum() < 0.03 * len(oc)
    assert set(oc[Columns.REP]) - {""} <= set(_read(out, Files.REPS)[Columns.REP])
    is_open = oc[Columns.OUTCOME] == Outcome.OPEN
    assert 0.02 < is_open.mean() < 0.12
    assert ((oc[Columns.CLOSED] == "") == is_open).all()
    won = oc[Columns.OUTCOME] == Outcome.WON
    assert ((oc[Columns.VALUE] != "") == won).all()
    assert (oc.loc[won, Columns.VALUE].astype(float) > 0).all()
    closed = pd.to_datetime(oc.loc[~is_open, Columns.CLOSED], format="ISO8601")
    assigned = pd.to_datetime(oc[Columns.ASSIGNED], format="ISO8601")
    assert (closed > assigned[~is_open]).all()
    assert (assigned.to_numpy() >= created.loc[oc[Columns.LEAD]].to_numpy()).all()
    assert 0.08 < summary.conversion_rate < 0.25

    ev = _read(out, Files.EVENTS)
    assert len(ev) == summary.n_events > N_LEADS
    at = pd.to_datetime(ev[Columns.AT], format="ISO8601")
    assert (at.to_numpy() > created.loc[ev[Columns.LEAD]].to_numpy()).all()
    assert at.max() < pd.Timestamp("2026-11-01")
    assert (ev[Columns.WEIGHT] == "").any() and (ev[Columns.WEIGHT] != "").any()


def test_same_arguments_give_same_bytes(
    tmp_path: Path, sim: tuple[Path, SimulationSummary]
) -> None:
    out, _ = sim
    again = simulate(tmp_path / "again", n_leads=N_LEADS, n_reps=N_REPS, seed=7)
    assert _files(again.out) == _files(out)
    other = simulate(tmp_path / "other", n_leads=N_LEADS, n_reps=N_REPS, seed=8)
    assert (other.out / Files.LEADS).read_bytes() != (out / Files.LEADS).read_bytes()


def test_rep_effect_changes_only_the_reps(tmp_path: Path) -> None:
    one = load_truth(simulate(tmp_path / "one", n_leads=400, n_reps=6, seed=3).out)
    two = load_truth(simulate(tmp_path / "two", n_leads=400, n_reps=6, seed=3, rep_effect=2.0).out)
    for name in (Files.LEADS, Files.EVENTS):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    firm_one, firm_two = (  # is_customer follows the outcomes, the rest must not move
        _read(tmp_path / d, Files.ACCOUNTS).drop(columns=Columns.IS_CUSTOMER)
        for d in ("one", "two")
    )
    pd.testing.assert_frame_equal(firm_one, firm_two)
    np.testing.assert_allclose(two.affinity, 2.0 * one.affinity, atol=1e-8)
    np.testing.assert_allclose(two.rep_bias, 2.0 * one.rep_bias, atol=1e-8)


def test_rep_effect_zero_makes_reps_identical(tmp_path: Path) -> None:
    truth = load_truth(simulate(tmp_path / "flat", n_leads=300, n_reps=5, rep_effect=0.0).out)
    assert np.all(truth.affinity == 0.0) and np.all(truth.rep_bias == 0.0)
    p = truth.probability()
    np.testing.assert_allclose(p, np.repeat(p[:, :1], 5, axis=1))


def test_planted_affinity_is_strong_and_centred(sim: tuple[Path, SimulationSummary]) -> None:
    truth = load_truth(sim[0])
    assert truth.affinity.shape == (N_REPS, len(SEGMENTS)) and truth.segments == list(SEGMENTS)
    assert (truth.affinity.max(axis=1) > 0.6).all()  # each rep is much better somewhere
    assert (truth.affinity.min(axis=1) < -0.6).all()  # and much worse somewhere
    np.testing.assert_allclose(truth.affinity.mean(axis=1), 0.0, atol=1e-8)
    np.testing.assert_allclose(truth.affinity.mean(axis=0), 0.0, atol=1e-8)
    best = truth.affinity.argmax(axis=0)
    assert (truth.affinity[best, np.arange(len(SEGMENTS))] > 0.3).all()  # every segment a pro


def test_probability_follows_the_formula(sim: tuple[Path, SimulationSummary]) -> None:
    truth = load_truth(sim[0])
    p = truth.probability()
    assert p.shape == (N_LEADS, N_REPS) and ((p > 0) & (p < 1)).all()
    leads, reps = ["L000010", "L000002"], ["R003", "R001", "R012"]
    sub = truth.probability(leads, reps)
    np.testing.assert_allclose(sub, p[np.ix_([9, 1], [2, 0, 11])])
    i, r = 9, 2
    logit = truth.base_logit[i] + truth.rep_bias[r] + truth.affinity[r, truth.lead_segment[i]]
    assert sub[0, 0] == pytest.approx(1.0 / (1.0 + np.exp(-logit)))
    with pytest.raises(UnknownIdError):
        truth.probability(["L999999"])
    with pytest.raises(UnknownIdError):
        truth.probability(rep_ids=["R999"])


def test_truth_matches_observed_outcomes(sim: tuple[Path, SimulationSummary]) -> None:
    out, _ = sim
    truth = load_truth(out)
    rows = _closed_rows(out, before="2026-09-01")  # old enough that none are still open
    p, won = _true_p(truth, rows), (rows[Columns.OUTCOME] == Outcome.WON).to_numpy()
    assert len(rows) > 2000
    assert p.mean() == pytest.approx(won.mean(), abs=0.03)
    assert p[won].mean() > p[~won].mean() + 0.15


def test_engagement_is_rebuilt_from_events_csv(sim: tuple[Path, SimulationSummary]) -> None:
    out, _ = sim
    params = json.loads((out / TRUTH_DIR / "truth.json").read_text())
    truth_leads = pd.read_csv(out / TRUTH_DIR / "leads.csv", index_col=Columns.LEAD)
    leads = _read(out, Files.LEADS).set_index(Columns.LEAD)
    ev = _read(out, Files.EVENTS)
    at = pd.to_datetime(ev[Columns.AT], format="ISO8601")
    t_ref = pd.to_datetime(leads.loc[ev[Columns.LEAD], Columns.CREATED], format="ISO8601")
    t_ref += pd.Timedelta(days=params["decision_days"])
    age = (t_ref.to_numpy() - at.to_numpy()) / np.timedelta64(1, "D")
    weight = pd.to_numeric(ev[Columns.WEIGHT]).fillna(1.0).to_numpy()  # contract default
    decayed = np.where(age >= 0, weight * 2.0 ** (-age / params["half_life_days"]), 0.0)
    rebuilt = pd.Series(decayed).groupby(ev[Columns.LEAD].to_numpy()).sum()
    rebuilt = rebuilt.reindex(truth_leads.index, fill_value=0.0)
    np.testing.assert_allclose(rebuilt, truth_leads["engagement"], rtol=1e-6, atol=1e-9)
    expected = truth_leads["fit_logit"] + params["engagement_coef"] * np.log1p(rebuilt)
    np.testing.assert_allclose(truth_leads["base_logit"], expected, rtol=1e-6, atol=1e-7)


def test_knowable_base_logit_is_the_truth_without_what_is_unseen(
    sim: tuple[Path, SimulationSummary],
) -> None:
    out, _ = sim
    ds = load_dataset(out)
    truth = load_truth(out)
    leads = ds.leads.iloc[::7].reset_index(drop=True)
    ids = leads[Columns.LEAD].astype(str).tolist()
    li = pd.Series(np.arange(len(truth.lead_ids)), index=truth.lead_ids)[ids].to_numpy()
    assert truth.latent is not None and truth.latent.std() > 0.2
    created = leads[Columns.CREATED].to_numpy().astype("datetime64[s]")
    t_ref = created + np.timedelta64(int(truth.params["decision_days"] * 86400), "s")
    # every event up to the decision counted: the truth less its latent intent
    full = knowable_base_logit(truth, leads, ds.events, t_ref + np.timedelta64(1, "s"))
    np.testing.assert_allclose(full + truth.latent[li], truth.base_logit[li], atol=1e-6)
    # nothing known yet: the fit without the latent
    none = knowable_base_logit(truth, leads, ds.events, created)
    np.testing.assert_allclose(none, truth.fit_logit[li] - truth.latent[li], atol=1e-9)
    # in between: engagement only grows with what is known
    mid = knowable_base_logit(truth, leads, ds.events, created + np.timedelta64(7 * 86400, "s"))
    assert np.all(none <= mid + 1e-12) and np.all(mid <= full + 1e-12)
    assert np.any(mid < full - 1e-3)
    p = truth.probability(ids, list(truth.rep_ids[:3]), base_logit=mid)
    assert p.shape == (len(ids), 3)
    with pytest.raises(ValueError, match="base_logit"):
        truth.probability(ids, base_logit=mid[:-1])


def test_segment_is_visible_in_the_features(sim: tuple[Path, SimulationSummary]) -> None:
    out, _ = sim
    truth = load_truth(out)
    leads = _read(out, Files.LEADS).merge(_read(out, Files.ACCOUNTS), on=Columns.ACCOUNT)
    group = leads["industry"].map(truth.params["industry_groups"])
    band = np.select(
        [leads["employees"].astype(int) < 100, leads["employees"].astype(int) < 1000],
        ["small", "mid"],
        "large",
    )
    seg = (group + "/" + band).map({s: i for i, s in enumerate(truth.segments)})
    assert (seg.to_numpy() == truth.lead_segment).all()


def test_without_accounts_puts_firmographics_on_leads(tmp_path: Path) -> None:
    summary = simulate(tmp_path / "flat", n_leads=200, n_reps=4, with_accounts=False)
    assert summary.n_accounts == 0 and not (summary.out / Files.ACCOUNTS).exists()
    leads = _read(summary.out, Files.LEADS)
    assert Columns.ACCOUNT not in leads.columns
    assert {"industry", "employees", "annual_revenue", "region", "tech_stack"} <= set(leads.columns)


def test_out_folder_rules(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    simulate(empty, n_leads=50, n_reps=2)
    assert (empty / Files.LEADS).is_file()
    with pytest.raises(ValueError, match="not empty"):
        simulate(empty, n_leads=50, n_reps=2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        simulate(tmp_path / "file", n_leads=50, n_reps=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file"]  # no temp left


@pytest.mark.parametrize(
    "kw", [{"n_leads": 0}, {"n_reps": 0}, {"days": 0}, {"seed": -1}, {"rep_effect": -1.0}]
)
def test_bad_arguments_write_nothing(tmp_path: Path, kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        simulate(tmp_path / "x", **kw)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_tiny_world_and_progress_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = simulate(tmp_path / "tiny", n_leads=1, n_reps=1, days=1, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "simulate" in captured.err
    assert summary.n_leads == 1 and load_truth(summary.out).probability().shape == (1, 1)


def test_load_truth_refuses_a_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_truth(tmp_path)


def test_loader_reads_the_output(sim: tuple[Path, SimulationSummary]) -> None:
    try:
        from recommender.data import load_dataset
    except ImportError as exc:
        pytest.skip(f"recommender.data.load_dataset not available yet: {exc}")
    ds = load_dataset(sim[0])
    assert len(ds.leads) == N_LEADS
    assert ds.reps is not None and len(ds.reps) == N_REPS
    assert ds.accounts is not None and ds.events is not None and ds.outcomes is not None
    assert "form_fill_seconds" in ds.feature_names
