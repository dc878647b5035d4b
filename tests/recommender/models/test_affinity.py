"""Contract suite for the affinity engines, plus the combiner and placebo check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.errors import ModelFolderError, NotFittedError
from recommender.models.affinity import (
    ENGINES,
    AffinityModel,
    RepAffinity,
    engine_class,
    fit_strength,
    make_engine,
    placebo_gain,
    sigmoid,
)
from recommender.models.affinity_lightfm import LightFMAffinity
from recommender.models.affinity_lowrank import LowRankAffinity
from recommender.models.affinity_pair import PairAffinity, fit_logistic, pair_design

N_SEG = 4


@dataclass
class Team:
    """A small simulated team: leads with segment features, reps with planted effects."""

    x: sp.csr_matrix
    segment: np.ndarray
    rep: np.ndarray
    label: np.ndarray
    base_logit: np.ndarray
    affinity: np.ndarray
    n_reps: int


def make_team(n_leads: int = 3000, n_reps: int = 12, effect: float = 1.5, seed: int = 0) -> Team:
    """Leads: one-hot segment (4), size band (3), channel (3). Each lead has one rep.

    logit = lead main effect + effect * affinity[rep, segment]; ``effect=0`` gives a team
    whose reps do not differ. ``base_logit`` is the true rep-free lead logit.
    """
    rng = np.random.default_rng(seed)
    seg = rng.integers(N_SEG, size=n_leads)
    size = rng.integers(3, size=n_leads)
    chan = rng.integers(3, size=n_leads)
    cols = np.stack([seg, N_SEG + size, N_SEG + 3 + chan], axis=1)
    rows = np.repeat(np.arange(n_leads), 3)
    x = sp.csr_matrix(
        (np.ones(cols.size, dtype=np.float32), (rows, cols.ravel())), shape=(n_leads, N_SEG + 6)
    )
    main = -0.8 + np.array([-0.5, 0.0, 0.3, 0.6])[seg] + np.array([-0.3, 0.0, 0.3])[size]
    aff = rng.choice([-1.0, 1.0], size=(n_reps, N_SEG)) * effect
    rep = rng.integers(n_reps, size=n_leads)
    y = (rng.random(n_leads) < sigmoid(main + aff[rep, seg])).astype(np.float64)
    return Team(x, seg, rep, y, main, aff, n_reps)


@pytest.fixture(scope="module")
def team() -> Team:
    return make_team()


@pytest.fixture(scope="module")
def flat_team() -> Team:
    return make_team(effect=0.0, seed=1)


def _engine(name: str, seed: int = 0, n_threads: int = 1) -> AffinityModel:
    return make_engine(name, n_components=8, epochs=20, seed=seed, n_threads=n_threads)


def _fit(name: str, t: Team, **kw: int) -> AffinityModel:
    eng = _engine(name, **kw)
    return eng.fit(t.rep, np.arange(len(t.rep)), t.label, t.x, n_reps=t.n_reps)


def _segment_means(a: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per (rep, segment) mean of an (n_leads, n_reps) array, centred per lead."""
    c = a - a.mean(axis=1, keepdims=True)
    return np.stack([c[segment == s].mean(axis=0) for s in range(N_SEG)], axis=1)


# --------------------------------------------------------------------- engine contract


