"""Lookalike search: the accounts (or leads) nearest a set of seeds in an embedding space.

A marketer picks seeds (best customers, a rep's wins, a segment) and asks for the ``k``
most similar prospects. Every catalogue row is one embedding, stored in one of two spaces
(``space``), and every score is an inner product in that space:

* ``whitened`` (default): rows are centred on the catalogue mean and whitened,
  ``x' = (x - mu) W`` with ``W = Sigma^-1/2`` of the Ledoit-Wolf shrunk covariance of the
  catalogue. Their magnitude is kept (for the default contributions embedding it is how
  strongly a row fits). Queries are unit vectors, so a score is how many standard
  deviations a row lies from the catalogue mean along the query direction (a z-score,
  unbounded, 0 = average row). With seeds, the query is the seeds' mean, so the score is
  Fisher's linear discriminant ``(mu_seeds - mu)' Sigma^-1 (x - mu)`` scaled to unit
  variance (Sigma is the catalogue's total covariance; for two classes its inverse gives
  the same direction as the within-class one). Measured in bench/exp_lookalike_space.py:
  lift@10 % on held-out converters 2.53 against 2.21 for cosine on X Education, equal
  (1.54 against 1.52) on simulated account catalogues.
* ``cosine``: rows L2-normalised, scores are cosine similarities in [-1, 1] (the only
  space of indexes saved before ``space`` existed).

Below ``exact_threshold`` rows the index is exact
(``faiss.IndexFlatIP``); above it, an approximate index (IVF-Flat by default, HNSW on
request) is built and tuned on the embeddings' own measured recall@100 against exact
search, separately for two kinds of query, each getting the smallest search width
(nprobe / efSearch) that reaches ``target_recall`` on its own:

* single-seed queries (one seed, and each seed of ``max``), tuned on sampled catalogue
  rows: ``nprobe_`` / ``ef_search_``;
* multi-seed queries (``centroid`` and ``contrast`` of 2 or more seeds), tuned on
  normalised means of 2 to 8 random catalogue rows: ``nprobe_multi_`` /
  ``ef_search_multi_``. Such a mean lies in sparser space between clusters, so it needs a
  wider search (at 1M rows x 64 on planted clusters, the single-seed width gives only
  recall@100 0.90 on centroids of 4 rows; bench/bench_lookalike.py).

When either kind misses ``target_recall`` at the widest allowed setting (unstructured
embeddings), the index falls back to exact search and says why in ``fallback_``.

Both approximate kinds store full float vectors, so candidate scores are exact inner
products; every result is still re-scored against the stored embeddings (exact
re-ranking) so that all kinds return identical numbers for the same rows.

Several seeds are combined by one of three methods:

* ``centroid``: score against the normalised mean of the seeds;
* ``contrast``: score against ``mean(seeds) - contrast_weight * mean(catalogue)``, which
  removes the direction every embedding shares and keeps what sets the seeds apart (in
  the ``whitened`` space the catalogue mean is 0, so ``contrast`` equals ``centroid``);
* ``max``: a candidate's largest score against any single (normalised) seed (seed-wise
  top-k lists are merged and re-scored exactly; the exact top-k by max is always inside
  their union).

Filters are a boolean mask over catalogue rows (``True`` = leave out). Approximate search
honours it through a FAISS id selector and widens its search until it has
``min(k, eligible)`` results, falling back to exact search over the eligible rows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
from sklearn.covariance import LedoitWolf

from recommender.errors import ModelFolderError, NotFittedError, UnknownIdError
from recommender.models.base import init_params

# faiss ships partial type stubs (no SearchParametersHNSW, no IVF attributes on Index).
faiss: Any = _faiss

FORMAT_VERSION = 1
META_FILE = "lookalike.json"
ARRAYS_FILE = "lookalike_embeddings.npz"
INDEX_FILE = "lookalike.faiss"

METHODS = ("centroid", "contrast", "max")
SPACES = ("whitened", "cosine")
APPROXIMATE_KINDS = ("ivf", "hnsw")
_TUNE_K = 100
_MAX_EF = 2048
_SEEDS_BY_OVERFETCH = 32  # up to this many seeds are dropped after search, not masked
_EXACT_CHUNK = 1 << 24  # floats in one block of exact scores

Results = list[tuple[str, float]]


@contextmanager
def _faiss_threads(n_threads: int | None) -> Iterator[None]:
    """Run a block with FAISS (OpenMP) limited to ``n_threads``, restoring it afterwards."""
    if n_threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm as C-contiguous float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def _whitening(x: np.ndarray, sample: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue mean (all rows) and ``Sigma^-1/2`` of the Ledoit-Wolf covariance, float64.

    The covariance is estimated on at most ``sample`` rows drawn with ``seed``. Eigenvalues
    are floored at 1e-9 of the largest (directions with no variance are not blown up);
    a catalogue with no variance at all gets the identity.
    """
    mu = x.mean(axis=0, dtype=np.float64)
    n = x.shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    part = x if sample >= n else x[rows]
    cov = LedoitWolf().fit(part.astype(np.float64) - mu).covariance_
    vals, vecs = np.linalg.eigh(cov)
    top = float(vals.max())
    if not top > 0:
        return mu, np.eye(x.shape[1])
    scale = 1.0 / np.sqrt(np.maximum(vals, 1e-9 * top))
    return mu, (vecs * scale) @ vecs.T


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (query x k row ids) present in ``found``."""
    hits = [
        len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, int((t >= 0).sum()))
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def lift_at(order_ids: Sequence[str], positives: set[str], share: float) -> float:
    """Lift of the first ``share`` of a ranking: its positive rate over the overall rate.

    Args:
        order_ids: ids, best first (for example lookalike results, or all prospects).
        positives: ids that converted (or are otherwise the target).
        share: fraction of ``order_ids`` to count, in (0, 1]; the top
            ``ceil(share * len(order_ids))`` ids are taken.

    Returns:
        ``rate(top share) / rate(all)``; 1.0 means no better than random order, ``nan``
        where ``order_ids`` holds no positive.

    Raises:
        ValueError: empty ``order_ids`` or ``share`` outside (0, 1].
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if len(order_ids) == 0:
        raise ValueError("order_ids is empty")
    hit = np.fromiter((i in positives for i in order_ids), dtype=bool, count=len(order_ids))
    overall = hit.mean()
    if overall == 0:
        return math.nan
    top = max(1, math.ceil(share * len(hit)))
    return float(hit[:top].mean() / overall)


