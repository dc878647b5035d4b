"""Scoring helpers: reason values as the data writes them, grade cut points."""

from __future__ import annotations

import numpy as np

from recommender.scoring import format_value, grade, learn_grade_cuts


def test_reason_values_have_no_thousands_separator() -> None:
    assert format_value(1428.0) == "1428"
    assert format_value(np.float64(2.5)) == "2.50"
    assert format_value(float("nan")) == "missing"
    assert format_value(None) == "missing"
    assert format_value("Google") == "Google"


def test_a_score_that_does_not_rank_grades_every_lead_c_not_a() -> None:
    # Maven CRM: the lead score found no signal and gave every lead the base rate; the
    # report showed every test lead as grade A.
    p, y = np.full(200, 0.63), (np.arange(200) % 3 == 0).astype(float)
    cuts = learn_grade_cuts(p, y)
    assert set(grade(p, cuts)) == {"C"}
    ranked = np.linspace(0.1, 0.9, 200)
    assert set(grade(ranked, learn_grade_cuts(ranked, (ranked > 0.5).astype(float)))) == set("ABCD")


def test_float_noise_in_a_constant_score_still_grades_c() -> None:
    # A new-user trial: Maven's constant model trained on 0.631499163061863 and
    # 0.6314991630618629 alike; `leadrank score` then graded a new lead D, evaluate C.
    rng = np.random.default_rng(0)
    p = 0.631499163061863 + rng.choice([-1.0, 0.0, 1.0], 300) * 1e-16
    cuts = learn_grade_cuts(p, (np.arange(300) % 3 == 0).astype(float))
    fresh = np.array([0.6314991630618625, 0.631499163061863, 0.63148, 0.63151])
    assert set(grade(p, cuts)) == {"C"} and set(grade(fresh, cuts)) == {"C"}
    assert list(grade(np.array([0.9, 0.1]), cuts)) == ["A", "D"]
