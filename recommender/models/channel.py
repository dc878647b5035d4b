"""Channel prior: the smoothed conversion rate of a lead's source channel.

The first score a brand-new lead gets, before any behaviour is seen. Each source's rate
is shrunk towards the global rate ``p0`` by ``m`` pseudo-leads (empirical Bayes with a
beta prior):

    rate(source) = (converted(source) + m * p0) / (leads(source) + m)

``m`` is ``strength`` when given, else estimated from the data by the method of moments
(the spread of the per-source rates beyond what sampling noise explains); a source with
few leads therefore scores close to the global rate. A missing source is a level of its
own; a source never seen in training scores the global rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from recommender.columns import Columns
from recommender.data.dataset import SMALL_ROWS, FeatureSpec
from recommender.models.base import (
    Table,
    category_values,
    check_directory,
    check_frame,
    check_labels,
    init_params,
    logit,
    model_specs,
    read_json,
    require_fitted,
    sigmoid,
    write_json,
)

_FILE = "channel.json"
_KIND = "channel_prior"
_MISSING = "\x00missing"


def estimate_strength(counts: np.ndarray, positives: np.ndarray, low: float, high: float) -> float:
    """Return the beta-prior pseudo-count m by the method of moments, within [low, high].

    Args:
        counts: leads per source.
        positives: converted leads per source.
        low: smallest m returned (strongest trust in the per-source rates).
        high: largest m returned (used when the rates differ no more than noise).
    """
    total = counts.sum()
    if total == 0 or counts.size < 2:
        return high
    p0 = positives.sum() / total
    rates = positives / np.maximum(counts, 1)
    weights = counts / total
    observed = float(np.sum(weights * (rates - p0) ** 2))
    noise = float(np.sum(weights * p0 * (1 - p0) / np.maximum(counts, 1)))
    between = observed - noise
    if between <= 0 or p0 <= 0 or p0 >= 1:
        return high
    return float(np.clip(p0 * (1 - p0) / between - 1.0, low, high))


class ChannelPrior:
    """Smoothed per-source conversion rate, a model of one column.

    Args:
        column: the source column (default ``source``). Where the frame lacks it, every
            lead scores the global rate.
        strength: pseudo-count ``m`` of the prior; None estimates it from the data.
        min_strength: lower bound of the estimated ``m``.
        max_strength: upper bound of the estimated ``m``.
    """

    def __init__(
        self,
        column: str = Columns.SOURCE,
        strength: float | None = None,
        min_strength: float = 2.0,
        max_strength: float = 500.0,
    ) -> None:
        self.column = column
        self.strength = strength
        self.min_strength = min_strength
        self.max_strength = max_strength
        self.rates_: dict[str, float] | None = None
        self.counts_: dict[str, int] = {}
        self.global_rate_: float = 0.5
        self.strength_: float = 0.0
        self.feature_names_: list[str] = []
        self.base_value_: float = 0.0

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    def _keys(self, X: Table) -> np.ndarray:
        """Return the source of every row, missing as a reserved key."""
        if self.column not in X.columns:
            return np.full(len(X), _MISSING, dtype=object)
        keys = category_values(X, self.column)
        keys[pd.isna(keys)] = _MISSING
        return keys

    def fit(self, X: pd.DataFrame, y: np.ndarray, specs: Sequence[FeatureSpec]) -> Self:
        """Learn the global rate and each source's smoothed rate.

        Args:
            X: feature frame; only the ``column`` column is read.
            y: 0/1 (or bool) converted labels.
            specs: column roles; fix ``feature_names_`` (the columns of ``explain``).

        Raises:
            DataError: bad labels, or a spec names a column absent from ``X``.
        """
        check_frame(X, [])
        labels = check_labels(y, len(X)).astype(np.float64)
        self.feature_names_ = [s.name for s in model_specs(specs, X)]
        keys = self._keys(X)
        table = pd.DataFrame({"key": keys, "y": labels}).groupby("key", sort=True)["y"]
        counts = table.count()
        positives = table.sum()
        # Half a lead either way keeps the global rate off 0 and 1.
        p0 = float((labels.sum() + 0.5) / (labels.size + 1.0))
        if self.strength is not None:
            m = float(self.strength)
        else:
            m = estimate_strength(
                counts.to_numpy(float),
                positives.to_numpy(float),
                self.min_strength,
                self.max_strength,
            )
        rates = (positives + m * p0) / (counts + m)
        self.rates_ = {str(k): float(v) for k, v in rates.items()}
        self.counts_ = {str(k): int(v) for k, v in counts.items()}
        self.global_rate_ = p0
        self.strength_ = m
        self.base_value_ = float(logit(p0))
        return self

    def known_levels(self) -> dict[str, frozenset[str]]:
        """The sources with a rate of their own; any other gets the global rate.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rates_")
        assert self.rates_ is not None
        return {self.column: frozenset(k for k in self.rates_ if k != _MISSING)}

    def decision_function(self, X: Table) -> np.ndarray:
        """Return logit(rate of the row's source), shape ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "rates_")
        assert self.rates_ is not None
        keys = self._keys(X)
        if len(keys) <= SMALL_ROWS:  # a few rows: dict lookups, no Series built
            table = self.rates_
            rates = np.fromiter((table.get(k, np.nan) for k in keys), np.float64, len(keys))
        else:
            rates = np.array(pd.Series(keys, dtype=object).map(self.rates_), dtype=np.float64)
        rates[np.isnan(rates)] = self.global_rate_
        return logit(rates)

    def predict_proba(self, X: Table) -> np.ndarray:
        """Return the smoothed rate of each row's source, shape ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
        """
        return sigmoid(self.decision_function(X))

    def explain(self, X: Table) -> np.ndarray:
        """Return contributions ``(n, n_features)``: all in the source column, if modelled.

        The source column holds ``logit(rate) - logit(global rate)``; where the source
        is not among ``feature_names_`` the contributions are all zero.

        Raises:
            NotFittedError: before ``fit``.
        """
        raw = self.decision_function(X)
        out = np.zeros((len(X), len(self.feature_names_)))
        if self.column in self.feature_names_:
            out[:, self.feature_names_.index(self.column)] = raw - self.base_value_
        return out

    def save(self, path: Path) -> None:
        """Write ``channel.json`` into the existing directory ``path``.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing directory.
        """
        require_fitted(self, "rates_")
        folder = check_directory(path)
        write_json(
            folder / _FILE,
            _KIND,
            {
                "params": self.get_params(),
                "rates": self.rates_,
                "counts": self.counts_,
                "global_rate": self.global_rate_,
                "strength": self.strength_,
                "feature_names": self.feature_names_,
            },
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a prior written by :meth:`save` from directory ``path``.

        Raises:
            ModelFolderError: the file is missing or of another kind or version.
        """
        body = read_json(Path(path) / _FILE, _KIND)
        model = cls(**body["params"])
        model.rates_ = {str(k): float(v) for k, v in body["rates"].items()}
        model.counts_ = {str(k): int(v) for k, v in body["counts"].items()}
        model.global_rate_ = float(body["global_rate"])
        model.strength_ = float(body["strength"])
        model.feature_names_ = [str(v) for v in body["feature_names"]]
        model.base_value_ = float(logit(model.global_rate_))
        return model
