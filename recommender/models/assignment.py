"""Assignment prior: which rep usually gets a lead like this one, learned from history.

The contract's ``rep_ranking`` asks for the rank of the rep who *won* a test lead. A rep
can only win a lead he was given, so

    P(rep r won the lead | lead, won) ∝ P(r is given the lead | lead) * P(won | lead, r)

The second factor is the affinity model's win probability (what routing maximises). The
first is this module: a multinomial naive Bayes classifier (scikit-learn's
``MultinomialNB``, Laplace smoothing ``alpha``) of the assigned rep on the lead's
indicator row (the encoder's one-hot columns), each past assignment weighted by
``0.5 ** (age_days / half_life_days)`` so that today's team and territories count most.

It models the team's *past* routing (territories, account ownership, who was employed),
not skill. Routing never uses it; it is reported in ``evaluate`` next to the win
probability alone, so the two parts of the rep ranking can be told apart.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from sklearn.naive_bayes import MultinomialNB

from recommender.models.base import init_params, require_fitted

_FLOOR = 1e-12
"""Probability of a rep with no weighted assignment at all (never zero: ranks stay defined)."""


class AssignmentPrior:
    """P(rep is given the lead | lead's indicators): naive Bayes over past assignments.

    Parameters:
        half_life_days: an assignment this many days before the reference time weighs half.
        alpha: additive (Laplace) smoothing of the per-rep indicator counts.

    Attributes:
        n_reps_: number of rep columns of :meth:`predict_proba`.
        classes_: rep indices with at least one assignment of positive weight.
    """

    def __init__(self, half_life_days: float = 60.0, alpha: float = 1.0) -> None:
        self.half_life_days = half_life_days
        self.alpha = alpha

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    def fit(
        self, lead_rows: sp.csr_matrix, rep_index: np.ndarray, age_days: np.ndarray, n_reps: int
    ) -> Self:
        """Fit on past assignments; returns self.

        Args:
            lead_rows: indicator row of the lead of each assignment, (n_assignments, n_cols).
            rep_index: rep of each assignment, integers in ``[0, n_reps)``.
            age_days: days from each assignment's lead creation to the reference time
                (negative ages count as 0; NaN weighs 0).
            n_reps: number of reps (the columns of :meth:`predict_proba`).

        Raises:
            ValueError: lengths differ, a rep index out of range, a non-positive
                ``half_life_days``, or no assignment of positive weight.
        """
        if self.half_life_days <= 0:
            raise ValueError("half_life_days must be > 0")
        r = np.asarray(rep_index, dtype=np.int64)
        age = np.asarray(age_days, dtype=np.float64)
        if not (lead_rows.shape[0] == r.size == age.size):
            raise ValueError("lead_rows, rep_index and age_days must have the same length")
        if r.size and (r.min() < 0 or r.max() >= n_reps):
            raise ValueError(f"rep indices must be in [0, {n_reps})")
        w = 0.5 ** (np.maximum(age, 0.0) / self.half_life_days)
        w = np.where(np.isnan(w), 0.0, w)
        keep = w > 0
        if not keep.any():
            raise ValueError("no past assignment of positive weight to learn from")
        self.nb_ = MultinomialNB(alpha=self.alpha).fit(
            lead_rows[keep], r[keep], sample_weight=w[keep]
        )
        self.classes_ = self.nb_.classes_.astype(np.int64)
        self.n_reps_ = int(n_reps)
        return self

    def predict_proba(self, lead_rows: sp.csr_matrix) -> np.ndarray:
        """P(rep is given the lead), shape (n_leads, n_reps); rows sum to about 1.

        Raises:
            NotFittedError: before :meth:`fit`.
        """
        require_fitted(self, "nb_")
        out = np.full((lead_rows.shape[0], self.n_reps_), _FLOOR)
        if lead_rows.shape[0]:
            out[:, self.classes_] = np.maximum(self.nb_.predict_proba(lead_rows), _FLOOR)
        return out