@pytest.mark.parametrize("name", ENGINES)
class TestEngineContract:
    def test_not_fitted(self, name: str, team: Team) -> None:
        eng = _engine(name)
        with pytest.raises(NotFittedError):
            eng.affinity(team.x)
        with pytest.raises(NotFittedError):
            eng.rep_embeddings()

    def test_shapes_and_gemm_identity(self, name: str, team: Team) -> None:
        eng = _fit(name, team)
        lead = eng.lead_embeddings(team.x[:50])
        reps = eng.rep_embeddings()
        assert lead.shape == (50, 10) and reps.shape == (team.n_reps, 10)
        scores = eng.affinity(team.x[:50])
        assert scores.shape == (50, team.n_reps)
        np.testing.assert_allclose(scores, lead @ reps.T, rtol=1e-5, atol=1e-6)

    def test_chunked_equals_unchunked(self, name: str, team: Team) -> None:
        eng = _fit(name, team)
        full = eng.affinity(team.x, chunk_size=10**9)
        np.testing.assert_allclose(eng.affinity(team.x, chunk_size=7), full, rtol=1e-6, atol=1e-6)
        sub = eng.affinity(team.x, np.array([3, 0]), chunk_size=100)
        np.testing.assert_allclose(sub, full[:, [3, 0]], rtol=1e-6, atol=1e-6)

    def test_cold_start_lead(self, name: str, team: Team) -> None:
        eng = _fit(name, team)
        new = sp.csr_matrix(
            np.eye(1, team.x.shape[1], 2, dtype=np.float32) + np.eye(1, team.x.shape[1], 5)
        )
        out = eng.affinity(new)
        assert out.shape == (1, team.n_reps) and np.all(np.isfinite(out))
        empty = eng.affinity(sp.csr_matrix((2, team.x.shape[1]), dtype=np.float32))
        assert np.all(np.isfinite(empty))

    def test_learns_planted_affinity(self, name: str, team: Team) -> None:
        eng = _fit(name, team)
        learned = _segment_means(eng.affinity(team.x), team.segment)
        truth = team.affinity - team.affinity.mean(axis=0)
        assert np.corrcoef(learned.ravel(), truth.ravel())[0, 1] > 0.6

    def test_save_load_round_trip(self, name: str, team: Team, tmp_path: Path) -> None:
        eng = _fit(name, team)
        eng.save(tmp_path / "m")
        back = engine_class(name).load(tmp_path / "m")
        np.testing.assert_array_equal(back.affinity(team.x), eng.affinity(team.x))
        other = "implicit" if name == "lightfm" else "lightfm"
        with pytest.raises(ModelFolderError):
            engine_class(other).load(tmp_path / "m")

    def test_deterministic_and_refit_replaces(self, name: str, team: Team, flat_team: Team) -> None:
        a = _fit(name, team).affinity(team.x[:100])
        np.testing.assert_array_equal(_fit(name, team).affinity(team.x[:100]), a)
        eng = _fit(name, flat_team)
        eng.fit(team.rep, np.arange(len(team.rep)), team.label, team.x, n_reps=team.n_reps)
        np.testing.assert_array_equal(eng.affinity(team.x[:100]), a)

    def test_bad_input_raises(self, name: str, team: Team) -> None:
        eng = _engine(name)
        n = len(team.rep)
        with pytest.raises(ValueError, match="label"):
            eng.fit(team.rep, np.arange(n), np.full(n, 0.5), team.x, n_reps=team.n_reps)
        with pytest.raises(ValueError, match="rep_idx"):
            eng.fit(team.rep, np.arange(n), team.label, team.x, n_reps=3)
        with pytest.raises(ValueError, match="lengths"):
            eng.fit(team.rep[:-1], np.arange(n), team.label, team.x, n_reps=team.n_reps)
        eng.fit(team.rep, np.arange(n), team.label, team.x, n_reps=team.n_reps)
        with pytest.raises(ValueError, match="columns"):
            eng.affinity(team.x[:, :5])


@pytest.mark.parametrize("normalise", ["none", "l1"])
def test_lightfm_affinity_equals_lightfm_predict(team: Team, normalise: str) -> None:
    eng = LightFMAffinity(n_components=8, epochs=20, n_threads=1, normalise=normalise)
    eng.fit(team.rep, np.arange(len(team.rep)), team.label, team.x, n_reps=team.n_reps)
    x = team.x[:40]
    ours = eng.affinity(x)
    lfm = eng.to_lightfm()
    from recommender.models.affinity import row_normalise

    items_x = row_normalise(x) if normalise == "l1" else x
    users = np.repeat(np.arange(team.n_reps), 40)
    items = np.tile(np.arange(40), team.n_reps)
    ref = lfm.predict(users, items, user_features=eng.user_features_, item_features=items_x)
    np.testing.assert_allclose(ours, ref.reshape(team.n_reps, 40).T, rtol=1e-4, atol=1e-4)


