"""Per-rep affinity: which rep converts which lead, on top of the global lead score.

An *engine* (LightFM or implicit ALS, see ``affinity_lightfm`` / ``affinity_implicit``)
learns a rep representation and a lead representation built from lead features alone, so
a lead never seen in training (every new lead) is scored from its features: cold start.
The raw affinity of (lead, rep) is the dot product of the two representations, so a whole
catalogue is scored with one matrix product, in row chunks.

:class:`RepAffinity` turns raw affinity into a logit adjustment of the global score::

    logit P(won | lead, rep) = base_logit(lead) + strength * shrink_r * centred(lead, rep)

- ``centred`` subtracts, for each lead, the mean affinity over the reps seen in training,
  so only the *relative* rep differences move the global score.
- ``shrink_r = n_r / (n_r + k)`` pulls reps with little history to zero; ``k`` is fitted
  by empirical Bayes (method of moments on per-(rep, feature value) residuals).
- ``strength`` is a one-parameter logistic regression of the label on the adjustment with
  ``base_logit`` as offset, fitted on a held-out (time-ordered when ``order`` is given)
  slice with an engine trained on the rest. It is set to 0 unless it is positive and
  significant (z >= ``min_z``), so on data with no per-rep signal the result *is* the
  global score. Reps never seen in training get adjustment 0 (the global score).

:func:`placebo_gain` repeats the fit with rep labels permuted within the training rows and
compares the real validation gain with the placebo's, with bootstrap intervals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from recommender.errors import ModelFolderError, NotFittedError
from recommender.models.base import init_params

FloatArray = np.ndarray
ENGINES = ("lightfm", "implicit", "pair", "lowrank")
_FORMAT = "leadrank.affinity/1"


class AffinityModel(Protocol):
    """What every affinity engine offers (integer indices in, arrays out).

    ``affinity(X)`` equals ``lead_embeddings(X) @ rep_embeddings().T``: both
    representations have the same width (``n_components`` factors plus two bias columns:
    leads ``[factors, lead_bias, 1]``, reps ``[factors, 1, rep_bias]``).
    """

    n_components: int

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
        """Learn from interactions (label 1.0 won, 0.0 lost); returns self."""
        ...

    def lead_embeddings(self, lead_features: sp.csr_matrix) -> FloatArray:
        """Representation of leads from their features alone: ``(n, n_components + 2)``."""
        ...

    def rep_embeddings(self) -> FloatArray:
        """Representation of reps: ``(n_reps, n_components + 2)``."""
        ...

    def affinity(
        self,
        lead_features: sp.csr_matrix,
        rep_idx: np.ndarray | None = None,
        *,
        chunk_size: int = 65536,
    ) -> FloatArray:
        """Raw scores ``(n_leads, n_selected_reps)`` by one GEMM per row chunk."""
        ...

    def save(self, path: Path) -> None:
        """Write the fitted model into folder ``path`` (JSON + npz)."""
        ...

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by ``save``."""
        ...


