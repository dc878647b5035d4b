"""AssignmentPrior: which rep usually gets a lead like this one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.errors import NotFittedError
from recommender.models.assignment import AssignmentPrior


def _rows(codes: list[int], n_cols: int = 3) -> sp.csr_matrix:
    data = np.ones(len(codes))
    return sp.csr_matrix((data, (np.arange(len(codes)), codes)), shape=(len(codes), n_cols))


def test_learns_who_gets_which_kind_of_lead() -> None:
    # Region 0 leads went to rep 2, region 1 leads to rep 0; rep 1 never got a lead.
    rows = _rows([0] * 20 + [1] * 20)
    reps = np.array([2] * 20 + [0] * 20)
    prior = AssignmentPrior().fit(rows, reps, np.zeros(40), n_reps=3)
    p = prior.predict_proba(_rows([0, 1]))
    assert p.shape == (2, 3)
    assert np.argmax(p[0]) == 2 and np.argmax(p[1]) == 0
    assert np.all(p[:, 1] < 1e-6) and np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_recent_assignments_count_more() -> None:
    # The same kind of lead went to rep 0 long ago (many) and to rep 1 lately (few).
    rows = _rows([0] * 30)
    reps = np.array([0] * 20 + [1] * 10)
    age = np.array([365.0] * 20 + [1.0] * 10)
    recent = AssignmentPrior(half_life_days=30).fit(rows, reps, age, n_reps=2)
    assert np.argmax(recent.predict_proba(_rows([0]))[0]) == 1
    flat = AssignmentPrior(half_life_days=1e9).fit(rows, reps, age, n_reps=2)
    assert np.argmax(flat.predict_proba(_rows([0]))[0]) == 0


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        AssignmentPrior().predict_proba(_rows([0]))
    with pytest.raises(ValueError, match="rep indices"):
        AssignmentPrior().fit(_rows([0]), np.array([3]), np.zeros(1), n_reps=2)
    with pytest.raises(ValueError, match="same length"):
        AssignmentPrior().fit(_rows([0, 1]), np.array([0]), np.zeros(2), n_reps=2)
    with pytest.raises(ValueError, match="half_life"):
        AssignmentPrior(half_life_days=0).fit(_rows([0]), np.array([0]), np.zeros(1), 1)