def test_lightfm_sum_and_mean_differ_and_bad_normalise_raises(team: Team) -> None:
    n = len(team.rep)
    fits = {
        norm: LightFMAffinity(n_components=8, epochs=20, n_threads=1, normalise=norm).fit(
            team.rep, np.arange(n), team.label, team.x, n_reps=team.n_reps
        )
        for norm in ("none", "l1")
    }
    assert not np.allclose(fits["none"].affinity(team.x[:20]), fits["l1"].affinity(team.x[:20]))
    with pytest.raises(ValueError, match="normalise"):
        LightFMAffinity(normalise="l2").fit(
            team.rep, np.arange(n), team.label, team.x, n_reps=team.n_reps
        )


def test_lightfm_folder_without_normalise_loads_as_mean(team: Team, tmp_path: Path) -> None:
    """A model saved before ``normalise`` existed scored leads by the mean of features."""
    import json

    eng = LightFMAffinity(n_components=8, epochs=20, n_threads=1, normalise="l1")
    eng.fit(team.rep, np.arange(len(team.rep)), team.label, team.x, n_reps=team.n_reps)
    eng.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    del meta["params"]["normalise"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    back = LightFMAffinity.load(tmp_path / "m")
    assert back.normalise == "l1"
    np.testing.assert_array_equal(back.affinity(team.x[:50]), eng.affinity(team.x[:50]))


# --------------------------------------------------------------------- combiner


def _combiner(t: Team, engine: str = "lightfm", **kw: object) -> RepAffinity:
    model = RepAffinity(engine, n_components=8, epochs=20, n_threads=1, **kw)  # type: ignore[arg-type]
    n = len(t.rep)
    return model.fit(
        t.rep, np.arange(n), t.label, t.base_logit, t.x, None, n_reps=t.n_reps, order=np.arange(n)
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_combiner_uses_real_signal(engine: str, team: Team) -> None:
    model = _combiner(team, engine)
    assert model.strength_ > 0
    rep = model.report_
    assert rep["valid_log_loss_affinity"] < rep["valid_log_loss_base"]
    assert rep["n_reps_seen"] == team.n_reps
    learned = _segment_means(model.predict_logit_adjustment(team.x), team.segment)
    assert np.corrcoef(learned.ravel(), team.affinity.ravel())[0, 1] > 0.6


def test_rescale_keeps_the_validated_spread(team: Team) -> None:
    """With ``rescale`` the refitted adjustment has the spread the strength was fitted on."""
    plain = _combiner(team, rescale=False)
    scaled = _combiner(team)
    factor = scaled.report_["rescaled_by"]
    assert factor > 0 and scaled.strength_ == pytest.approx(plain.strength_ * factor)
    a = scaled.predict_logit_adjustment(team.x[:100])
    b = plain.predict_logit_adjustment(team.x[:100])
    np.testing.assert_allclose(a, b * factor, rtol=1e-4, atol=1e-5)


def test_combiner_equals_global_score_without_rep_signal(flat_team: Team) -> None:
    model = _combiner(flat_team)
    assert model.strength_ == 0.0
    proba = model.predict_proba(flat_team.base_logit, flat_team.x)
    expected = sigmoid(flat_team.base_logit.astype(np.float32))[:, None]
    np.testing.assert_allclose(proba, np.broadcast_to(expected, proba.shape), atol=1e-6)


def test_unseen_rep_falls_back_to_global_score(team: Team) -> None:
    keep = team.rep != 5
    n_reps = team.n_reps + 1  # rep 12 exists but never appears in training
    model = RepAffinity(n_components=8, epochs=20, n_threads=1).fit(
        team.rep[keep], np.flatnonzero(keep), team.label[keep], team.base_logit[keep], team.x,
        None, n_reps=n_reps,
    )  # fmt: skip
    assert model.strength_ > 0
    adj = model.predict_logit_adjustment(team.x[:200])
    assert np.all(adj[:, [5, 12]] == 0.0) and np.any(adj[:, 0] != 0.0)
    proba = model.predict_proba(team.base_logit[:200], team.x[:200])
    np.testing.assert_allclose(proba[:, 5], sigmoid(team.base_logit[:200]), atol=1e-6)
    sd = model.uncertainty(team.x[:3])
    assert sd.shape == (3, n_reps) and sd[0, 12] > sd[0, 0] > 0


def test_combiner_chunked_save_load(team: Team, tmp_path: Path) -> None:
    model = _combiner(team)
    full = model.predict_proba(team.base_logit, team.x)
    chunks = np.vstack(list(model.iter_proba(team.base_logit, team.x, chunk_size=128)))
    np.testing.assert_allclose(chunks, full, atol=1e-7)
    pairs = model.pair_logit_adjustment(team.x[:30], team.rep[:30])
    adj = model.predict_logit_adjustment(team.x[:30])
    np.testing.assert_allclose(pairs, adj[np.arange(30), team.rep[:30]], rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "aff")
    back = RepAffinity.load(tmp_path / "aff")
    np.testing.assert_array_equal(back.predict_proba(team.base_logit, team.x), full)
    assert back.report_ == model.report_
    with pytest.raises(NotFittedError):
        RepAffinity().predict_logit_adjustment(team.x)


def test_placebo_gain_is_zero_without_rep_effect(flat_team: Team) -> None:
    model = RepAffinity(n_components=8, epochs=20, n_threads=1)
    n = len(flat_team.rep)
    out = placebo_gain(
        model, flat_team.rep, np.arange(n), flat_team.label, flat_team.base_logit, flat_team.x,
        n_reps=flat_team.n_reps, order=np.arange(n), n_boot=200,
    )  # fmt: skip
    assert not out["significant"]
    assert abs(out["placebo_gain"]) < 0.005 and abs(out["real_gain"]) < 0.005


def test_placebo_separates_real_signal(team: Team) -> None:
    model = RepAffinity(n_components=8, epochs=20, n_threads=1)
    n = len(team.rep)
    out = placebo_gain(
        model, team.rep, np.arange(n), team.label, team.base_logit, team.x,
        n_reps=team.n_reps, order=np.arange(n), n_boot=200,
    )  # fmt: skip
    assert out["significant"]
    assert out["real_ci"][0] > out["placebo_ci"][1]
    assert abs(out["placebo_gain"]) < 0.01


# --------------------------------------------------------------------- pair engine


def _pair(t: Team, **kw: object) -> PairAffinity:
    eng = PairAffinity(n_threads=1, **kw)  # type: ignore[arg-type]
    return eng.fit(t.rep, np.arange(len(t.rep)), t.label, t.x, n_reps=t.n_reps)


def test_fit_logistic_matches_sklearn(team: Team) -> None:
    """The penalised solver equals scikit-learn's L2 logistic regression (free intercept)."""
    from sklearn.linear_model import LogisticRegression

    x = team.x.toarray().astype(np.float64)
    a = sp.csr_matrix(np.hstack([x, np.ones((len(x), 1))]))
    lam = 5.0
    pen = np.r_[np.full(x.shape[1], lam), 0.0]
    w = fit_logistic(a, team.label, np.zeros(len(x)), pen, max_iter=2000)
    ref = LogisticRegression(C=1.0 / lam, tol=1e-10, max_iter=5000).fit(x, team.label)
    np.testing.assert_allclose(w[:-1], ref.coef_.ravel(), atol=1e-3)
    assert w[-1] == pytest.approx(float(ref.intercept_[0]), abs=1e-3)


def test_pair_design_columns() -> None:
    x = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))
    d = pair_design(x, np.array([1, 0]), n_reps=2).toarray()
    expected = np.zeros((2, 2 * 4))
    expected[0, [1, 2 + 3 + 0, 2 + 3 + 2]] = [1.0, 1.0, 2.0]
    expected[1, [0, 2 + 1]] = 1.0
    np.testing.assert_array_equal(d, expected)