class EmbeddingAffinity:
    """What both engines share: raw affinity is ``lead_embeddings(X) @ rep_embeddings().T``.

    Subclasses set ``rep_embeddings_`` and ``n_threads`` in ``fit`` and define
    ``lead_embeddings``.
    """

    n_threads: int
    rep_embeddings_: FloatArray

    def lead_embeddings(self, lead_features: sp.csr_matrix) -> FloatArray:
        """Representation of leads from their features alone: ``(n, d + 2)``."""
        raise NotImplementedError

    def rep_embeddings(self) -> FloatArray:
        """``[factors, 1, rep_bias]`` per rep: ``(n_reps, d + 2)``.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_embeddings_")
        return self.rep_embeddings_

    def affinity(
        self,
        lead_features: sp.csr_matrix,
        rep_idx: np.ndarray | None = None,
        *,
        chunk_size: int = 65536,
    ) -> FloatArray:
        """Raw scores ``(n_leads, n_selected_reps)`` by one GEMM per row chunk.

        Raises:
            NotFittedError: before ``fit``.
        """
        reps = self.rep_embeddings()
        if rep_idx is not None:
            reps = reps[np.asarray(rep_idx, dtype=np.int64)]
        with blas_threads(self.n_threads, chunk_work(lead_features, chunk_size, reps)):
            return chunked_scores(lead_features, self.lead_embeddings, reps, chunk_size=chunk_size)


def make_engine(
    engine: str, *, n_components: int, epochs: int, seed: int, n_threads: int
) -> AffinityModel:
    """Build an unfitted engine by name (``lightfm`` or ``implicit``).

    Raises:
        ValueError: unknown engine name.
    """
    if engine == "lightfm":
        from recommender.models.affinity_lightfm import LightFMAffinity

        return LightFMAffinity(
            n_components=n_components, epochs=epochs, seed=seed, n_threads=n_threads
        )
    if engine == "implicit":
        from recommender.models.affinity_implicit import ImplicitAffinity

        return ImplicitAffinity(
            n_components=n_components, iterations=epochs, seed=seed, n_threads=n_threads
        )
    if engine == "pair":
        from recommender.models.affinity_pair import PairAffinity

        return PairAffinity(n_components=n_components, seed=seed, n_threads=n_threads)
    if engine == "lowrank":
        from recommender.models.affinity_lowrank import LowRankAffinity

        return LowRankAffinity(n_components=n_components, seed=seed, n_threads=n_threads)
    raise ValueError(f"unknown affinity engine '{engine}'; expected one of {ENGINES}")


def engine_class(engine: str) -> Any:
    """Return the engine class registered under ``engine`` (for ``load``)."""
    if engine == "lightfm":
        from recommender.models.affinity_lightfm import LightFMAffinity

        return LightFMAffinity
    if engine == "implicit":
        from recommender.models.affinity_implicit import ImplicitAffinity

        return ImplicitAffinity
    if engine == "pair":
        from recommender.models.affinity_pair import PairAffinity

        return PairAffinity
    if engine == "lowrank":
        from recommender.models.affinity_lowrank import LowRankAffinity

        return LowRankAffinity
    raise ModelFolderError(f"unknown affinity engine '{engine}'")


# ----------------------------------------------------------------------------- utilities


def check_interactions(
    rep_idx: np.ndarray,
    lead_idx: np.ndarray,
    label: np.ndarray,
    lead_features: sp.spmatrix,
    n_reps: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate interaction arrays; return them as int64, int64, float64.

    Raises:
        ValueError: lengths differ, an index is out of range, a label is not 0/1, or
            there are no interactions.
    """
    r = np.asarray(rep_idx, dtype=np.int64).ravel()
    i = np.asarray(lead_idx, dtype=np.int64).ravel()
    y = np.asarray(label, dtype=np.float64).ravel()
    if not (len(r) == len(i) == len(y)):
        raise ValueError(f"rep_idx, lead_idx, label lengths differ: {len(r)}, {len(i)}, {len(y)}")
    if len(r) == 0:
        raise ValueError("no interactions to fit on")
    if r.min() < 0 or r.max() >= n_reps:
        raise ValueError(f"rep_idx must lie in [0, {n_reps}); got [{r.min()}, {r.max()}]")
    if i.min() < 0 or i.max() >= lead_features.shape[0]:
        raise ValueError(
            f"lead_idx must lie in [0, {lead_features.shape[0]}) (rows of lead_features)"
        )
    if not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError("label must be 1.0 (won) or 0.0 (lost); drop open outcomes first")
    return r, i, y


def row_normalise(x: sp.spmatrix) -> sp.csr_matrix:
    """Scale each row of a non-negative sparse matrix to sum 1 (empty rows stay 0), float32."""
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    sums = np.asarray(abs(x).sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0).astype(np.float32)
    x.data *= np.repeat(inv, np.diff(x.indptr))  # row i's entries times inv[i]
    return x


