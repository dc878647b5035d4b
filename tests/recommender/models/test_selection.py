"""LeadScorer's choice on a time-ordered validation slice, its report and its fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.data.dataset import FeatureSpec
from recommender.models import LeadScorer

FAST = {"num_threads": 1, "n_estimators": 400}
SPECS = [
    FeatureSpec("x1", "numeric"),
    FeatureSpec("x2", "numeric"),
    FeatureSpec("source", "categorical"),
]


def interaction_leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversion depends on the sign of x1 * x2: no single field explains it."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    p = np.where(x1 * x2 > 0, 0.8, 0.15)
    y = (rng.random(n) < p).astype(int)
    source = pd.Series(rng.choice(["web", "ads"], n), dtype=object)
    return pd.DataFrame({"x1": x1, "x2": x2, "source": source}), y


def additive_leads(n: int, seed: int, rate_shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Logistic ground truth, additive in the fields (the scorecard's home ground)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    source = rng.choice(np.array(["web", "ads", "referral"], dtype=object), n)
    z = -0.5 + rate_shift + 1.0 * x1 - 0.7 * x2 + np.where(source == "referral", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "source": pd.Series(source, dtype=object)}), y


def test_gbm_wins_where_fields_interact() -> None:
    X, y = interaction_leads(3000, 0)
    scorer = LeadScorer(gbm_params=FAST).fit(X, y, SPECS, order=np.arange(len(X)))
    report = scorer.report_
    assert report["candidates"]["gbm"]["auc"] > report["candidates"]["scorecard"]["auc"] + 0.1
    assert scorer.chosen_ in ("gbm", "blend")
    assert report["n_val"] == 600 and report["n_fit"] == 2400 and report["n_train"] == 3000


def test_scorecard_kept_where_it_is_as_good() -> None:
    X, y = additive_leads(3000, 1)
    scorer = LeadScorer(gbm_params=FAST, tie_tolerance=0.02).fit(X, y, SPECS)
    report = scorer.report_
    best = max(c["auc"] for c in report["candidates"].values())
    if report["candidates"]["scorecard"]["auc"] >= best - 0.02:
        assert scorer.chosen_ == "scorecard"
    assert set(report["candidates"]) == {"scorecard", "gbm", "blend"}
    for figures in report["candidates"].values():
        assert set(figures) == {"auc", "log_loss", "brier"}


def test_validation_slice_is_the_latest_rows() -> None:
    X, y = additive_leads(2000, 2)
    order = np.random.default_rng(3).permutation(len(X)).astype(np.int64)
    # The rows whose order key is in the top 20 % all converted: that slice alone shows it.
    latest = order >= int(0.8 * len(X))
    y = np.where(latest, 1, y)
    y[np.flatnonzero(latest)[:60]] = 0
    report = LeadScorer(gbm_params=FAST).fit(X, y, SPECS, order=order).report_
    assert report["val_positives"] == int(latest.sum()) - 60
    assert report["n_val"] == int(latest.sum())


def test_shuffling_rows_with_their_order_changes_nothing() -> None:
    X, y = additive_leads(1500, 4)
    order = np.arange(len(X), dtype=np.int64) * 1000
    perm = np.random.default_rng(5).permutation(len(X))
    first = LeadScorer(gbm_params=FAST).fit(X, y, SPECS, order=order)
    second = LeadScorer(gbm_params=FAST).fit(
        X.iloc[perm].reset_index(drop=True), y[perm], SPECS, order=order[perm]
    )
    assert first.chosen_ == second.chosen_
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X), atol=1e-12)


def test_leaky_column_is_flagged() -> None:
    X, y = additive_leads(2000, 6)
    X["tags"] = pd.Series(np.where(y == 1, "will enrol", "not interested"), dtype=object)
    specs = [*SPECS, FeatureSpec("tags", "categorical")]
    report = LeadScorer(gbm_params=FAST).fit(X, y, specs).report_
    assert report["single_column_auc"]["tags"] > 0.99
    assert report["single_column_auc"]["x2"] < 0.9
    assert any("'tags'" in w for w in report["warnings"])


def test_few_outcomes_fall_back_to_a_regularised_scorecard() -> None:
    X, y = additive_leads(400, 7, rate_shift=-3.0)
    positives = int(y.sum())
    assert 10 <= positives < 40
    scorer = LeadScorer().fit(X, y, SPECS)
    assert scorer.chosen_ == "fallback_scorecard"
    assert scorer.report_["fallback"] and scorer.report_["ready"] == "not ready"
    assert scorer.scorecard_ is not None and scorer.scorecard_.C == 0.05
    p = scorer.predict_proba(X)
    assert np.all((p > 0) & (p < 1))
    assert abs(p.mean() - y.mean()) < 0.02


def test_almost_no_outcomes_fall_back_to_the_channel_prior() -> None:
    X, y = additive_leads(60, 8)
    y = np.zeros(len(X), dtype=int)
    y[:3] = 1
    scorer = LeadScorer().fit(X, y, SPECS)
    assert scorer.chosen_ == "channel"
    assert scorer.channel_ is not None
    np.testing.assert_allclose(scorer.predict_proba(X), scorer.channel_.predict_proba(X))


def test_readiness_verdicts() -> None:
    X, y = additive_leads(1200, 9)
    ready = LeadScorer(gbm_params=FAST).fit(X, y, SPECS).report_
    assert ready["ready"] == "ready", ready["reasons"]
    X, y = additive_leads(500, 10)
    small = LeadScorer(gbm_params=FAST).fit(X, y, SPECS).report_
    assert small["ready"] == "usable"
    assert any("1000" in r for r in small["reasons"])
    X, y = interaction_leads(500, 11)
    X = X.assign(x1=0.0, x2=0.0)  # nothing left to learn
    weak = LeadScorer(gbm_params=FAST).fit(X, y, SPECS).report_
    assert weak["ready"] == "not ready"


def test_report_survives_save_and_load(tmp_path: Path) -> None:
    X, y = additive_leads(1000, 12)
    scorer = LeadScorer(gbm_params=FAST).fit(X, y, SPECS)
    scorer.save(tmp_path)
    assert (tmp_path / "calibrator").is_dir() and (tmp_path / "channel").is_dir()
    loaded = LeadScorer.load(tmp_path)
    assert loaded.report_ == json.loads(json.dumps(scorer.report_))
    assert loaded.chosen_ == scorer.chosen_


def test_bad_order_is_refused() -> None:
    X, y = additive_leads(200, 13)
    from recommender.errors import DataError

    with pytest.raises(DataError, match="order"):
        LeadScorer().fit(X, y, SPECS, order=np.arange(10))


@pytest.mark.parametrize("make", [interaction_leads, additive_leads])
def test_predict_and_explain_matches_the_two_calls(make: object) -> None:
    X, y = make(2000, 3)  # type: ignore[operator]
    scorer = LeadScorer(gbm_params=FAST).fit(X, y, SPECS)
    p, contrib = scorer.predict_and_explain(X)
    assert np.allclose(p, scorer.predict_proba(X), atol=1e-9)
    assert np.allclose(contrib, scorer.explain(X))


def test_no_signal_falls_back_to_the_window_base_rate() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    X = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "source": pd.Series(["web"] * n, dtype=object),
        }
    )
    # pure noise, with a rate that drifts down over time (the validation slice is lowest)
    rate = np.linspace(0.7, 0.5, n)
    y = (rng.random(n) < rate).astype(int)
    scorer = LeadScorer(gbm_params=FAST).fit(X, y, SPECS, order=np.arange(n))
    assert scorer.chosen_ == "channel"
    assert scorer.report_["ready"] == "not ready"
    p = scorer.predict_proba(X)
    assert np.allclose(p, y.mean(), atol=0.01)