class LookalikeIndex:
    """Nearest-neighbour index over catalogue embeddings with seed-set queries.

    Args:
        exact_threshold: catalogues with fewer rows are searched exactly (``IndexFlatIP``).
        target_recall: recall@100 against exact search the approximate index is tuned to.
        method: default seed combination, one of ``centroid``, ``contrast``, ``max``;
            ``contrast`` by default: on planted-cluster data it matched or beat
            ``centroid`` everywhere and ``max`` except for seeds spread over several
            clusters (bench/bench_lookalike.py).
        space: ``whitened`` (centred and whitened rows, scores are z-scores along the query
            direction) or ``cosine`` (normalised rows, scores are cosines); see the module
            docstring.
        covariance_sample: most rows the ``whitened`` covariance is estimated on.
        seed: random seed of the k-means training sample, k-means and tuning queries.
        n_threads: FAISS threads during ``fit`` and queries (``None``: leave as set).
        approximate: ``ivf`` (IVF-Flat, nlist ~ 4 sqrt(n), nprobe tuned) or ``hnsw``
            (HNSW-Flat, M=32, efSearch tuned).
        contrast_weight: weight of the catalogue mean subtracted by ``contrast``.
        n_tune_queries: queries used when tuning and measuring recall: half catalogue
            rows (single-seed width), half centroids of 2 to 8 rows (multi-seed width).
        max_scan_fraction: IVF falls back to exact search when the tuned nprobe would scan
            more than this share of the lists (it would be barely faster than exact).
        nlist: IVF list count; ``None`` for ``round(4 * sqrt(n))``; never more than
            ``n / 39`` (FAISS's minimum training points per list).
        train_points_per_list: k-means training rows per IVF list (sampled).

    Attributes:
        ids_: catalogue ids (str array, row order).
        embeddings_: float32 rows in the index space (``transform`` of the fitted ones).
        mean_: mean row of ``embeddings_``.
        centre_: raw catalogue mean (``whitened``; ``None`` for ``cosine``).
        whitening_: ``Sigma^-1/2``, (d, d) (``whitened``; ``None`` for ``cosine``).
        kind_: ``flat``, ``ivf`` or ``hnsw``.
        recall_: recall@100 against exact search measured at fit, the lower of the
            single-seed and multi-seed recalls at their tuned widths (1.0 for ``flat``).
        fallback_: why an approximate index was given up for exact search, else ``None``.
        tuning_: the recall measured at each tried setting, single-seed queries under
            ``"nprobe"`` / ``"ef_search"``, centroid queries under ``"nprobe_multi"`` /
            ``"ef_search_multi"`` (each ``{setting: recall}``).
        nprobe_: tuned IVF nprobe of single-seed queries (``None`` unless ``ivf``).
        nprobe_multi_: tuned IVF nprobe of multi-seed ``centroid`` / ``contrast`` queries
            (``None`` unless ``ivf``; equal to ``nprobe_`` for folders saved before it).
        ef_search_: tuned HNSW efSearch of single-seed queries (``None`` unless ``hnsw``).
        ef_search_multi_: tuned HNSW efSearch of multi-seed queries (as ``nprobe_multi_``).
    """

    def __init__(
        self,
        *,
        exact_threshold: int = 50_000,
        target_recall: float = 0.95,
        method: str = "contrast",
        seed: int = 0,
        n_threads: int | None = None,
        approximate: str = "ivf",
        contrast_weight: float = 1.0,
        n_tune_queries: int = 200,
        max_scan_fraction: float = 0.25,
        nlist: int | None = None,
        train_points_per_list: int = 40,
        space: str = "whitened",
        covariance_sample: int = 100_000,
    ) -> None:
        self.exact_threshold = exact_threshold
        self.target_recall = target_recall
        self.method = method
        self.seed = seed
        self.n_threads = n_threads
        self.approximate = approximate
        self.contrast_weight = contrast_weight
        self.n_tune_queries = n_tune_queries
        self.max_scan_fraction = max_scan_fraction
        self.nlist = nlist
        self.train_points_per_list = train_points_per_list
        self.space = space
        self.covariance_sample = covariance_sample

    # ------------------------------------------------------------------ fitting
    def get_params(self) -> dict[str, Any]:
        """The constructor parameters as a JSON-ready dict."""
        return init_params(self)

    def fit(self, ids: Sequence[str], embeddings: np.ndarray) -> LookalikeIndex:
        """Index ``embeddings`` (one row per id) in ``space`` for inner-product search.

        Args:
            ids: unique string ids, one per row.
            embeddings: float array of shape (len(ids), d), d >= 1, raw (unnormalised);
                they are stored as ``transform(embeddings)``.

        Returns:
            self.

        Raises:
            ValueError: bad parameters, empty input, shape mismatch, non-finite values
                or duplicate ids.
        """
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got '{self.method}'")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got '{self.space}'")
        if self.covariance_sample < 2:
            raise ValueError(f"covariance_sample must be >= 2, got {self.covariance_sample}")
        if self.approximate not in APPROXIMATE_KINDS:
            raise ValueError(
                f"approximate must be one of {APPROXIMATE_KINDS}, got '{self.approximate}'"
            )
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {self.target_recall}")
        x = np.asarray(embeddings)
        id_array = np.asarray([str(i) for i in ids], dtype=str)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
        if x.shape[0] != len(id_array):
            raise ValueError(f"{len(id_array)} ids for {x.shape[0]} embedding rows")
        if not np.all(np.isfinite(x)):
            raise ValueError("embeddings hold NaN or infinite values")
        unique, counts = np.unique(id_array, return_counts=True)
        if len(unique) != len(id_array):
            raise ValueError(f"duplicate id '{unique[counts > 1][0]}'")
        self.ids_ = id_array
        self.centre_: np.ndarray | None = None
        self.whitening_: np.ndarray | None = None
        if self.space == "whitened":
            sample = min(len(id_array), self.covariance_sample)
            self.centre_, self.whitening_ = _whitening(x, sample, self.seed)
        self.embeddings_ = self.transform(x)
        self.mean_ = self.embeddings_.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.kind_ = "flat"
        self.recall_: float | None = 1.0
        self.fallback_: str | None = None
        self.tuning_: dict[str, dict[str, float]] = {}
        self.nprobe_: int | None = None
        self.nprobe_multi_: int | None = None
        self.ef_search_: int | None = None
        self.ef_search_multi_: int | None = None
        self._row_of: dict[str, int] | None = None
        self._multi_params: Any = None  # cached faiss.SearchParametersIVF of a wider nprobe
        with _faiss_threads(self.n_threads):
            if len(id_array) < self.exact_threshold:
                self.index_ = self._flat_index()
            elif self.approximate == "ivf":
                self._fit_ivf()
            else:
                self._fit_hnsw()
        return self

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Raw embeddings (n, d) mapped into the index space, C-contiguous float32.

        ``cosine``: rows L2-normalised. ``whitened``: ``(x - centre_) @ whitening_``.

        Raises:
            NotFittedError: ``whitened`` before ``fit``/``load``.
            ValueError: not a 2-D array with the fitted width.
        """
        x = np.asarray(embeddings)
        if self.space == "cosine":
            return _normalise(x)
        if getattr(self, "whitening_", None) is None:
            raise NotFittedError("LookalikeIndex is not fitted: call fit() or load() first")
        assert self.centre_ is not None and self.whitening_ is not None
        if x.ndim != 2 or x.shape[1] != self.whitening_.shape[0]:
            raise ValueError(
                f"embeddings must have shape (n, {self.whitening_.shape[0]}), got {x.shape}"
            )
        z = (x.astype(np.float64) - self.centre_) @ self.whitening_
        return np.ascontiguousarray(z, dtype=np.float32)

    def _flat_index(self) -> Any:
        """An exact inner-product index over ``embeddings_``."""
        index = faiss.IndexFlatIP(self.embeddings_.shape[1])
        index.add(self.embeddings_)
        return index

    def _tune_queries(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Tuning queries of both kinds, each with its exact top-100 rows.

        Returns ``(rows, truth)`` for sampled catalogue rows (single seeds, and every
        ``max`` query) and ``(centroids, truth)`` for normalised means of 2 to 8 random
        rows (``centroid`` and ``contrast`` queries of mixed seeds, which land between
        clusters and need a wider search); ``n_tune_queries // 2`` queries each.
        """
        n = len(self.ids_)
        rng = np.random.default_rng(self.seed)
        half = max(1, min(n, self.n_tune_queries) // 2)
        rows = self.embeddings_[rng.choice(n, size=half, replace=False)]
        groups = [
            rng.choice(n, size=min(n, int(rng.integers(2, 9))), replace=False) for _ in range(half)
        ]
        centroids = _normalise(np.stack([self.embeddings_[g].mean(axis=0) for g in groups]))
        queries = np.ascontiguousarray(np.vstack([rows, centroids]))
        _, truth = faiss.knn(
            queries, self.embeddings_, min(_TUNE_K, n), metric=faiss.METRIC_INNER_PRODUCT
        )
        return (queries[:half], truth[:half]), (queries[half:], truth[half:])

    def _tune(self, search: Any, low: int, high: int, name: str) -> tuple[int, int] | None:
        """Smallest settings in [low, high] whose recall@100 reaches ``target_recall``, for
        single-row queries and for centroid queries; fills ``tuning_`` and ``recall_``.

        The centroid width is searched from the single-row one up (never below it).
        ``tuning_[name]`` and ``tuning_[name + "_multi"]`` hold the recall measured at each
        tried setting; ``recall_`` is the lower of the two recalls at the chosen settings
        (that of the first kind that misses the target at ``high`` when one does).

        Args:
            search: ``search(queries, k, setting) -> labels`` of the index being tuned.

        Returns:
            ``(single, multi)`` settings, or ``None`` when a kind misses at ``high``.
        """
        (rows, rows_truth), (centroids, centroids_truth) = self._tune_queries()
        rows_curve: dict[int, float] = {}
        multi_curve: dict[int, float] = {}

        def smallest(
            queries: np.ndarray, truth: np.ndarray, curve: dict[int, float], start: int
        ) -> int | None:
            def recall_at(setting: int) -> float:
                if setting not in curve:
                    curve[setting] = _recall(search(queries, truth.shape[1], setting), truth)
                return curve[setting]

            return _smallest_reaching(recall_at, start, high, self.target_recall)

        single = smallest(rows, rows_truth, rows_curve, low)
        multi = (
            None if single is None else smallest(centroids, centroids_truth, multi_curve, single)
        )
        self.tuning_ = {
            key: {str(k): v for k, v in sorted(curve.items())}
            for key, curve in ((name, rows_curve), (f"{name}_multi", multi_curve))
        }
        if single is None or multi is None:
            self.recall_ = (multi_curve or rows_curve)[high]
            return None
        self.recall_ = min(rows_curve[single], multi_curve[multi])
        return single, multi

    def _fit_ivf(self) -> None:
        """Train IVF-Flat, then take the smallest nprobe reaching ``target_recall``."""
        n, d = self.embeddings_.shape
        # FAISS's k-means wants at least 39 training points per list
        nlist = min(max(1, n // 39), self.nlist or max(1, round(4 * math.sqrt(n))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.seed = self.seed
        index.cp.spherical = True
        index.cp.max_points_per_centroid = self.train_points_per_list
        rng = np.random.default_rng(self.seed)
        n_train = min(n, nlist * self.train_points_per_list)
        index.train(self.embeddings_[np.sort(rng.choice(n, size=n_train, replace=False))])
        index.add(self.embeddings_)

        def search(queries: np.ndarray, k: int, nprobe: int) -> np.ndarray:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            return np.asarray(index.search(queries, k, params=params)[1])

        budget = max(1, int(self.max_scan_fraction * nlist))
        chosen = self._tune(search, 1, budget, "nprobe")
        if chosen is None:
            self._fall_back(
                f"IVF (nlist={nlist}) reaches recall@100 {self.recall_:.3f} < "
                f"{self.target_recall} at nprobe={budget} ({self.max_scan_fraction:.0%} "
                "of the lists)"
            )
            return
        index.nprobe = chosen[0]
        self.index_, self.kind_ = index, "ivf"
        self.nprobe_, self.nprobe_multi_ = chosen

    def _fit_hnsw(self) -> None:
        """Build HNSW-Flat (M=32), then take the smallest efSearch reaching ``target_recall``."""
        index = faiss.IndexHNSWFlat(self.embeddings_.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.add(self.embeddings_)

        def search(queries: np.ndarray, k: int, ef: int) -> np.ndarray:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            return np.asarray(index.search(queries, k, params=params)[1])

        chosen = self._tune(search, _TUNE_K, _MAX_EF, "ef_search")
        if chosen is None:
            self._fall_back(
                f"HNSW reaches recall@100 {self.recall_:.3f} < {self.target_recall} "
                f"at efSearch={_MAX_EF}"
            )
            return
        index.hnsw.efSearch = chosen[0]
        self.index_, self.kind_ = index, "hnsw"
        self.ef_search_, self.ef_search_multi_ = chosen

    def _fall_back(self, why: str) -> None:
        """Give up the approximate index for exact search, recording ``why``."""
        self.fallback_ = f"{why}: embeddings too unstructured, using exact search"
        self.recall_ = 1.0
        self.index_ = self._flat_index()

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        """Raise NotFittedError unless ``fit`` or ``load`` has run."""
        if not hasattr(self, "index_"):
            raise NotFittedError("LookalikeIndex is not fitted: call fit() or load() first")

    def _rows(self, seeds: Sequence[str]) -> np.ndarray:
        """Catalogue rows of ``seeds`` (duplicates dropped, order kept).

        Raises:
            UnknownIdError: a seed that is not in the catalogue.
        """
        if self._row_of is None:
            self._row_of = {str(i): r for r, i in enumerate(self.ids_.tolist())}
        rows: list[int] = []
        for s in dict.fromkeys(str(s) for s in seeds):
            if s not in self._row_of:
                raise UnknownIdError("seed", s)
            rows.append(self._row_of[s])
        return np.asarray(rows, dtype=np.int64)

    def _check_exclude(self, exclude: np.ndarray | None) -> np.ndarray | None:
        """Validate a filter mask: bool, one entry per catalogue row."""
        if exclude is None:
            return None
        mask = np.asarray(exclude)
        if mask.dtype != bool or mask.shape != (len(self.ids_),):
            raise ValueError(
                f"exclude must be a bool mask of shape ({len(self.ids_)},), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask

    def query(
        self,
        seeds: Sequence[str],
        k: int = 100,
        *,
        method: str | None = None,
        exclude: np.ndarray | None = None,
    ) -> Results:
        """The ``k`` catalogue ids most similar to ``seeds``, best first, seeds left out.

        Args:
            seeds: catalogue ids (duplicates ignored).
            k: number of results wanted; fewer come back only when fewer rows are eligible.
            method: ``centroid``, ``contrast`` or ``max`` (default: the constructor's).
            exclude: bool mask over ``ids_``; ``True`` rows are never returned.

        Returns:
            ``(id, similarity)`` pairs, best first. ``similarity`` is the inner product of
            the row with the unit query (the centroid, the contrast vector, or the
            best single seed for ``max``) in the index space: for ``whitened`` a z-score
            (standard deviations from the catalogue mean along the query direction,
            unbounded), for ``cosine`` a cosine in [-1, 1].

        Raises:
            NotFittedError: before ``fit``/``load``.
            UnknownIdError: a seed not in the catalogue (kind ``seed``).
            ValueError: ``k < 1``, no seeds, unknown method or a malformed mask.
        """
        self._check_fitted()
        method = method or self.method
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got '{method}'")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if len(seeds) == 0:
            raise ValueError("seeds is empty: give at least one id")
        rows = self._rows(seeds)
        mask = self._check_exclude(exclude)
        vectors = self.embeddings_[rows]
        with _faiss_threads(self.n_threads):
            if method == "max":
                return self._query_max(_normalise(vectors), k, rows, mask)
            query = vectors.mean(axis=0)
            if method == "contrast":
                contrast = query - self.contrast_weight * self.mean_
                # one seed is still a catalogue row unless the shift moves it noticeably
                moved = np.linalg.norm(contrast - query) > 1e-3 * np.linalg.norm(query)
                multi = len(rows) > 1 or bool(moved)
                query = contrast if np.linalg.norm(contrast) > 1e-6 else query
            else:
                multi = len(rows) > 1
            q = _normalise(query[None, :])
            out_rows, scores = self._search(q, k, rows, mask, multi=multi)[0]
        return self._results(out_rows, scores)

    def query_vector(
        self, vector: np.ndarray, k: int, exclude: np.ndarray | None = None, *, n_seeds: int = 1
    ) -> Results:
        """The ``k`` catalogue ids that score highest against a raw embedding ``vector``.

        The vector is a row like those given to ``fit``; it is mapped by ``transform``
        and normalised, so scores are as in ``query`` (a z-score along the direction from
        the catalogue mean to the vector for ``whitened``, a cosine for ``cosine``).
        ``n_seeds`` is how many rows the vector stands for: 1 (a row-like vector) searches
        with the single-seed width, 2 or more (a mean of rows) with the multi-seed width.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: ``k < 1``, ``n_seeds < 1``, a vector of the wrong size, or a
                malformed mask.
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape != (self.embeddings_.shape[1],):
            raise ValueError(
                f"vector must have {self.embeddings_.shape[1]} values, got {v.shape[0]}"
            )
        mask = self._check_exclude(exclude)
        with _faiss_threads(self.n_threads):
            no_seeds = np.empty(0, dtype=np.int64)
            q = _normalise(self.transform(v[None, :]))
            out_rows, scores = self._search(q, k, no_seeds, mask, multi=n_seeds > 1)[0]
        return self._results(out_rows, scores)

    def _results(self, rows: np.ndarray, scores: np.ndarray) -> Results:
        """Rows and scores as ``(id, similarity)`` pairs."""
        return list(zip(self.ids_[rows].tolist(), scores.astype(float).tolist(), strict=True))

    def _query_max(
        self, seeds: np.ndarray, k: int, rows: np.ndarray, mask: np.ndarray | None
    ) -> Results:
        """Top ``k`` by the best score against any unit seed: merge per-seed lists, re-score."""
        found = self._search(seeds, k, rows, mask)
        candidates = np.unique(np.concatenate([r for r, _ in found]))
        best = np.empty(len(candidates), dtype=np.float32)
        step = max(1, _EXACT_CHUNK // max(1, len(seeds)))
        for start in range(0, len(candidates), step):
            block = self.embeddings_[candidates[start : start + step]] @ seeds.T
            best[start : start + step] = block.max(axis=1)
        order = np.lexsort((candidates, -best))[:k]
        return self._results(candidates[order], best[order])

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        seed_rows: np.ndarray,
        mask: np.ndarray | None,
        *,
        multi: bool = False,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the top ``min(k, eligible)`` rows and exact scores, best first.

        A row is eligible unless it is a seed or ``mask`` is True there. A few seeds and no
        mask are handled by fetching ``k + len(seeds)`` and dropping the seeds; otherwise
        the eligible rows go to FAISS as an id selector. ``multi``: the queries combine
        several rows (centroids), searched with the multi-seed width.
        """
        n = len(self.ids_)
        overfetch = mask is None and len(seed_rows) <= _SEEDS_BY_OVERFETCH
        eligible: np.ndarray | None = None
        if overfetch:
            n_eligible = n - len(seed_rows)
        else:
            eligible = np.ones(n, dtype=bool) if mask is None else ~mask
            eligible[seed_rows] = False
            n_eligible = int(eligible.sum())
        k_eff = min(k, n_eligible)
        if k_eff <= 0:
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in queries]
        fetch = k_eff + (len(seed_rows) if overfetch else 0)
        if 4 * fetch > n or (self.kind_ != "flat" and n_eligible < 0.02 * n):
            return self._exact(queries, k_eff, seed_rows, eligible)
        found = self._faiss_search(queries, fetch, eligible, multi)
        out = []
        for q, rows in zip(queries, found, strict=True):
            rows = rows[rows >= 0]
            if overfetch and len(seed_rows):  # a few seeds: compare, cheaper than np.isin
                keep = rows != seed_rows[0]
                for seed in seed_rows[1:]:
                    keep &= rows != seed
                rows = rows[keep]
            if len(rows) < k_eff:
                out.extend(self._exact(q[None, :], k_eff, seed_rows, eligible))
            else:
                out.append(self._rerank(q, rows, k_eff))
        return out

    def _rerank(self, query: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of candidate ``rows``; the best ``k`` (ties by row), best first."""
        scores = self.embeddings_[rows] @ query
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]

    def _faiss_search(
        self, queries: np.ndarray, fetch: int, eligible: np.ndarray | None, multi: bool
    ) -> list[np.ndarray]:
        """Top-``fetch`` rows per query from ``index_`` (-1 padded), limited to ``eligible``.

        The tuned nprobe / efSearch is the single-seed one, or the multi-seed one when
        ``multi``. With a filter, it is divided by the eligible share; an approximate
        search that finds too few eligible rows is repeated with 4 times the nprobe /
        efSearch until it finds enough or reaches its widest setting.
        """
        selector = None
        if eligible is not None:
            bitmap = np.packbits(eligible, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(eligible), faiss.swig_ptr(bitmap))
        if self.kind_ == "flat":
            _, labels = self.index_.search(
                queries, fetch, params=faiss.SearchParameters(sel=selector)
            )
            return list(labels)
        ivf = self.kind_ == "ivf"
        tuned = (self.nprobe_multi_ if ivf else self.ef_search_multi_) if multi else None
        tuned = tuned or (self.nprobe_ if ivf else self.ef_search_)
        width = int(tuned or 1) if ivf else max(fetch, tuned or fetch)
        limit = self.index_.nlist if ivf else max(_MAX_EF, fetch)
        if eligible is not None:  # the k-th eligible neighbour lies ~1/share further down
            share = max(float(eligible.mean()), 1e-3)
            width = min(limit, math.ceil(width / share))
        if eligible is None and width == (self.nprobe_ if ivf else self.ef_search_):
            return list(self.index_.search(queries, fetch)[1])  # the index's own setting
        if eligible is None and ivf:  # no filter: one search at the multi-seed width
            wide = self._multi_params
            if wide is None or wide.nprobe != width:
                wide = self._multi_params = faiss.SearchParametersIVF(nprobe=int(width))
            return list(self.index_.search(queries, fetch, params=wide)[1])
        found = np.full((len(queries), fetch), -1, dtype=np.int64)
        todo = np.arange(len(queries))
        while True:
            if ivf:
                params: Any = faiss.SearchParametersIVF(nprobe=int(width), sel=selector)
            else:
                params = faiss.SearchParametersHNSW(efSearch=int(width), sel=selector)
            _, labels = self.index_.search(queries[todo], fetch, params=params)
            found[todo] = labels
            short = (labels < 0).any(axis=1)
            if not short.any() or width >= limit or eligible is None:
                return list(found)
            todo, width = todo[short], min(limit, 4 * width)

    def _exact(
        self,
        queries: np.ndarray,
        k: int,
        seed_rows: np.ndarray,
        eligible: np.ndarray | None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Exact top ``k`` eligible rows per query by brute force over ``embeddings_``."""
        n = len(self.ids_)
        if eligible is None:
            eligible = np.ones(n, dtype=bool)
            eligible[seed_rows] = False
        rows = np.flatnonzero(eligible)
        k = min(k, len(rows))
        out = []
        step = max(1, _EXACT_CHUNK // n)
        for start in range(0, len(queries), step):
            block = self.embeddings_ @ queries[start : start + step].T
            for j in range(block.shape[1]):
                scores = block[rows, j]
                top = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
                order = np.lexsort((rows[top], -scores[top]))
                out.append((rows[top][order], scores[top][order]))
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Write the fitted index into the existing folder ``path``.

        Files: ``lookalike.json`` (parameters, kind, recall, tuning, tuned widths, counts),
        ``lookalike_embeddings.npz`` (``ids``, ``embeddings``, ``mean``, and for
        ``whitened`` also ``centre`` and ``whitening``) and
        ``lookalike.faiss`` (the FAISS index). Each file is written under a temporary name
        and renamed, so a failure leaves no half-written file.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing folder.
        """
        self._check_fitted()
        folder = Path(path)
        if not folder.is_dir():
            raise ModelFolderError(f"model folder '{folder}' does not exist")
        meta = {
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "kind": self.kind_,
            "recall": self.recall_,
            "fallback": self.fallback_,
            "tuning": self.tuning_,
            "nprobe": self.nprobe_,
            "nprobe_multi": self.nprobe_multi_,
            "ef_search": self.ef_search_,
            "ef_search_multi": self.ef_search_multi_,
            "n_ids": len(self.ids_),
            "dim": int(self.embeddings_.shape[1]),
            "faiss_version": faiss.__version__,
        }
        tmp_index = folder / f".{INDEX_FILE}.tmp"
        faiss.write_index(self.index_, str(tmp_index))
        tmp_arrays = folder / f".{ARRAYS_FILE}.tmp"
        with open(tmp_arrays, "wb") as fh:
            arrays = {"ids": self.ids_, "embeddings": self.embeddings_, "mean": self.mean_}
            if self.centre_ is not None and self.whitening_ is not None:
                arrays |= {"centre": self.centre_, "whitening": self.whitening_}
            np.savez(fh, **arrays)
        tmp_meta = folder / f".{META_FILE}.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp_index, folder / INDEX_FILE)
        os.replace(tmp_arrays, folder / ARRAYS_FILE)
        os.replace(tmp_meta, folder / META_FILE)

    @classmethod
    def load(cls, path: Path) -> LookalikeIndex:
        """Read an index written by ``save``; the FAISS index is read, not rebuilt.

        A folder written before ``space`` existed is a ``cosine`` index; one written
        before the multi-seed widths searches every query with its single width.

        Raises:
            ModelFolderError: a missing file, an unsupported format version, or files
                that disagree with each other.
        """
        folder = Path(path)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
                ids, embeddings, mean = arrays["ids"], arrays["embeddings"], arrays["mean"]
                centre = arrays.get("centre", None)
                whitening = arrays.get("whitening", None)
            index = faiss.read_index(str(folder / INDEX_FILE))
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise ModelFolderError(f"cannot read lookalike index from '{folder}': {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelFolderError(
                f"lookalike format version {meta.get('format_version')} is not {FORMAT_VERSION}"
            )
        if not (len(ids) == embeddings.shape[0] == index.ntotal == meta["n_ids"]):
            raise ModelFolderError(f"lookalike files in '{folder}' disagree on the number of ids")
        params = {"space": "cosine", **meta["params"]}
        if params["space"] == "whitened" and (centre is None or whitening is None):
            raise ModelFolderError(f"whitened lookalike index in '{folder}' lacks its whitening")
        self = cls(**params)
        self.centre_, self.whitening_ = centre, whitening
        self.ids_, self.embeddings_, self.mean_ = (
            ids.astype(str),
            embeddings.astype(np.float32),
            mean,
        )
        self.kind_, self.recall_, self.fallback_ = meta["kind"], meta["recall"], meta["fallback"]
        self.tuning_, self.nprobe_, self.ef_search_ = (
            meta["tuning"],
            meta["nprobe"],
            meta["ef_search"],
        )
        # folders saved before the multi-seed widths: one width for every query, as then
        self.nprobe_multi_ = meta.get("nprobe_multi", self.nprobe_)
        self.ef_search_multi_ = meta.get("ef_search_multi", self.ef_search_)
        self._row_of = None
        self._multi_params = None
        if self.kind_ == "ivf":
            index.nprobe = self.nprobe_
        self.index_ = index
        return self


def _smallest_reaching(recall_at: Any, low: int, high: int, target: float) -> int | None:
    """Smallest integer setting in [low, high] whose recall reaches ``target``.

    Doubles from ``low`` until the target is reached, then bisects the last interval;
    ``recall_at`` is assumed to be non-decreasing. ``None`` when even ``high`` misses.
    """
    previous, width = low - 1, low
    while recall_at(width) < target:
        if width >= high:
            return None
        previous, width = width, min(high, 2 * width)
    while width - previous > 1:
        middle = (previous + width) // 2
        if recall_at(middle) >= target:
            width = middle
        else:
            previous = middle
    return width