def iter_chunked_scores(
    lead_features: sp.spmatrix,
    embed: Callable[[sp.csr_matrix], FloatArray],
    right: FloatArray,
    *,
    chunk_size: int = 65536,
) -> Iterator[tuple[slice, FloatArray]]:
    """Yield ``(rows, embed(X[rows]) @ right.T)`` for consecutive row chunks of X.

    Never holds more than one ``(chunk_size, n_right)`` block, so 1M leads x 1,000 reps
    streams in bounded memory.

    Raises:
        ValueError: ``chunk_size`` < 1.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    x = sp.csr_matrix(lead_features)
    right_t = np.ascontiguousarray(right, dtype=np.float32).T
    for start in range(0, x.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, x.shape[0]))
        yield rows, embed(x[rows]) @ right_t


def chunked_scores(
    lead_features: sp.spmatrix,
    embed: Callable[[sp.csr_matrix], FloatArray],
    right: FloatArray,
    *,
    chunk_size: int = 65536,
) -> FloatArray:
    """Return ``embed(X) @ right.T`` as float32, computed chunk by chunk into one array.

    The lead representation of only one chunk exists at a time; the output is the only
    full-size allocation.
    """
    x = sp.csr_matrix(lead_features)
    right_t = np.ascontiguousarray(right, dtype=np.float32).T
    out = np.empty((x.shape[0], right_t.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], max(chunk_size, 1)):
        stop = min(start + chunk_size, x.shape[0])
        np.matmul(embed(x[start:stop]), right_t, out=out[start:stop])
    return out


def sigmoid(z: FloatArray) -> FloatArray:
    """Logistic function, numerically stable, same dtype as ``z``."""
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def log_loss_rows(y: FloatArray, logit: FloatArray) -> FloatArray:
    """Per-row binary log loss (nats) of labels ``y`` under ``logit``."""
    z = np.asarray(logit, dtype=np.float64)
    out: FloatArray = np.logaddexp(0.0, z) - y * z
    return out


def fit_strength(
    y: FloatArray, offset: FloatArray, z: FloatArray, *, max_iter: int = 50
) -> tuple[float, float]:
    """Maximum-likelihood slope of ``logit = offset + beta * z`` and its standard error.

    Newton's method on one parameter, on ``z`` scaled to unit root mean square so that
    the damping of a step (at most 5 per iteration) means the same whatever the scale of
    ``z`` (a heavily shrunk adjustment needs a slope in the thousands); the slope and its
    error are returned on the scale of ``z``. Returns ``(0.0, inf)`` where ``z`` carries
    no information (all zero).
    """
    z = np.asarray(z, dtype=np.float64)
    if not np.any(z != 0.0):
        return 0.0, float("inf")
    scale = float(np.sqrt(np.mean(z * z)))
    u = z / scale
    beta, hess = 0.0, 1.0
    for _ in range(max_iter):
        p = sigmoid(offset + beta * u)
        grad = float(np.dot(u, y - p))
        hess = float(np.dot(u * u, p * (1.0 - p))) + 1e-9
        step = float(np.clip(grad / hess, -5.0, 5.0))
        beta += step
        if abs(step) < 1e-8:
            break
    return beta / scale, 1.0 / (np.sqrt(hess) * scale)


def empirical_bayes_k(
    rep_idx: np.ndarray,
    rows_features: sp.spmatrix,
    label: FloatArray,
    base_logit: FloatArray,
    n_reps: int,
) -> tuple[float, float]:
    """Fit the shrinkage ``k`` of ``n_r / (n_r + k)`` by empirical Bayes.

    Per (rep, feature value) cell, the mean residual ``y - sigmoid(base_logit)`` minus the
    feature value's own mean residual estimates a per-rep effect; its spread beyond the
    sampling noise estimates the prior variance ``tau2`` (probability scale). With
    per-row noise ``s2 = mean p(1-p)`` and a cell holding a share ``s`` of a rep's rows,
    the cell posterior weight is ``n_r / (n_r + s2 / (tau2 * s))``.

    Returns:
        ``(k, tau2)``; ``k`` is clipped to ``[1, 1e6]`` (1e6 where ``tau2`` is 0).
    """
    m = len(rep_idx)
    xb = sp.csr_matrix(rows_features, dtype=np.float64, copy=True)
    xb.data[:] = 1.0
    p = sigmoid(np.asarray(base_logit, dtype=np.float64))
    res, w = label - p, p * (1.0 - p)
    by_rep = sp.csr_matrix((np.ones(m), (rep_idx, np.arange(m))), shape=(n_reps, m))
    n_cell = (by_rep @ xb).toarray()
    e_cell = (by_rep @ sp.csr_matrix(xb.multiply(res[:, None]))).toarray()
    w_cell = (by_rep @ sp.csr_matrix(xb.multiply(w[:, None]))).toarray()
    n_col = n_cell.sum(axis=0)
    col_mean = np.divide(e_cell.sum(axis=0), n_col, out=np.zeros_like(n_col), where=n_col > 0)
    e_cell -= n_cell * col_mean[None, :]
    ok = n_cell > 0
    tau2 = float(
        max((e_cell[ok] ** 2 / n_cell[ok] - w_cell[ok] / n_cell[ok]).sum() / n_cell[ok].sum(), 0)
    )
    share = n_col / m
    s_bar = float((share**2).sum() / max(share.sum(), 1e-12))
    s2 = float(w.mean())
    if tau2 <= 0.0 or s_bar <= 0.0:
        return 1e6, 0.0
    return float(np.clip(s2 / (tau2 * s_bar), 1.0, 1e6)), tau2


def _offset_kw(engine: AffinityModel, offset: FloatArray) -> dict[str, FloatArray]:
    """``{"offset": offset}`` for an engine that fits over an offset, else nothing."""
    return {"offset": offset} if getattr(engine, "takes_offset", False) else {}


def split_rows(
    m: int, fraction: float, order: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``m`` rows into (train, validation) index arrays.

    With ``order`` (for example assignment time) the validation rows are the last
    ``fraction`` in that order (no look-ahead); without it a seeded random share.
    """
    if order is not None:
        idx = np.argsort(np.asarray(order), kind="stable")
    else:
        idx = np.random.default_rng(seed).permutation(m)
    n_valid = round(m * fraction)
    return np.sort(idx[: m - n_valid]), np.sort(idx[m - n_valid :])


