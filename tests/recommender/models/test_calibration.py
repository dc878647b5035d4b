"""Calibration: the calibrator alone, and the calibrated LeadScorer on simulated data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.data.dataset import FeatureSpec
from recommender.errors import NotFittedError
from recommender.models import Calibrator, LeadScorer


def skewed_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw scores z that are over-confident: the true log-odds are 0.5 * z - 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n)
    p = 1.0 / (1.0 + np.exp(-(0.5 * z - 1.0)))
    return z, p, (rng.random(n) < p).astype(int)


def test_platt_recovers_slope_and_intercept() -> None:
    z, _, y = skewed_scores(20_000, 0)
    cal = Calibrator(method="platt").fit(z, y)
    assert cal.slope_ == pytest.approx(0.5, abs=0.03)
    assert cal.intercept_ == pytest.approx(-1.0, abs=0.06)


@pytest.mark.parametrize("method", ["platt", "isotonic", "auto"])
def test_calibrated_probabilities_match_truth(method: str) -> None:
    z, _, y = skewed_scores(8000, 1)
    cal = Calibrator(method=method).fit(z, y)
    z_new, p_new, _ = skewed_scores(4000, 2)
    assert np.abs(cal.predict(z_new) - p_new).mean() < 0.03


def test_outputs_stay_strictly_inside_unit_interval() -> None:
    z, _, y = skewed_scores(3000, 3)
    for method in ("platt", "isotonic", "none"):
        p = Calibrator(method=method, eps=1e-4).fit(z, y).predict(np.array([-1e6, 0.0, 1e6]))
        assert p.min() >= 1e-4 and p.max() <= 1 - 1e-4


def test_auto_compares_methods_by_cross_validated_log_loss() -> None:
    z, _, y = skewed_scores(300, 4)
    cal = Calibrator().fit(z, y)
    assert set(cal.cv_log_loss_) == {"none", "platt"}
    assert cal.method_ == "platt"  # the raw scores are far too confident
    z, _, y = skewed_scores(5000, 5)
    cal = Calibrator().fit(z, y)
    assert set(cal.cv_log_loss_) == {"none", "platt", "isotonic"}
    assert cal.method_ == min(cal.cv_log_loss_, key=lambda k: cal.cv_log_loss_[k])


def test_unknown_method_and_unfitted_use_fail() -> None:
    with pytest.raises(ValueError, match="unknown calibration method"):
        Calibrator(method="magic").fit(np.zeros(4), np.array([0, 1, 0, 1]))
    with pytest.raises(NotFittedError):
        Calibrator().predict(np.zeros(3))


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_save_load_round_trip(method: str, tmp_path: Path) -> None:
    z, _, y = skewed_scores(3000, 6)
    cal = Calibrator(method=method).fit(z, y)
    cal.save(tmp_path)
    np.testing.assert_array_equal(Calibrator.load(tmp_path).predict(z), cal.predict(z))


def simulated_leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Leads with known conversion probabilities (returned as the third item)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.exponential(1.0, n)
    channel = rng.choice(np.array(["web", "ads", "referral"], dtype=object), n)
    z = -1.2 + 1.2 * a + 0.8 * np.sqrt(b) + np.where(channel == "referral", 1.0, 0.0)
    p = 1.0 / (1.0 + np.exp(-z))
    y = (rng.random(n) < p).astype(int)
    frame = pd.DataFrame({"a": a, "b": b, "source": pd.Series(channel, dtype=object)})
    return frame, y, p


SPECS = [
    FeatureSpec("a", "numeric"),
    FeatureSpec("b", "numeric"),
    FeatureSpec("source", "categorical"),
]


def test_lead_scorer_is_calibrated_per_decile() -> None:
    X, y, _ = simulated_leads(10_000, 0)
    scorer = LeadScorer(gbm_params={"num_threads": 1}).fit(X, y, SPECS, order=np.arange(len(X)))
    X_new, _, p_true = simulated_leads(20_000, 1)
    p = scorer.predict_proba(X_new)
    deciles = pd.qcut(p, 10, labels=False, duplicates="drop")
    table = pd.DataFrame({"pred": p, "true": p_true, "d": deciles}).groupby("d").mean()
    # The calibrator sees 2,000 validation leads: its own noise is about +-0.03.
    assert np.abs(table["pred"] - table["true"]).max() < 0.05
    assert abs(p.mean() - p_true.mean()) < 0.015