def test_pair_full_rank_equals_the_penalised_glm(team: Team) -> None:
    """With rank >= features, rep differences are exactly those of the stage-2 GLM."""
    p = team.x.shape[1]
    eng = _pair(team, l2=10.0, n_components=p)
    x = sp.csr_matrix(team.x, dtype=np.float64)
    lead = sp.hstack([x, sp.csr_matrix(np.ones((x.shape[0], 1)))], format="csr")
    lead_w = fit_logistic(lead, team.label, np.zeros(x.shape[0]), np.r_[np.full(p, 1.0), 0.0])
    design = pair_design(x, team.rep, team.n_reps)
    w = fit_logistic(design, team.label, lead @ lead_w, np.full(design.shape[1], 10.0))
    direct = x[:40] @ w[team.n_reps :].reshape(team.n_reps, p).T + w[: team.n_reps]
    got = eng.affinity(team.x[:40]).astype(np.float64)

    def centre(a: np.ndarray) -> np.ndarray:
        return np.asarray(a - a.mean(axis=1, keepdims=True))

    np.testing.assert_allclose(centre(got), centre(direct), atol=2e-3)
    low = _pair(team, l2=10.0, n_components=1).affinity(team.x[:40])
    assert not np.allclose(centre(low), centre(got), atol=1e-3)


