"""Encode a lead feature frame as sparse indicators (one-hot categories, binned numbers).

The affinity models and the ICP embedding take leads as rows of indicators, so that a
brand-new lead is described by the same vocabulary as the training leads (cold start).

A model that sums per-indicator factors (LightFM, the implicit engine) cannot express an
effect of a *pair* of values ("this rep converts large software companies, not large
retailers nor small software companies"). With ``cross_max_levels > 0`` the encoder also
emits *crossed* indicators: for every pair of low-cardinality columns (at most
``cross_max_levels`` levels each: kept categories, or numeric bins) one indicator per
observed pair of values. The choice is generic (cardinality only, no labels, no
knowledge of any segment definition); pairs seen fewer than ``min_count`` times fall into
the pair's ``(other)``. Crosses are off by default: on the simulated team, whose rep
effects are exactly such a pair effect, all-pairs crosses (55 pairs, 2,222 indicators)
made the per-rep affinity *worse* (``bench/affinity_quality.py``, 50,000 leads x 200
reps: Spearman 0.50 against 0.56 without), because most pairs are noise that the few
rows per (rep, value) cannot tell from signal.

``cross_columns`` restricts the crosses to pairs *within* a given set of columns (still
subject to ``cross_max_levels`` and ``max_crosses``): the pipeline uses it to cross only
the firmographic (account) columns, the way practitioners segment B2B accounts
(industry x size x region), a choice made without labels
(``TrainConfig.affinity_crosses = "firmographic"``: 10 pairs, 498 indicators on the
simulated team). Same bench, 200 reps, LightFM, Spearman all cells without -> with
firmographic crosses: 0.441 -> 0.441 at 20,000 leads (both fall back to the global
score), 0.563 -> 0.566 at 50,000 (seed 1: 0.563 -> 0.517: the strength test fell to the
global score), 0.612 -> 0.622 at 100,000, 0.697 -> 0.712 at 200,000, 0.733 -> 0.836 at
500,000 (oracle 0.94).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.columns import Role
from recommender.data.dataset import FeatureSpec
from recommender.errors import NotFittedError
from recommender.models.base import Table, category_values, numeric_values

MISSING = "(missing)"
OTHER = "(other)"
BINS = ("quantile", "magnitude")
"""Values of ``FeatureEncoder(bins=...)``."""
#: ``magnitude`` bins: the share of values left out at each end when deciding the
#: column's span, the span (high / low) from which powers of ten cut it, and the most
#: powers of ten kept (a column spread over more orders of magnitude than a dozen is not
#: a size or revenue column, and gets quantile bins).
MAGNITUDE_TAIL = 0.01
MAGNITUDE_SPAN = 100.0
MAGNITUDE_MAX_EDGES = 12


def magnitude_edges(values: np.ndarray) -> np.ndarray | None:
    """Powers of ten inside a positive, wide-spread column's range, or None.

    Company size and revenue are spread over orders of magnitude, and sales teams cut them
    at round numbers (fewer than 100 employees, 100-999, 1,000 and more), not at the
    quantiles of this year's leads. For a column whose 1st percentile is positive and whose
    99th is at least :data:`MAGNITUDE_SPAN` times larger, the edges are the powers of ten
    strictly above the 1st percentile and at most the 99th (so no end bin holds only
    outliers; a rare zero falls in the lowest bin); for any other column, or one that
    would get more than :data:`MAGNITUDE_MAX_EDGES` powers of ten, None (cut by
    quantiles).

    Args:
        values: the column's values; NaN and infinite ones are ignored (None if no
            finite value is left).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [MAGNITUDE_TAIL, 1.0 - MAGNITUDE_TAIL])
    if lo <= 0.0 or hi < MAGNITUDE_SPAN * lo:
        return None
    first, last = np.floor(np.log10(lo)) + 1, np.floor(np.log10(hi))
    if last - first + 1 > MAGNITUDE_MAX_EDGES:
        return None
    return np.asarray(10.0 ** np.arange(first, last + 1), dtype=float)