def write_folder(path: Path, meta: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
    """Write ``meta`` as ``model.json`` and ``arrays`` as ``arrays.npz`` into ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / "arrays.npz", **arrays)  # type: ignore[arg-type]
    (path / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_folder(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, FloatArray]]:
    """Read a folder written by :func:`write_folder` and check its ``format`` is ``kind``.

    Raises:
        ModelFolderError: missing files or another format.
    """
    try:
        meta = json.loads((path / "model.json").read_text())
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: cannot read affinity model: {exc}") from exc
    if meta.get("format") != kind:
        raise ModelFolderError(f"{path}: format {meta.get('format')!r}, expected {kind!r}")
    return meta, arrays


def csr_to_arrays(prefix: str, x: sp.csr_matrix) -> dict[str, FloatArray]:
    """Flatten a CSR matrix into npz-storable arrays named ``prefix_*``."""
    return {
        f"{prefix}_data": x.data,
        f"{prefix}_indices": x.indices,
        f"{prefix}_indptr": x.indptr,
        f"{prefix}_shape": np.asarray(x.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, arrays: dict[str, FloatArray]) -> sp.csr_matrix:
    """Rebuild a CSR matrix stored by :func:`csr_to_arrays`."""
    shape = tuple(int(v) for v in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=shape,
    )


def require_fitted(obj: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``obj`` has ``attribute`` set."""
    if getattr(obj, attribute, None) is None:
        raise NotFittedError(f"{type(obj).__name__} is not fitted; call fit first")


_CONTROLLER: list[ThreadpoolController] = []


SMALL_PRODUCT = 1 << 24
"""Below this many multiply-adds a product runs on one BLAS thread: waking a second
thread costs more than the product, and up to a scheduler tick on a busy machine (one
lead over 1,000 reps took 8 ms with two threads, 0.03 ms with one)."""


def chunk_work(lead_features: sp.spmatrix, chunk_size: int, rep_side: np.ndarray) -> int:
    """Multiply-adds of one chunk's product in :func:`chunked_scores` (the ``work`` of
    :func:`blas_threads`): rows of a chunk times the rep-side matrix's size."""
    return int(min(lead_features.shape[0], chunk_size) * rep_side.size)


def blas_threads(n_threads: int, work: int | None = None) -> Any:
    """Context manager limiting BLAS threads to ``n_threads`` while scoring.

    Args:
        work: multiply-adds of the product about to run; under :data:`SMALL_PRODUCT`
            one thread is used whatever ``n_threads`` says.

    The library scan of threadpoolctl runs once per process, not per call, so small
    scoring calls stay cheap.
    """
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    if work is not None and work < SMALL_PRODUCT:
        n_threads = 1
    return _CONTROLLER[0].limit(limits=n_threads, user_api="blas")


__all__ = [
    "ENGINES",
    "AffinityModel",
    "RepAffinity",
    "check_interactions",
    "chunked_scores",
    "empirical_bayes_k",
    "fit_strength",
    "iter_chunked_scores",
    "log_loss_rows",
    "make_engine",
    "placebo_gain",
    "row_normalise",
]


# ----------------------------------------------------------------------------- combiner


class RepAffinity:
    """Global score adjusted by per-rep affinity, shrunk to zero where history is thin.

    ``logit P(won | lead, rep) = base_logit + strength_ * shrink_r * centred_affinity``
    (see the module docstring). ``strength_`` is 0 unless the engine's affinity improves
    held-out log loss significantly, so the result is never systematically worse than the
    global score; reps never seen in training get adjustment 0.

    Args:
        engine: ``lightfm`` (default) or ``implicit``.
        shrinkage_prior: ``k`` of ``n_r / (n_r + k)``; ``None`` fits it by empirical Bayes.
        n_components: latent factors of the engine.
        epochs: engine passes (LightFM epochs, ALS iterations).
        seed: random seed of the engine and of the validation split.
        n_threads: training and scoring threads.
        valid_fraction: share of rows held out to fit ``strength_``.
        min_z: z statistic ``strength / se`` required to keep a non-zero strength.
        refit: after fitting ``strength_``, refit the engine on all rows.
        rescale: with ``refit``, scale ``strength_`` so that the refitted engine's
            adjustment has the spread (standard deviation over the validation rows) of the
            one the strength was fitted on: a refit on more rows changes the engine's
            scale, and a strength fitted for one scale overshoots on the other.
    """

    def __init__(
        self,
        engine: str = "lightfm",
        *,
        shrinkage_prior: float | None = None,
        n_components: int = 16,
        epochs: int = 30,
        seed: int = 0,
        n_threads: int = 2,
        valid_fraction: float = 0.2,
        min_z: float = 2.0,
        refit: bool = True,
        rescale: bool = True,
    ) -> None:
        self.engine = engine
        self.shrinkage_prior = shrinkage_prior
        self.n_components = n_components
        self.epochs = epochs
        self.seed = seed
        self.n_threads = n_threads
        self.valid_fraction = valid_fraction
        self.min_z = min_z
        self.refit = refit
        self.rescale = rescale

    def _new_engine(self) -> AffinityModel:
        return make_engine(
            self.engine,
            n_components=self.n_components,
            epochs=self.epochs,
            seed=self.seed,
            n_threads=self.n_threads,
        )

    def _shrink(self, counts: np.ndarray, k: float) -> FloatArray:
        out: FloatArray = counts / (counts + k)
        return out

    def _rep_weights(self, engine: AffinityModel, shrink: FloatArray) -> FloatArray:
        """Rep side of the adjustment GEMM: ``shrink_r * (rep_r - mean of seen reps)``."""
        reps = engine.rep_embeddings().astype(np.float64)
        seen = shrink > 0
        out = np.zeros_like(reps)
        if seen.any():
            out[seen] = shrink[seen, None] * (reps[seen] - reps[seen].mean(axis=0))
        return out

    def fit(
        self,
        rep_idx: np.ndarray,
        lead_idx: np.ndarray,
        label: np.ndarray,
        base_logit: np.ndarray,
        lead_features: sp.csr_matrix,
        rep_features: sp.csr_matrix | None = None,
        *,
        n_reps: int,
        order: np.ndarray | None = None,
    ) -> Self:
        """Fit engine, shrinkage and strength; returns self (replaces any earlier fit).

        Args:
            rep_idx, lead_idx, label: interactions (label 1.0 won, 0.0 lost).
            base_logit: the global score's logit of each interaction row (offset).
            lead_features: rows indexed by ``lead_idx``.
            rep_features: rep attributes, or ``None``.
            n_reps: number of reps (rows of the output's rep axis).
            order: per-row sort key (assignment time); the latest rows validate.

        Raises:
            ValueError: bad shapes, indices or labels.
        """
        r, i, y = check_interactions(rep_idx, lead_idx, label, lead_features, n_reps)
        base = np.asarray(base_logit, dtype=np.float64).ravel()
        if len(base) != len(r):
            raise ValueError(f"base_logit has {len(base)} rows; interactions have {len(r)}")
        x = sp.csr_matrix(lead_features)
        tr, va = split_rows(len(r), self.valid_fraction, order, self.seed)
        report: dict[str, Any] = {"n_rows": len(r), "n_valid": len(va)}
        strength, z_stat = 0.0, 0.0
        z = np.zeros(0)
        eng: AffinityModel | None = None
        if len(va) >= 20 and len(tr) >= 20 and 0 < y[va].sum() < len(va) and y[tr].std() > 0:
            eng = self._new_engine()
            eng = eng.fit(
                r[tr], i[tr], y[tr], x, rep_features, n_reps=n_reps, **_offset_kw(eng, base[tr])
            )
            k_tr = self._k(r[tr], x[i[tr]], y[tr], base[tr], n_reps)
            weights = self._rep_weights(
                eng, self._shrink(np.bincount(r[tr], minlength=n_reps), k_tr)
            )
            z = np.einsum("ij,ij->i", eng.lead_embeddings(x[i[va]]), weights[r[va]])
            beta, se = fit_strength(y[va], base[va], z)
            z_stat = beta / se
            strength = beta if (beta > 0 and z_stat >= self.min_z) else 0.0
            report.update(
                valid_log_loss_base=float(log_loss_rows(y[va], base[va]).mean()),
                valid_log_loss_affinity=float(log_loss_rows(y[va], base[va] + beta * z).mean()),
                fitted_slope=float(beta),
            )
        fit_rows = np.arange(len(r)) if self.refit else tr
        if eng is not None and not self.refit:
            self.engine_ = eng  # already fitted on exactly these rows
        else:
            engine = self._new_engine()
            if eng is not None and hasattr(engine, "adopt_tuning"):  # reuse what was tuned
                engine.adopt_tuning(eng)
            self.engine_ = engine.fit(
                r[fit_rows],
                i[fit_rows],
                y[fit_rows],
                x,
                rep_features,
                n_reps=n_reps,
                **_offset_kw(engine, base[fit_rows]),
            )
        self.counts_ = np.bincount(r[fit_rows], minlength=n_reps).astype(np.float64)
        self.k_, self.tau2_ = self._k_tau(
            r[fit_rows], x[i[fit_rows]], y[fit_rows], base[fit_rows], n_reps
        )
        self.shrink_ = self._shrink(self.counts_, self.k_)
        if self.refit and self.rescale and strength > 0.0:
            # The refitted engine (more rows) has another scale than the one the strength
            # was fitted for: keep the spread of the validated adjustment instead.
            full = self._rep_weights(self.engine_, self.shrink_)
            z_full = np.einsum("ij,ij->i", self.engine_.lead_embeddings(x[i[va]]), full[r[va]])
            if np.std(z_full) > 0:
                strength *= float(np.std(z) / np.std(z_full))
            report["rescaled_by"] = float(np.std(z) / max(np.std(z_full), 1e-300))
        self.strength_ = float(strength)
        self.rep_weights_ = (strength * self._rep_weights(self.engine_, self.shrink_)).astype(
            np.float32
        )
        self.noise_scale_ = float(np.mean(np.clip(sigmoid(base) * (1 - sigmoid(base)), 1e-3, None)))
        report.update(
            n_reps_seen=int((self.counts_ > 0).sum()),
            strength=self.strength_,
            z=float(z_stat),
            k=self.k_,
            tau2=self.tau2_,
            rep_counts=self.counts_.astype(int).tolist(),
        )
        self.report_ = report
        return self

    def _k(
        self, r: np.ndarray, rows: sp.spmatrix, y: FloatArray, base: FloatArray, n: int
    ) -> float:
        return self._k_tau(r, rows, y, base, n)[0]

    def _k_tau(
        self, r: np.ndarray, rows: sp.spmatrix, y: FloatArray, base: FloatArray, n: int
    ) -> tuple[float, float]:
        if self.shrinkage_prior is not None:
            return float(self.shrinkage_prior), empirical_bayes_k(r, rows, y, base, n)[1]
        return empirical_bayes_k(r, rows, y, base, n)

    # ------------------------------------------------------------------------- scoring

    def iter_logit_adjustment(
        self, lead_features: sp.csr_matrix, *, chunk_size: int = 65536
    ) -> Iterator[tuple[slice, FloatArray]]:
        """Yield ``(rows, adjustment)`` blocks of :meth:`predict_logit_adjustment`.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_weights_")
        work = chunk_work(lead_features, chunk_size, self.rep_weights_)
        with blas_threads(self.n_threads, work):
            yield from iter_chunked_scores(
                lead_features,
                self.engine_.lead_embeddings,
                self.rep_weights_,
                chunk_size=chunk_size,
            )

    def predict_logit_adjustment(
        self, lead_features: sp.csr_matrix, *, chunk_size: int = 65536
    ) -> FloatArray:
        """Additive logit adjustment ``(n_leads, n_reps)``, float32; unseen reps get 0.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_weights_")
        work = chunk_work(lead_features, chunk_size, self.rep_weights_)
        with blas_threads(self.n_threads, work):
            return chunked_scores(
                lead_features,
                self.engine_.lead_embeddings,
                self.rep_weights_,
                chunk_size=chunk_size,
            )

    def pair_logit_adjustment(
        self, lead_features: sp.csr_matrix, rep_idx: np.ndarray
    ) -> FloatArray:
        """Adjustment of row ``j`` for the pair (lead ``j``, rep ``rep_idx[j]``): ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: lengths differ or a rep index is out of range.
        """
        require_fitted(self, "rep_weights_")
        reps = np.asarray(rep_idx, dtype=np.int64).ravel()
        if len(reps) != lead_features.shape[0]:
            raise ValueError(
                f"rep_idx has {len(reps)} rows; lead_features has {lead_features.shape[0]}"
            )
        if len(reps) and (reps.min() < 0 or reps.max() >= len(self.counts_)):
            raise ValueError(f"rep_idx must lie in [0, {len(self.counts_)})")
        emb = self.engine_.lead_embeddings(sp.csr_matrix(lead_features))
        out: FloatArray = np.einsum("ij,ij->i", emb, self.rep_weights_[reps])
        return out

    def iter_proba(
        self, base_logit: np.ndarray, lead_features: sp.csr_matrix, chunk_size: int = 65536
    ) -> Iterator[FloatArray]:
        """Yield consecutive row blocks of :meth:`predict_proba` (bounded memory).

        Raises:
            NotFittedError: before ``fit``.
            ValueError: ``base_logit`` length differs from the number of leads.
        """
        base = np.asarray(base_logit, dtype=np.float32).ravel()
        if len(base) != lead_features.shape[0]:
            raise ValueError(
                f"base_logit has {len(base)} rows; lead_features has {lead_features.shape[0]}"
            )
        for rows, adj in self.iter_logit_adjustment(lead_features, chunk_size=chunk_size):
            adj += base[rows, None]  # in place: sigmoid(z) = (1 + tanh(z / 2)) / 2
            adj *= 0.5
            np.tanh(adj, out=adj)
            adj += 1.0
            adj *= 0.5
            yield adj

    def predict_proba(self, base_logit: np.ndarray, lead_features: sp.csr_matrix) -> FloatArray:
        """P(won | lead, rep) as ``(n_leads, n_reps)`` float32.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: ``base_logit`` length differs from the number of leads.
        """
        blocks = list(self.iter_proba(base_logit, lead_features))
        if not blocks:
            return np.zeros((0, len(self.counts_)), dtype=np.float32)
        return np.vstack(blocks)

    def uncertainty(self, lead_features: sp.csr_matrix) -> FloatArray:
        """Posterior standard deviation of the logit adjustment, ``(n_leads, n_reps)``.

        Empirical-Bayes normal model per rep: ``tau * sqrt(1 - shrink_r)`` with ``tau`` the
        prior spread of per-rep effects on the logit scale (a rep never seen gets the full
        prior spread; a rep with long history nearly 0). For Thompson sampling in routing.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_weights_")
        tau = np.sqrt(self.tau2_) / self.noise_scale_
        sd = (tau * np.sqrt(1.0 - self.shrink_)).astype(np.float32)
        return np.broadcast_to(sd, (lead_features.shape[0], len(sd))).copy()

    # ------------------------------------------------------------------------- storage

    def _params(self) -> dict[str, Any]:
        return init_params(self)

    def save(self, path: Path) -> None:
        """Write the combiner (``model.json``, ``arrays.npz``) and its engine (``engine/``).

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rep_weights_")
        path = Path(path)
        self.engine_.save(path / "engine")
        meta = {
            "format": _FORMAT,
            "params": self._params(),
            "strength": self.strength_,
            "k": self.k_,
            "tau2": self.tau2_,
            "noise_scale": self.noise_scale_,
            "report": self.report_,
        }
        write_folder(path, meta, {"counts": self.counts_, "rep_weights": self.rep_weights_})

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a combiner written by ``save``.

        Raises:
            ModelFolderError: missing or foreign files.
        """
        path = Path(path)
        meta, arrays = read_folder(path, _FORMAT)
        obj = cls(**meta["params"])
        obj.engine_ = engine_class(obj.engine).load(path / "engine")
        obj.strength_, obj.k_, obj.tau2_ = meta["strength"], meta["k"], meta["tau2"]
        obj.noise_scale_, obj.report_ = meta["noise_scale"], meta["report"]
        obj.counts_, obj.rep_weights_ = arrays["counts"], arrays["rep_weights"]
        obj.shrink_ = obj._shrink(obj.counts_, obj.k_)
        return obj


# ----------------------------------------------------------------------------- placebo


def _bootstrap_mean_ci(
    values: FloatArray, n_boot: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def placebo_gain(
    model: RepAffinity,
    rep_idx: np.ndarray,
    lead_idx: np.ndarray,
    label: np.ndarray,
    base_logit: np.ndarray,
    lead_features: sp.csr_matrix,
    rep_features: sp.csr_matrix | None = None,
    *,
    n_reps: int,
    order: np.ndarray | None = None,
    valid_fraction: float = 0.2,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-rep gain of the real model next to a placebo trained on permuted rep labels.

    The rows split into training and validation (the latest ``valid_fraction`` by
    ``order``, else a seeded random share). ``model`` (its parameters; it is cloned, not
    modified) is fitted on the training rows once as given and once with ``rep_idx``
    permuted among the training rows (each rep keeps its count). Gain = mean per-row log
    loss of ``base_logit`` minus that of the model, on the validation rows with their
    real reps (nats per row; positive is better). Intervals: 95 % percentile bootstrap
    over validation rows. ``significant`` is true when the real interval lies above the
    placebo's and above zero.

    Returns:
        ``{"real_gain", "real_ci", "placebo_gain", "placebo_ci", "significant",
        "n_train", "n_valid", "real_strength", "placebo_strength"}``.
    """
    r, i, y = check_interactions(rep_idx, lead_idx, label, lead_features, n_reps)
    base = np.asarray(base_logit, dtype=np.float64).ravel()
    x = sp.csr_matrix(lead_features)
    tr, va = split_rows(len(r), valid_fraction, order, seed)
    rng = np.random.default_rng(seed)
    tr_order = None if order is None else np.asarray(order)[tr]
    out: dict[str, Any] = {"n_train": len(tr), "n_valid": len(va)}
    for name, reps in (("real", r[tr]), ("placebo", rng.permutation(r[tr]))):
        fitted = RepAffinity(**model._params()).fit(
            reps, i[tr], y[tr], base[tr], x, rep_features, n_reps=n_reps, order=tr_order
        )
        adj = fitted.pair_logit_adjustment(x[i[va]], r[va])
        gain = log_loss_rows(y[va], base[va]) - log_loss_rows(y[va], base[va] + adj)
        out[f"{name}_gain"] = float(gain.mean())
        out[f"{name}_ci"] = list(_bootstrap_mean_ci(gain, n_boot, rng))
        out[f"{name}_strength"] = fitted.strength_
    out["significant"] = bool(out["real_ci"][0] > max(out["placebo_ci"][1], 0.0))
    return out