def test_pair_picks_no_table_without_rep_signal(flat_team: Team, team: Team) -> None:
    flat = _pair(flat_team)
    real = _pair(team)
    assert np.isfinite(real.l2_) and real.l2_ in real.l2_grid
    spread = flat.affinity(flat_team.x).std(axis=1).mean()
    assert spread < 0.5 * real.affinity(team.x).std(axis=1).mean()


def test_pair_rejects_bad_parameters(team: Team) -> None:
    with pytest.raises(ValueError, match="n_components"):
        _pair(team, n_components=0)
    with pytest.raises(ValueError, match="positive"):
        _pair(team, l2=0.0)
    with pytest.raises(ValueError, match="rep_features"):
        PairAffinity().fit(
            team.rep, np.arange(len(team.rep)), team.label, team.x,
            sp.csr_matrix(np.ones((2, 1))), n_reps=team.n_reps,
        )  # fmt: skip


def test_pair_combiner_placebo_and_unseen_rep(flat_team: Team, team: Team, tmp_path: Path) -> None:
    """Through the combiner: the global score on a flat team; unseen reps get 0; round trip."""
    flat = _combiner(flat_team, "pair")
    assert flat.strength_ == 0.0
    proba = flat.predict_proba(flat_team.base_logit, flat_team.x)
    np.testing.assert_allclose(proba[:, 0], sigmoid(flat_team.base_logit), atol=1e-6)
    keep = team.rep != 5
    model = RepAffinity("pair", n_components=8, n_threads=1).fit(
        team.rep[keep], np.flatnonzero(keep), team.label[keep], team.base_logit[keep], team.x,
        None, n_reps=team.n_reps + 1, order=np.flatnonzero(keep),
    )  # fmt: skip
    assert model.strength_ > 0
    adj = model.predict_logit_adjustment(team.x[:200])
    assert np.all(adj[:, [5, 12]] == 0.0) and np.any(adj[:, 0] != 0.0)
    model.save(tmp_path / "aff")
    back = RepAffinity.load(tmp_path / "aff")
    np.testing.assert_array_equal(back.predict_logit_adjustment(team.x[:200]), adj)


