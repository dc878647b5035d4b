"""The evaluate report: contract-key check, JSON conversion, rendering."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from recommender.evaluation import metrics as m
from recommender.evaluation.report import (
    leakage_warnings,
    render_report,
    to_jsonable,
    validate_contract_json,
)


def _full_result() -> dict[str, Any]:
    """An evaluate result built from the metric functions on a tiny seeded dataset."""
    rng = np.random.default_rng(0)
    n = 200
    p = rng.uniform(0.02, 0.9, n)
    y = (rng.uniform(size=n) < p).astype(int)
    lead = m.binary_metrics(y, p)
    lead["gains"] = m.gains(y, p)
    lead["gains_arrival_order"] = m.gains_in_order(y, np.arange(n))
    lead["calibration"] = m.calibration_table(y, p, n_bins=5)
    grades = np.select([p > 0.7, p > 0.4, p > 0.2], ["A", "B", "C"], "D")
    lead["grades"] = m.grade_table(y, grades)
    lead["psi"] = m.psi(rng.uniform(size=300), p)
    n_reps = 6
    true_idx = rng.integers(0, n_reps, 50)
    scores = rng.normal(size=(50, n_reps))
    scores[np.arange(50), true_idx] += 1.0
    rep = m.ranking_metrics(m.rank_of(true_idx, scores))
    rep["n_reps"] = n_reps
    pop = m.popularity_scores(rng.integers(0, n_reps, 80), n_reps)
    rep["baselines"] = {
        "random": m.random_baseline_ranking(n_reps, 50),
        "popularity": m.ranking_metrics(m.rank_of(true_idx, np.tile(pop, (50, 1)))),
        "recent_popularity": m.ranking_metrics(m.rank_of(true_idx, np.tile(pop, (50, 1)))),
    }
    rep["placebo"] = {
        "metric": "mrr",
        "real": 0.61,
        "real_ci": (0.55, 0.67),
        "placebo": 0.41,
        "placebo_ci": [0.35, 0.47],
        "gain": 0.2,
        "gain_ci": np.array([0.12, 0.28]),
        "significant": np.bool_(True),
    }
    win = m.binary_metrics(y, p)
    win["log_loss_constant"] = m.constant_log_loss(y, float(y.mean()))
    aucs = {"Tags": 0.97, "source": 0.62, "empty": None}
    return {
        "split_time": "2024-03-01T00:00:00",
        "n_train_leads": np.int64(1200),
        "n_test_leads": n,
        "ready": False,
        "warnings": leakage_warnings(aucs),
        "lead_score": lead,
        "rep_ranking": rep,
        "win_probability": win,
        "routing_policies": m.policy_table(
            np.array(["model"] * 6 + ["holdout"] * 4),
            np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0]),
            np.array([0.9] * 6 + [0.1] * 4),
        ),
        "created": pd.Timestamp("2024-03-02 10:00"),
        "nan_value": float("nan"),
    }


def _null_result() -> dict[str, Any]:
    """Every contract key present, every value null, with reasons where known."""
    nulls = {"0.1": None, "0.2": None, "0.3": None}
    return {
        "split_time": "2024-03-01",
        "n_train_leads": 10,
        "n_test_leads": 0,
        "lead_score": {
            "auc": None,
            "average_precision": None,
            "log_loss": None,
            "brier": None,
            "reason": "no test lead with a known fate",
            "gains": dict(nulls),
            "gains_arrival_order": dict(nulls),
        },
        "rep_ranking": {
            "n": 0,
            "hr@1": None,
            "hr@3": None,
            "hr@5": None,
            "mrr": None,
            "reason": "no reps",
            "baselines": {"random": None, "popularity": None, "recent_popularity": None},
            "placebo": None,
        },
        "win_probability": {"n": 0, "auc": None, "log_loss": None, "brier": None},
    }


def test_full_result_passes_the_contract_check() -> None:
    assert validate_contract_json(_full_result()) == []
    assert validate_contract_json(_null_result()) == []


def test_contract_check_names_missing_keys() -> None:
    result = copy.deepcopy(_full_result())
    del result["lead_score"]["gains"]["0.2"]
    del result["rep_ranking"]["mrr"]
    del result["rep_ranking"]["baselines"]["popularity"]
    del result["n_test_leads"]
    missing = validate_contract_json(result)
    assert missing == [
        "n_test_leads",
        'lead_score.gains["0.2"]',
        "rep_ranking.mrr",
        "rep_ranking.baselines.popularity",
    ]


def test_contract_check_null_section_counts_as_missing() -> None:
    result = _null_result()
    result["win_probability"] = None
    missing = validate_contract_json(result)
    assert missing == [
        "win_probability.n",
        "win_probability.auc",
        "win_probability.log_loss",
        "win_probability.brier",
    ]
    assert "split_time" in validate_contract_json({})


def test_to_jsonable_round_trips_through_json() -> None:
    obj = to_jsonable(_full_result())
    text = json.dumps(obj, allow_nan=False)
    back = json.loads(text)
    assert back["n_train_leads"] == 1200
    assert back["nan_value"] is None
    assert back["created"] == "2024-03-02T10:00:00"
    assert back["rep_ranking"]["placebo"]["gain_ci"] == [0.12, 0.28]
    assert back["rep_ranking"]["placebo"]["significant"] is True
    assert to_jsonable({1: np.float32(math.inf), "a": (np.int8(3),)}) == {"1": None, "a": [3]}


def test_render_full_report_shows_the_key_figures() -> None:
    result = _full_result()
    text = render_report(result)
    lead, rep, win = result["lead_score"], result["rep_ranking"], result["win_probability"]
    for figure in (
        lead["auc"],
        lead["average_precision"],
        lead["log_loss"],
        lead["brier"],
        lead["gains"]["0.2"],
        lead["gains_arrival_order"]["0.3"],
        lead["psi"],
        rep["mrr"],
        rep["hr@3"],
        rep["baselines"]["random"]["mrr"],
        win["log_loss_constant"],
    ):
        assert f"{figure:.3f}" in text
    assert "1,200" in text and "2024-03-01T00:00:00" in text
    assert "column Tags separates the label almost perfectly" in text
    assert "NOT READY" in text
    assert "significant" in text and "not significant" not in text
    assert "[0.120, 0.280]" in text
    assert "recent_popularity" in text
    assert "Calibration" in text and "Conversion by grade" in text
    assert "Routing policies" in text and "holdout" in text
    assert text.endswith("\n")


def test_render_mostly_null_report_shows_reasons() -> None:
    text = render_report(_null_result())
    assert "n/a (no test lead with a known fate)" in text
    assert "(n/a: no reps)" in text
    assert "Placebo" not in text and "Calibration" not in text
    assert "Win probability" in text


def test_render_survives_an_almost_empty_dict() -> None:
    text = render_report({"split_time": "2024-01-01"})
    assert "2024-01-01" in text and "n/a" in text


def test_psi_reading() -> None:
    result = _null_result()
    result["lead_score"]["psi"] = 0.3
    assert "major shift" in render_report(result)
    result["lead_score"]["psi"] = {"value": 0.05}
    assert "(stable;" in render_report(result)


def test_leakage_warnings_threshold_and_order() -> None:
    out = leakage_warnings({"a": 0.95, "b": 0.5, "c": 0.99, "d": None})
    assert len(out) == 2 and out[0].startswith("column c ") and out[1].startswith("column a ")
