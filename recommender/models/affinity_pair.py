"""Pair affinity engine: a penalised logistic model of per-(rep, lead feature) effects.

A supervised alternative to the factorisation engines. Two stages on the interaction rows
(won 1, lost 0):

1. a *lead-only* logistic regression on the lead indicators (L2 ``lead_l2``): what any
   rep converts, the offset of stage 2;
2. with that logit as offset, a logistic regression on ``rep bias + rep x indicator``
   columns (one weight per rep and lead feature value, L2 ``l2``). The L2 penalty is a
   Gaussian prior: each per-(rep, value) effect is an empirical-Bayes-like shrunk residual
   effect, estimated jointly (additive over the lead's feature values) rather than one
   value at a time. With ``l2=None`` the penalty is picked from ``l2_grid`` on a seeded
   random ``valid_fraction`` of the rows (lowest held-out log loss; if no penalty beats
   the lead-only model the per-rep table is zero, so the combiner sees no rep signal),
   then refitted on all rows.

The learned table ``W`` (reps x indicators) is centred over the reps seen in training and
truncated to its ``n_components`` leading singular directions, which makes the engine an
embedding engine like the others (``affinity(X) = lead_embeddings(X) @ rep_embeddings().T``,
width ``n_components + 2``; cold start from features alone, one GEMM per chunk) and
shares strength across reps (a low-rank denoiser of the per-rep table). A rep never seen
in training gets the average rep. Rep attributes are not used (unseen reps fall back to
the global score in the combiner anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from recommender.models.affinity import (
    EmbeddingAffinity,
    FloatArray,
    check_interactions,
    log_loss_rows,
    read_folder,
    require_fitted,
    sigmoid,
    split_rows,
    write_folder,
)
from recommender.models.base import init_params

_FORMAT = "leadrank.affinity.pair/1"
L2_GRID = (10.0, 30.0, 100.0, 300.0, 1000.0)


def pair_design(x: sp.csr_matrix, rep: np.ndarray, n_reps: int) -> sp.csr_matrix:
    """Design rows ``[rep one-hot | rep x indicator]`` of interaction rows.

    Column ``r`` is rep ``r``'s bias, column ``n_reps + r * p + f`` its effect of lead
    column ``f`` (``p`` lead columns); the values are the lead's feature values.
    """
    x = sp.csr_matrix(x, dtype=np.float64)
    m, p = x.shape
    nnz = np.diff(x.indptr)
    cols = n_reps + np.repeat(rep, nnz) * p + x.indices
    width = n_reps * (p + 1)
    inter = sp.csr_matrix((x.data, cols, x.indptr), shape=(m, width))
    bias = sp.csr_matrix((np.ones(m), (np.arange(m), rep)), shape=(m, width))
    return sp.csr_matrix(inter + bias)


def fit_logistic(
    a: sp.csr_matrix,
    y: FloatArray,
    offset: FloatArray,
    penalty: FloatArray,
    w0: FloatArray | None = None,
    max_iter: int = 500,
) -> FloatArray:
    """Weights of ``logit = offset + a @ w`` minimising log loss + ``0.5 * sum(penalty w^2)``.

    ``penalty`` is one L2 weight per column (0 leaves a column unpenalised). L-BFGS.
    """
    at = sp.csr_matrix(a.T)

    def objective(w: FloatArray) -> tuple[float, FloatArray]:
        z = offset + a @ w
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.dot(penalty * w, w))
        return loss, np.asarray(at @ (sigmoid(z) - y) + penalty * w)

    start = np.zeros(a.shape[1]) if w0 is None else w0
    res = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return np.asarray(res.x, dtype=np.float64)


def pick_penalty(
    grid: tuple[float, ...],
    fit: Callable[[float, FloatArray | None], FloatArray],
    valid_logit: Callable[[FloatArray], FloatArray],
    y_valid: FloatArray,
    offset_valid: FloatArray,
) -> tuple[float, bool, dict[str, Any]]:
    """Pick the penalty of ``grid`` with the lowest held-out log loss.

    Fits from the strongest penalty to the weakest, each warm-started from the last
    (``fit(penalty, start)`` returns the weights, ``valid_logit(weights)`` the held-out
    logits). Returns the best penalty, whether it beats the offset alone on the held-out
    rows, and a report of every loss.
    """
    lead_only = float(log_loss_rows(y_valid, offset_valid).mean())
    losses: dict[float, float] = {}
    w: FloatArray | None = None
    for lam in sorted(grid, reverse=True):
        w = fit(lam, w)
        losses[lam] = float(log_loss_rows(y_valid, valid_logit(w)).mean())
    best = min(losses, key=lambda k: losses[k])
    return best, losses[best] < lead_only, {"valid_log_loss": losses, "valid_lead_only": lead_only}


class PairAffinity(EmbeddingAffinity):
    """Per-(rep, lead feature value) effects by penalised logistic regression, low-rank.

    Args:
        n_components: rank kept of the centred per-rep table (representations have
            ``n_components + 2`` columns; zero-padded where the table has lower rank).
        epochs: unused (the L-BFGS iteration cap is ``max_iter``); accepted so that
            every engine is built by ``make_engine`` with the same arguments.
        l2: L2 penalty of the rep bias and rep x feature weights; ``None`` picks it
            from ``l2_grid`` on held-out rows.
        l2_grid: candidate penalties when ``l2`` is ``None``.
        lead_l2: L2 penalty of the lead-only stage.
        valid_fraction: share of rows held out to pick ``l2``.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the held-out split.
        n_threads: BLAS threads while scoring.
    """

    format_name = _FORMAT
    """The ``format`` written into ``model.json`` and required on ``load``."""
    takes_offset = False
    """Whether :class:`RepAffinity` passes the global score's logit as ``offset``."""

    def __init__(
        self,
        n_components: int = 16,
        epochs: int = 0,
        l2: float | None = None,
        l2_grid: tuple[float, ...] = L2_GRID,
        lead_l2: float = 1.0,
        valid_fraction: float = 0.2,
        max_iter: int = 500,
        seed: int = 0,
        n_threads: int = 2,
    ) -> None:
        self.n_components = n_components
        self.epochs = epochs
        self.l2 = l2
        self.l2_grid = l2_grid
        self.lead_l2 = lead_l2
        self.valid_fraction = valid_fraction
        self.max_iter = max_iter
        self.seed = seed
        self.n_threads = n_threads

    # ------------------------------------------------------------------------- fitting

    def fit(
        self,
        rep_idx: np.ndarray,
        lead_idx: np.ndarray,
        label: np.ndarray,
        lead_features: sp.csr_matrix,
        rep_features: sp.csr_matrix | None = None,
        *,
        n_reps: int,
        offset: np.ndarray | None = None,
    ) -> Self:
        """Fit on interactions (label 1.0 won, 0.0 lost); replaces any earlier fit.

        ``rep_features`` is checked for shape but not used. ``offset`` (one logit per
        interaction, for example the global score's) replaces the lead-only stage (the
        intercept is then 0 and the lead bias only the table's mean row, which the
        combiner's centring removes). :class:`RepAffinity` passes it to engines whose
        ``takes_offset`` is true.

        Raises:
            ValueError: bad shapes, indices or labels (see ``check_interactions``), a
                non-positive ``n_components`` or penalty.
        """
        if self.n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")
        grid = (self.l2,) if self.l2 is not None else tuple(self.l2_grid)
        if not grid or min(grid) <= 0 or self.lead_l2 < 0:
            raise ValueError("penalties must be positive (l2, l2_grid) and lead_l2 >= 0")
        r, i, y = check_interactions(rep_idx, lead_idx, label, lead_features, n_reps)
        if rep_features is not None and rep_features.shape[0] != n_reps:
            raise ValueError(f"rep_features has {rep_features.shape[0]} rows; n_reps={n_reps}")
        x = sp.csr_matrix(lead_features, dtype=np.float64)[i]
        p = x.shape[1]
        if offset is None:
            lead_design = sp.hstack([x, sp.csr_matrix(np.ones((len(y), 1)))], format="csr")
            lead_pen = np.r_[np.full(p, self.lead_l2), 0.0]
            lead_w = fit_logistic(
                lead_design, y, np.zeros(len(y)), lead_pen, max_iter=self.max_iter
            )
            offset = lead_design @ lead_w
        else:
            offset = np.asarray(offset, dtype=np.float64).ravel()
            if offset.shape != y.shape:
                raise ValueError(f"offset has {offset.size} rows; interactions have {y.size}")
            lead_w = np.zeros(p + 1)
        rep_bias, table = self._fit_rep_part(x, r, y, offset, n_reps)
        self._set_state(lead_w[:p], float(lead_w[p]), rep_bias, table, r)
        return self

    def _fit_rep_part(
        self, x: sp.csr_matrix, r: np.ndarray, y: FloatArray, offset: FloatArray, n_reps: int
    ) -> tuple[FloatArray, FloatArray]:
        """Stage 2: the rep biases and the per-(rep, feature) table over the lead offset.

        Sets ``l2_`` (``inf`` when no penalty beat the lead-only model) and ``report_``.
        Returns the biases ``(n_reps,)`` and the table ``(n_reps, p)``.
        """
        p = x.shape[1]
        grid = (self.l2,) if self.l2 is not None else tuple(self.l2_grid)
        pairs = pair_design(x, r, n_reps)
        report: dict[str, Any] = {}
        if self.l2 is None:
            tr, va = split_rows(len(y), self.valid_fraction, None, self.seed)
            best, use, report = pick_penalty(
                grid,
                lambda lam, w0: fit_logistic(
                    pairs[tr], y[tr], offset[tr], np.full(pairs.shape[1], lam), w0, self.max_iter
                ),
                lambda w: offset[va] + pairs[va] @ w,
                y[va],
                offset[va],
            )
        else:
            best, use = float(self.l2), True
        w = (
            fit_logistic(pairs, y, offset, np.full(pairs.shape[1], best), max_iter=self.max_iter)
            if use
            else np.zeros(pairs.shape[1])
        )
        self.l2_ = float(best) if use else float("inf")
        self.report_ = report
        return w[:n_reps], w[n_reps:].reshape(n_reps, p)

    def _set_state(
        self,
        lead_w: FloatArray,
        intercept: float,
        rep_bias: FloatArray,
        table: FloatArray,
        rep: np.ndarray,
    ) -> None:
        """Centre the per-rep table over seen reps, truncate it, build the representations."""
        n_reps, p = table.shape
        seen = np.bincount(rep, minlength=n_reps) > 0
        mean_row = table[seen].mean(axis=0) if seen.any() else np.zeros(p)
        centred = np.where(seen[:, None], table - mean_row, 0.0)
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(self.n_components, len(s))
        rep_factors = np.zeros((n_reps, self.n_components))
        rep_factors[:, :k] = u[:, :k] * s[:k]
        lead_map = np.zeros((p, self.n_components))
        lead_map[:, :k] = vt[:k].T
        bias = np.where(seen, rep_bias, rep_bias[seen].mean() if seen.any() else 0.0)
        self.lead_map_ = lead_map.astype(np.float32)
        self.lead_weights_ = (lead_w + mean_row).astype(np.float32)
        self.intercept_ = float(intercept)
        ones = np.ones((n_reps, 1))
        self.rep_embeddings_ = np.hstack([rep_factors, ones, bias[:, None]]).astype(np.float32)

    # ------------------------------------------------------------------------- scoring

    def lead_embeddings(self, lead_features: sp.csr_matrix) -> FloatArray:
        """``[factors, lead_bias, 1]`` per lead, from its features only: ``(n, d + 2)``.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: the feature width differs from training.
        """
        require_fitted(self, "rep_embeddings_")
        if lead_features.shape[1] != self.lead_map_.shape[0]:
            raise ValueError(
                f"lead_features has {lead_features.shape[1]} columns; "
                f"the model was fitted on {self.lead_map_.shape[0]}"
            )
        x = sp.csr_matrix(lead_features, dtype=np.float32)
        out = np.empty((x.shape[0], self.n_components + 2), dtype=np.float32)
        out[:, : self.n_components] = x @ self.lead_map_
        out[:, self.n_components] = x @ self.lead_weights_ + np.float32(self.intercept_)
        out[:, self.n_components + 1] = 1.0
        return out

    # ------------------------------------------------------------------------- storage

    def _params(self) -> dict[str, Any]:
        params = init_params(self)
        params["l2_grid"] = list(self.l2_grid)
        return params

    def save(self, path: Path) -> None:
        """Write ``model.json`` and ``arrays.npz`` into ``path`` (no pickle).

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_embeddings_")
        meta = {
            "format": self.format_name,
            "params": self._params(),
            "intercept": self.intercept_,
            "l2": self.l2_ if np.isfinite(self.l2_) else None,
        }
        arrays = {
            "lead_map": self.lead_map_,
            "lead_weights": self.lead_weights_,
            "rep_embeddings": self.rep_embeddings_,
        }
        write_folder(Path(path), meta, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Rebuild a model written by ``save``.

        Raises:
            ModelFolderError: missing or foreign files.
        """
        meta, arrays = read_folder(Path(path), cls.format_name)
        params = dict(meta["params"])
        params["l2_grid"] = tuple(params["l2_grid"])
        obj = cls(**params)
        obj.intercept_ = float(meta["intercept"])
        obj.l2_ = float("inf") if meta["l2"] is None else float(meta["l2"])
        obj.report_ = {}
        obj.lead_map_ = arrays["lead_map"]
        obj.lead_weights_ = arrays["lead_weights"]
        obj.rep_embeddings_ = arrays["rep_embeddings"]
        return obj