def test_fit_strength_does_not_depend_on_the_scale_of_the_adjustment() -> None:
    # A heavily shrunk adjustment (tiny z) needs a slope in the thousands; the damped
    # Newton steps used to stop at 50 x 5 = 250 and call a real signal insignificant.
    rng = np.random.default_rng(3)
    z = rng.normal(size=4000)
    offset = rng.normal(-1.0, 0.5, size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(offset + 0.8 * z)))).astype(float)
    beta, se = fit_strength(y, offset, z)
    tiny_beta, tiny_se = fit_strength(y, offset, z * 1e-4)
    assert beta == pytest.approx(0.8, abs=0.1)
    assert tiny_beta * 1e-4 == pytest.approx(beta, rel=1e-6)
    assert tiny_beta / tiny_se == pytest.approx(beta / se, rel=1e-6)


# --------------------------------------------------------------------- lowrank engine
def _lowrank(t: Team, offset: bool = True, **kw: object) -> LowRankAffinity:
    eng = LowRankAffinity(n_components=4, n_threads=1, **kw)  # type: ignore[arg-type]
    extra = {"offset": t.base_logit} if offset else {}
    return eng.fit(t.rep, np.arange(len(t.rep)), t.label, t.x, n_reps=t.n_reps, **extra)


def test_lowrank_recovers_the_planted_effects_over_an_offset(team: Team) -> None:
    # The penalty grid is fitted from a fresh random start each time: warm-started from
    # the strongest penalty's all-zero solution (a stationary point), every weaker one
    # stayed at zero and the engine found nothing.
    eng = _lowrank(team)
    assert np.isfinite(eng.l2_) and eng.report_["valid_log_loss"]
    learned = _segment_means(eng.affinity(team.x), team.segment)
    planted = team.affinity - team.affinity.mean(axis=0)
    assert np.corrcoef(learned.ravel(), planted.ravel())[0, 1] > 0.8
    assert eng.intercept_ == 0.0  # over an offset the engine fits no lead-only stage
    # a penalty strong enough to zero the table first, then a weak one: still found
    assert _lowrank(team, l2_grid=(5.0, 0.25)).l2_ == 0.25


def test_lowrank_keeps_little_on_a_flat_team(flat_team: Team, team: Team) -> None:
    flat, real = _lowrank(flat_team), _lowrank(team)
    spread = flat.affinity(flat_team.x).std(axis=1).mean()
    assert spread < 0.25 * real.affinity(team.x).std(axis=1).mean()
    assert _combiner(flat_team, "lowrank").strength_ == 0.0


def test_lowrank_checks_the_offset_and_works_without_one(team: Team) -> None:
    with pytest.raises(ValueError, match="offset"):
        LowRankAffinity(n_threads=1).fit(
            team.rep, np.arange(len(team.rep)), team.label, team.x,
            n_reps=team.n_reps, offset=team.base_logit[:-1],
        )  # fmt: skip
    eng = _lowrank(team, offset=False)  # the lead-only stage of 'pair' gives the offset
    assert eng.intercept_ != 0.0


def test_lowrank_through_the_combiner_reuses_the_tuned_weight(team: Team, tmp_path: Path) -> None:
    model = _combiner(team, "lowrank")
    assert model.strength_ > 0
    engine = model.engine_
    assert isinstance(engine, LowRankAffinity)
    # the refit took the held-out choice, without passing it off as a given weight
    assert engine.l2 is None and np.isfinite(engine.l2_) and engine.report_["valid_log_loss"]
    model.save(tmp_path / "aff")
    back = RepAffinity.load(tmp_path / "aff")
    assert back.engine_.l2 is None  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        back.predict_logit_adjustment(team.x[:50]), model.predict_logit_adjustment(team.x[:50])
    )
    no_refit = _combiner(team, "lowrank", refit=False)
    assert no_refit.strength_ > 0