class FeatureEncoder:
    """One-hot encoder for categorical columns and quantile bins for numeric ones.

    Every column, and every crossed pair of columns, contributes exactly one active
    indicator per row (its category, its bin, its pair of levels, ``(missing)`` or
    ``(other)``), so rows have equal weight whatever their values.

    Args:
        n_bins: quantile bins per numeric column.
        min_count: categories (and crossed pairs) seen fewer times are merged into
            ``(other)``.
        max_categories: at most this many categories are kept per column (most frequent).
        cross_max_levels: columns with at most this many levels (kept categories, or
            numeric bins) are crossed pairwise; 0 turns crosses off.
        max_crosses: at most this many crossed pairs, those with the fewest combined
            levels first (ties in column order).
        cross_columns: only columns with these names are crossed (pairs within the set);
            ``None`` (default) makes every low-cardinality column eligible, and an empty
            set gives no crosses. Names absent from the fitted specs are ignored.
        bins: how numeric columns are cut: ``quantile`` (default: ``n_bins`` equal-count
            bins) or ``magnitude`` (see :func:`magnitude_edges`: a positive column spread
            over two orders of magnitude or more is cut at powers of ten, "10-99
            employees", "100-999"; other columns keep quantile bins).
    """

    def __init__(
        self,
        n_bins: int = 5,
        min_count: int = 5,
        max_categories: int = 50,
        cross_max_levels: int = 0,
        max_crosses: int = 66,
        cross_columns: Sequence[str] | None = None,
        bins: str = "quantile",
    ) -> None:
        if bins not in BINS:
            raise ValueError(f"bins must be one of {', '.join(BINS)}, not {bins!r}")
        self.n_bins = n_bins
        self.min_count = min_count
        self.max_categories = max_categories
        self.cross_max_levels = cross_max_levels
        self.max_crosses = max_crosses
        self.cross_columns = cross_columns
        self.bins = bins

    def fit(self, frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> Self:
        """Learn the vocabulary of each numeric or categorical column of ``specs``."""
        self.columns_: list[dict[str, Any]] = []
        for spec in specs:
            if spec.role == Role.NUMERIC:
                values = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(float)
                finite = values[np.isfinite(values)]
                edges = magnitude_edges(finite) if self.bins == "magnitude" else None
                if edges is None:
                    qs = np.linspace(0, 1, self.n_bins + 1)[1:-1]
                    edges = np.unique(np.quantile(finite, qs)) if finite.size else np.array([])
                self.columns_.append(
                    {"name": spec.name, "kind": "numeric", "edges": edges.tolist()}
                )
            elif spec.role == Role.CATEGORICAL:
                counts = frame[spec.name].dropna().astype(str).value_counts()
                keep = counts[counts >= self.min_count].index[: self.max_categories]
                self.columns_.append(
                    {"name": spec.name, "kind": "categorical", "values": [str(v) for v in keep]}
                )
        self.crosses_: list[dict[str, Any]] = []
        self._index()
        self.crosses_ = self._fit_crosses(frame)
        self._index()
        return self

    def _levels(self, col: dict[str, Any]) -> int:
        """Number of informative levels of a column (kept categories or numeric bins)."""
        return len(col["edges"]) + 1 if col["kind"] == "numeric" else len(col["values"])

    def _fit_crosses(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Choose the crossed pairs and keep the pairs of levels seen ``min_count`` times."""
        if self.cross_max_levels <= 0 or self.max_crosses <= 0:
            return []
        allowed = None if self.cross_columns is None else set(self.cross_columns)
        small = [
            k
            for k, col in enumerate(self.columns_)
            if 2 <= self._levels(col) <= self.cross_max_levels
            and (allowed is None or col["name"] in allowed)
        ]
        pairs = sorted(
            itertools.combinations(small, 2),
            key=lambda ab: self._levels(self.columns_[ab[0]]) * self._levels(self.columns_[ab[1]]),
        )[: self.max_crosses]
        codes = self._local_codes(frame)
        out = []
        for a, b in sorted(pairs):
            width = len(self._column_labels(self.columns_[b]))
            pair = codes[a] * width + codes[b]
            uniq, counts = np.unique(pair, return_counts=True)
            out.append({"a": a, "b": b, "codes": uniq[counts >= self.min_count].tolist()})
        return out

    def _index(self) -> None:
        self.labels_: list[str] = []
        self.offsets_: list[int] = []
        # per column, what transform looks values up in: bin edges, or a value -> code map
        self._lookups: list[np.ndarray | dict[str, int]] = [
            np.asarray(col["edges"], dtype=float)
            if col["kind"] == "numeric"
            else {v: i for i, v in enumerate(col["values"])}
            for col in self.columns_
        ]
        for col in self.columns_:
            self.offsets_.append(len(self.labels_))
            self.labels_.extend(self._column_labels(col))
        self.cross_offsets_: list[int] = []
        for cross in self.crosses_:
            self.cross_offsets_.append(len(self.labels_))
            self.labels_.extend(self._cross_labels(cross))
        # per crossed pair, what transform needs: the width of its second column's
        # labels and its kept pair codes as an array
        self._cross_lookups: list[tuple[int, np.ndarray]] = [
            (
                len(self._column_labels(self.columns_[cross["b"]])),
                np.asarray(cross["codes"], dtype=np.int64),
            )
            for cross in self.crosses_
        ]

    def _cross_labels(self, cross: dict[str, Any]) -> list[str]:
        """Labels ``a = x & b = y`` of a crossed pair's kept codes, then its ``(other)``."""
        la = self._column_labels(self.columns_[cross["a"]])
        lb = self._column_labels(self.columns_[cross["b"]])
        names = [f"{la[c // len(lb)]} & {lb[c % len(lb)]}" for c in cross["codes"]]
        a, b = self.columns_[cross["a"]]["name"], self.columns_[cross["b"]]["name"]
        return [*names, f"{a} & {b} = {OTHER}"]

    @staticmethod
    def _column_labels(col: dict[str, Any]) -> list[str]:
        name = col["name"]
        if col["kind"] == "numeric":
            edges = col["edges"]
            bounds = [-np.inf, *edges, np.inf]
            bins = [f"{name} in [{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(bounds)]
            return [*bins, f"{name} = {MISSING}"]
        return [f"{name} = {v}" for v in col["values"]] + [
            f"{name} = {OTHER}",
            f"{name} = {MISSING}",
        ]

    @property
    def n_features_out(self) -> int:
        """Number of indicator columns."""
        self._check()
        return len(self.labels_)

    def _check(self) -> None:
        if not hasattr(self, "columns_"):
            raise NotFittedError("FeatureEncoder is not fitted: call fit() first")

    def transform(self, frame: Table) -> sp.csr_matrix:
        """Return the (n_rows, n_features_out) 0/1 float32 indicator matrix of ``frame``.

        Columns absent from ``frame`` are treated as missing.
        """
        self._check()
        n = len(frame)
        codes = self._local_codes(frame)
        cols = [idx + offset for idx, offset in zip(codes, self.offsets_)]
        for cross, offset, (width, kept) in zip(
            self.crosses_, self.cross_offsets_, self._cross_lookups
        ):
            pair = codes[cross["a"]] * width + codes[cross["b"]]
            pos = np.minimum(np.searchsorted(kept, pair), max(len(kept) - 1, 0))
            hit = kept[pos] == pair if len(kept) else np.zeros(n, dtype=bool)
            cols.append(np.where(hit, pos, len(kept)) + offset)
        if not cols:
            return sp.csr_matrix((n, 0), dtype=np.float32)
        indices = np.stack(cols, axis=1).ravel().astype(np.int32)
        indptr = np.arange(0, n * len(cols) + 1, len(cols), dtype=np.int32)
        data = np.ones(indices.size, dtype=np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(n, len(self.labels_)))

    def _local_codes(self, frame: Table) -> list[np.ndarray]:
        """Per column, each row's level index within that column's labels (int64)."""
        n = len(frame)
        cols = []
        for col, lookup in zip(self.columns_, self._lookups, strict=True):
            present = col["name"] in frame.columns
            if isinstance(lookup, np.ndarray):
                values = numeric_values(frame, col["name"]) if present else np.full(n, np.nan)
                idx = np.searchsorted(lookup, values, side="right")
                idx = np.where(np.isfinite(values), idx, len(lookup) + 1)
            else:
                cats = category_values(frame, col["name"]) if present else [None] * n
                k = len(lookup)
                idx = np.array([k + 1 if v is None else lookup.get(v, k) for v in cats])
            cols.append(np.asarray(idx, dtype=np.int64))
        return cols

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-ready data."""
        self._check()
        return {
            "n_bins": self.n_bins,
            "min_count": self.min_count,
            "max_categories": self.max_categories,
            "cross_max_levels": self.cross_max_levels,
            "max_crosses": self.max_crosses,
            "cross_columns": None if self.cross_columns is None else list(self.cross_columns),
            "bins": self.bins,
            "columns": self.columns_,
            "crosses": self.crosses_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict` output.

        Output of an older version loads as it was fitted: without ``crosses`` as an
        encoder without crosses, without ``cross_columns`` as unrestricted (``None``).
        """
        enc = cls(
            data["n_bins"],
            data["min_count"],
            data["max_categories"],
            cross_max_levels=data.get("cross_max_levels", 0),
            max_crosses=data.get("max_crosses", 0),
            cross_columns=data.get("cross_columns"),
            bins=data.get("bins", "quantile"),
        )
        enc.columns_ = list(data["columns"])
        enc.crosses_ = [dict(c) for c in data.get("crosses", [])]
        enc._index()
        return enc
