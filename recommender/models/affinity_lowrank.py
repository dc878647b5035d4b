"""Low-rank affinity engine: per-rep effects over lead features, pooled through a shared map.

The ``pair`` engine (``affinity_pair.py``) estimates one weight per (rep, lead feature
value), each from that rep's own rows, and truncates the table afterwards. With a few
hundred outcomes per rep and hundreds of feature values, most of those weights are noise
before truncation. This engine constrains the table during the fit instead::

    logit P(won | lead i, rep r) = offset_i + b_r + u_r . (W x_i)

``x_i`` is the lead's indicator row, ``W`` (``k x p``, ``k = n_components``) a map from
features to a few directions that *all* reps share, and ``u_r`` the rep's loadings on them.
``W`` is learned from every rep's outcomes together, so it finds which feature values
behave alike (for example which industries and sizes form one segment of the sales
team); each rep then needs only ``k`` numbers. The L2 penalty on ``U`` and ``W``,
``0.5 * l2 * sqrt(rows) * (|U|^2 + |W|^2)``, is the variational form of a trace-norm
penalty on the table ``U W`` (a convex multitask logistic regression when ``k`` is large
enough): it shrinks the table towards low rank and towards zero, with the weight picked
on held-out rows (and no table at all when no weight beats the offset alone). The
offset is the global score's logit where the combiner passes it (``takes_offset``), else
the lead-only logistic stage of ``pair``; the fit is L-BFGS (scipy) from a small seeded
random start.

Measured against LightFM and ``pair`` on simulated teams in ``bench/affinity_quality.py``
and ``bench/routing_capture.py`` (see the README's measured table).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from recommender.models.affinity import FloatArray, sigmoid, split_rows
from recommender.models.affinity_pair import PairAffinity, pick_penalty

_FORMAT = "leadrank.affinity.lowrank/1"
#: Candidate trace-norm weights, in units of the square root of the number of rows.
LOWRANK_GRID = (0.35, 0.25, 0.18)


def fit_lowrank(
    x: sp.csr_matrix,
    rep: np.ndarray,
    y: FloatArray,
    offset: FloatArray,
    n_reps: int,
    k: int,
    l2: float,
    start: FloatArray | None,
    *,
    bias_l2: float = 10.0,
    max_iter: int = 300,
    seed: int = 0,
) -> FloatArray:
    """Parameters ``[U.ravel(), W.ravel(), b]`` minimising the penalised log loss.

    Args:
        x: lead indicator rows of the interactions, ``(m, p)``.
        rep: rep index of each row, ``(m,)``.
        y: labels (1.0 won, 0.0 lost), ``(m,)``.
        offset: logit each row starts from, ``(m,)``.
        n_reps: number of reps (rows of ``U``).
        k: rank (columns of ``U``, rows of ``W``).
        l2: penalty on ``U`` and ``W`` in the loss summed over rows (absolute units).
        start: warm start (the same layout), or None for a seeded small random start.
        bias_l2: penalty on the rep biases ``b``.
        max_iter: L-BFGS iterations.
        seed: seed of the random start.

    Returns:
        float64 vector of ``n_reps * k + k * p + n_reps`` parameters.
    """
    m, p = x.shape
    xt = sp.csr_matrix(x.T)
    # rows summed per rep by a sparse product (np.add.at is many times slower)
    by_rep = sp.csr_matrix((np.ones(m), (rep, np.arange(m))), shape=(n_reps, m))
    nu, nw = n_reps * k, k * p

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        u, w, b = theta[:nu].reshape(n_reps, k), theta[nu : nu + nw].reshape(k, p), theta[nu + nw :]
        z = np.asarray(x @ w.T)
        ur = u[rep]
        eta = offset + b[rep] + np.einsum("ij,ij->i", ur, z)
        g = sigmoid(eta) - y
        grad_u = np.asarray(by_rep @ (g[:, None] * z))
        grad_w = np.asarray(xt @ (g[:, None] * ur)).T
        grad_b = np.asarray(by_rep @ g)
        loss = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        loss += 0.5 * l2 * float(np.sum(u * u) + np.sum(w * w)) + 0.5 * bias_l2 * float(b @ b)
        grad = np.concatenate(
            [(grad_u + l2 * u).ravel(), (grad_w + l2 * w).ravel(), grad_b + bias_l2 * b]
        )
        return loss, grad

    if start is None:
        rng = np.random.default_rng(seed)
        start = np.concatenate([rng.normal(0.0, 0.1, nu + nw), np.zeros(n_reps)])
    res = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return np.asarray(res.x, dtype=np.float64)


class LowRankAffinity(PairAffinity):
    """Per-rep effects ``b_r + u_r . (W x)`` with a shared low-rank map, trace-norm penalised.

    Args:
        n_components: rank ``k`` of the table (representations have ``k + 2`` columns).
        epochs: unused; accepted so that every engine is built by ``make_engine`` alike.
        l2: trace-norm weight in units of ``sqrt(rows)``; ``None`` picks it from
            ``l2_grid`` on held-out rows.
        l2_grid: candidate weights when ``l2`` is ``None``.
        lead_l2: L2 penalty of the lead-only stage (the offset).
        valid_fraction: share of rows held out to pick ``l2``.
        max_iter: L-BFGS iterations per fit.
        seed: seed of the held-out split and of the random start.
        n_threads: BLAS threads while scoring.
        grid_rows: above this many interactions, ``l2`` is picked on a seeded subsample
            of this size (then the model is fitted on every row).
    """

    format_name = _FORMAT
    takes_offset = True

    def __init__(
        self,
        n_components: int = 16,
        epochs: int = 0,
        l2: float | None = None,
        l2_grid: tuple[float, ...] = LOWRANK_GRID,
        lead_l2: float = 1.0,
        valid_fraction: float = 0.2,
        max_iter: int = 300,
        seed: int = 0,
        n_threads: int = 2,
        grid_rows: int = 60_000,
    ) -> None:
        self.grid_rows = grid_rows
        super().__init__(
            n_components=n_components,
            epochs=epochs,
            l2=l2,
            l2_grid=l2_grid,
            lead_l2=lead_l2,
            valid_fraction=valid_fraction,
            max_iter=max_iter,
            seed=seed,
            n_threads=n_threads,
        )

    def _fit_rep_part(
        self, x: sp.csr_matrix, r: np.ndarray, y: FloatArray, offset: FloatArray, n_reps: int
    ) -> tuple[FloatArray, FloatArray]:
        """Stage 2: ``b`` and the table ``U W`` over the lead offset (see the module doc)."""
        k, p = self.n_components, x.shape[1]
        nu, nw = n_reps * k, k * p
        report: dict[str, Any] = {}

        def fit(rows: np.ndarray, weight: float, start: FloatArray | None) -> FloatArray:
            absolute = weight * float(np.sqrt(rows.size))
            return fit_lowrank(
                x[rows], r[rows], y[rows], offset[rows], n_reps, k, absolute, start,
                max_iter=self.max_iter, seed=self.seed,
            )  # fmt: skip

        def logit(theta: FloatArray, rows: np.ndarray) -> FloatArray:
            u, w = theta[:nu].reshape(n_reps, k), theta[nu : nu + nw].reshape(k, p)
            z = np.asarray(x[rows] @ w.T)
            return np.asarray(
                offset[rows] + theta[nu + nw :][r[rows]] + np.einsum("ij,ij->i", u[r[rows]], z)
            )

        preset = getattr(self, "preset_l2_", None)
        if self.l2 is None and preset is not None:  # tuned by another fit (adopt_tuning)
            best, use = float(preset), True
            report = dict(getattr(self, "preset_report_", {}))
        elif self.l2 is None:
            tr, va = split_rows(len(y), self.valid_fraction, None, self.seed)
            if len(y) > self.grid_rows:  # pick the weight on a seeded subsample: faster,
                keep = self.grid_rows / len(y)  # and the weight scales with sqrt(rows)
                pick = np.random.default_rng(self.seed + 1)
                tr = np.sort(pick.choice(tr, round(len(tr) * keep), replace=False))
                va = np.sort(pick.choice(va, round(len(va) * keep), replace=False))
            best, use, report = pick_penalty(
                tuple(self.l2_grid),
                # never warm-started: a strong penalty collapses U and W to zero, a
                # stationary point of the bilinear form that no weaker penalty leaves
                lambda lam, _start: fit(tr, lam, None),
                lambda theta: logit(theta, va),
                y[va],
                offset[va],
            )
        else:
            best, use = float(self.l2), True
        self.l2_ = float(best) if use else float("inf")
        self.report_ = report
        if not use:
            return np.zeros(n_reps), np.zeros((n_reps, p))
        theta = fit(np.arange(len(y)), best, None)
        u, w = theta[:nu].reshape(n_reps, k), theta[nu : nu + nw].reshape(k, p)
        return theta[nu + nw :], u @ w

    def adopt_tuning(self, other: LowRankAffinity) -> None:
        """Use the weight ``other`` picked on held-out rows instead of picking one again.

        For a refit on more rows (``RepAffinity``): the grid is not searched twice. The
        weight stays out of the constructor parameters (a saved model still says it was
        tuned, not given), and ``report_`` keeps ``other``'s held-out losses. Nothing
        changes when ``other`` was given its weight or found none worth keeping.
        """
        if other.l2 is None and np.isfinite(getattr(other, "l2_", np.inf)):
            self.preset_l2_ = float(other.l2_)
            self.preset_report_ = dict(other.report_)
