"""implicit ALS affinity engine: factorise a rep x feature-value "over-performance" matrix.

For every (rep, feature value) cell the engine measures how much more often the rep wins
leads carrying that value than the value's own win rate predicts (won minus expected,
shrunk towards zero by ``prior`` pseudo-rows). Positive over-performance goes into one
column of the value, under-performance into a mirror column, so lost deals count as
evidence against the rep; implicit's alternating least squares factorises that
non-negative confidence matrix. A lead's representation is the row-normalised mix of its
feature values' factors (positive column minus mirror column): leads are described by
their features only, so a new lead is scored without retraining (cold start).

The rep bias is the rep's own shrunk over-performance across all its leads. Rep
attributes are not used by this engine (``rep_features`` is accepted and ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from recommender.models.affinity import (
    EmbeddingAffinity,
    FloatArray,
    check_interactions,
    read_folder,
    require_fitted,
    row_normalise,
    write_folder,
)
from recommender.models.base import init_params

_FORMAT = "leadrank.affinity.implicit/1"


class ImplicitAffinity(EmbeddingAffinity):
    """Rep x lead affinity from ALS on rep x feature-value over-performance.

    Args:
        n_components: latent factors ``d`` (representations have ``d + 2`` columns).
        iterations: ALS sweeps.
        regularization: ALS L2 penalty.
        confidence: scale from over-performance (probability points) to ALS confidence.
        prior: pseudo-rows shrinking each cell's over-performance towards zero.
        seed: random seed of the factor initialisation.
        n_threads: ALS threads (and BLAS threads while scoring).
    """

    def __init__(
        self,
        n_components: int = 16,
        iterations: int = 15,
        regularization: float = 0.05,
        confidence: float = 40.0,
        prior: float = 10.0,
        n_levels: int = 3,
        seed: int = 0,
        n_threads: int = 2,
    ) -> None:
        self.n_components = n_components
        self.iterations = iterations
        self.regularization = regularization
        self.confidence = confidence
        self.prior = prior
        self.n_levels = n_levels
        self.seed = seed
        self.n_threads = n_threads

    def fit(
        self,
        rep_idx: np.ndarray,
        lead_idx: np.ndarray,
        label: np.ndarray,
        lead_features: sp.csr_matrix,
        rep_features: sp.csr_matrix | None = None,
        *,
        n_reps: int,
    ) -> Self:
        """Fit on interactions (label 1.0 won, 0.0 lost); replaces any earlier fit.

        Raises:
            ValueError: bad shapes, indices or labels (see ``check_interactions``).
        """
        r, i, y = check_interactions(rep_idx, lead_idx, label, lead_features, n_reps)
        x = row_normalise(sp.csr_matrix(lead_features)[i]).astype(np.float64)
        m = len(r)
        by_rep = sp.csr_matrix((np.ones(m), (r, np.arange(m))), shape=(n_reps, m))
        n_col = np.asarray(x.sum(axis=0)).ravel()
        won_col = np.asarray(x.T @ y).ravel()
        rate = (won_col + self.prior * y.mean()) / (n_col + self.prior)
        expected = x @ rate  # each row's rep-free expectation from its feature values
        n_cell = (by_rep @ x).toarray()
        won_cell = (by_rep @ sp.csr_matrix(x.multiply(y[:, None]))).toarray()
        lift = (won_cell - n_cell * rate[None, :]) / (n_cell + self.prior)
        levels = self._levels(lift)
        conf = np.hstack(
            [self.confidence * np.maximum(sign * lift - t, 0.0) for t in levels for sign in (1, -1)]
        )
        with threadpool_limits(limits=1, user_api="blas"):  # implicit's own advice
            als = AlternatingLeastSquares(
                factors=self.n_components,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.n_threads,
            )
            als.fit(sp.csr_matrix(conf.astype(np.float32)), show_progress=False)
        n_feat = x.shape[1]
        item = np.asarray(als.item_factors, dtype=np.float32)[:, : self.n_components]
        blocks = item.reshape(len(levels), 2, n_feat, self.n_components)
        self.feature_factors_ = np.ascontiguousarray((blocks[:, 0] - blocks[:, 1]).sum(axis=0))
        seen = np.bincount(r, minlength=n_reps) > 0
        counts = np.bincount(r, minlength=n_reps).astype(np.float64)
        rep_bias = np.bincount(r, weights=y - expected, minlength=n_reps) / (counts + self.prior)
        reps = np.asarray(als.user_factors, dtype=np.float32)[:, : self.n_components].copy()
        reps[~seen] = 0.0
        self._set_state(reps, rep_bias.astype(np.float32), seen)
        return self

    def _levels(self, lift: FloatArray) -> list[float]:
        """Thresholds of |over-performance| for the thermometer columns (quantiles)."""
        mag = np.abs(lift[lift != 0.0])
        if self.n_levels <= 1 or len(mag) == 0:
            return [0.0]
        qs = np.linspace(0.0, 1.0, self.n_levels + 1)[1:-1]
        return [0.0, *np.quantile(mag, qs).tolist()]

    def _set_state(self, reps: FloatArray, rep_bias: FloatArray, seen: FloatArray) -> None:
        self.rep_factors_ = reps
        self.rep_bias_ = rep_bias
        self.seen_reps_ = seen
        ones = np.ones((reps.shape[0], 1), dtype=np.float32)
        self.rep_embeddings_ = np.hstack([reps, ones, rep_bias[:, None]]).astype(np.float32)

    def lead_embeddings(self, lead_features: sp.csr_matrix) -> FloatArray:
        """``[factors, 0, 1]`` per lead from its features only: ``(n, d + 2)``.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: the feature width differs from training.
        """
        require_fitted(self, "rep_embeddings_")
        if lead_features.shape[1] != self.feature_factors_.shape[0]:
            raise ValueError(
                f"lead_features has {lead_features.shape[1]} columns; "
                f"the model was fitted on {self.feature_factors_.shape[0]}"
            )
        x = row_normalise(lead_features)
        out = np.zeros((x.shape[0], self.n_components + 2), dtype=np.float32)
        out[:, : self.n_components] = x @ self.feature_factors_
        out[:, self.n_components + 1] = 1.0
        return out

    def _params(self) -> dict[str, Any]:
        return init_params(self)

    def save(self, path: Path) -> None:
        """Write ``model.json`` and ``arrays.npz`` into ``path``.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_embeddings_")
        arrays = {
            "feature_factors": self.feature_factors_,
            "rep_factors": self.rep_factors_,
            "rep_bias": self.rep_bias_,
            "seen_reps": self.seen_reps_,
        }
        write_folder(Path(path), {"format": _FORMAT, "params": self._params()}, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Rebuild a model written by ``save``.

        Raises:
            ModelFolderError: missing or foreign files.
        """
        meta, arrays = read_folder(Path(path), _FORMAT)
        obj = cls(**meta["params"])
        obj.feature_factors_ = arrays["feature_factors"]
        obj._set_state(arrays["rep_factors"], arrays["rep_bias"], arrays["seen_reps"])
        return obj
