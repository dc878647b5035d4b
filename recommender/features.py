"""Encode a lead feature frame as sparse indicators (one-hot categories, binned numbers).

The affinity models and the ICP embedding take leads as rows of indicators, so that a
brand-new lead is described by the same vocabulary as the training leads (cold start).
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

MISSING = "(missing)"
OTHER = "(other)"


class FeatureEncoder:
    """One-hot encoder for categorical columns and quantile bins for numeric ones.

    Every column contributes exactly one active indicator per row (its category, its bin,
    ``(missing)`` or ``(other)``), so rows have equal weight whatever their values.

    Args:
        n_bins: quantile bins per numeric column.
        min_count: categories seen fewer times are merged into ``(other)``.
        max_categories: at most this many categories are kept per column (most frequent).
    """

    def __init__(self, n_bins: int = 5, min_count: int = 5, max_categories: int = 50) -> None:
        self.n_bins = n_bins
        self.min_count = min_count
        self.max_categories = max_categories

    def fit(self, frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> Self:
        """Learn the vocabulary of each numeric or categorical column of ``specs``."""
        self.columns_: list[dict[str, Any]] = []
        for spec in specs:
            if spec.role == Role.NUMERIC:
                values = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(float)
                finite = values[np.isfinite(values)]
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
        self._index()
        return self

    def _index(self) -> None:
        self.labels_: list[str] = []
        self.offsets_: list[int] = []
        for col in self.columns_:
            self.offsets_.append(len(self.labels_))
            self.labels_.extend(self._column_labels(col))

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

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        """Return the (n_rows, n_features_out) 0/1 float32 indicator matrix of ``frame``.

        Columns absent from ``frame`` are treated as missing.
        """
        self._check()
        n = len(frame)
        cols = []
        for col, offset in zip(self.columns_, self.offsets_):
            name = col["name"]
            series = frame[name] if name in frame.columns else pd.Series([None] * n)
            if col["kind"] == "numeric":
                values = pd.to_numeric(series, errors="coerce").to_numpy(float)
                edges = np.asarray(col["edges"], dtype=float)
                idx = np.searchsorted(edges, values, side="right")
                idx = np.where(np.isfinite(values), idx, len(edges) + 1)
            else:
                vocab = {v: i for i, v in enumerate(col["values"])}
                k = len(vocab)
                strings = series.astype(object).to_numpy()
                idx = np.array(
                    [k + 1 if v is None or v != v else vocab.get(str(v), k) for v in strings],
                    dtype=np.int64,
                )
            cols.append(idx + offset)
        if not cols:
            return sp.csr_matrix((n, 0), dtype=np.float32)
        indices = np.stack(cols, axis=1).ravel().astype(np.int32)
        indptr = np.arange(0, n * len(cols) + 1, len(cols), dtype=np.int32)
        data = np.ones(indices.size, dtype=np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(n, len(self.labels_)))

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-ready data."""
        self._check()
        return {
            "n_bins": self.n_bins,
            "min_count": self.min_count,
            "max_categories": self.max_categories,
            "columns": self.columns_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict` output."""
        enc = cls(data["n_bins"], data["min_count"], data["max_categories"])
        enc.columns_ = list(data["columns"])
        enc._index()
        return enc
