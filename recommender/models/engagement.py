"""Engagement features: time-decayed counts of a lead's events as of a moment T.

Every event (``lead_id``, ``event``, ``at``, ``weight``) that happened *strictly before*
the lead's as-of time T counts ``weight * 2 ** (-age_days / half_life_days)``, where
``age_days = (T - at)`` in days: an event one half-life old counts half as much as one
that just happened. Events at or after T are ignored, so features computed as of a past
moment never see the future.

Per lead, ``transform`` returns

- ``eng_<event>``: decayed count of each event type learned at ``fit`` (the most frequent
  ``max_event_types`` types seen at least ``min_event_count`` times);
- ``eng_other_events``: decayed count of all other event types (rare or unseen);
- ``engagement``: the total decayed count over all events;
- ``days_since_last_event``: days from the latest event before T to T (NaN if none).

A lead without events gets zeros and NaN, so it still scores from its fit features.
These columns are meant to be appended to the feature frame as numeric features, so the
fit model learns how much each kind of event is worth.

With ``half_life_days=None``, ``fit`` picks the half-life from ``candidate_half_lives``
whose total engagement best separates converted from other leads (AUC), when labels are
given; otherwise it uses 14 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from recommender.columns import Columns
from recommender.errors import DataError
from recommender.models.base import (
    check_directory,
    init_params,
    read_json,
    require_fitted,
    write_json,
)

_FILE = "engagement.json"
_KIND = "engagement"
_DAY_NS = 86_400 * 1_000_000_000
DEFAULT_HALF_LIFE_DAYS = 14.0
TOTAL = "engagement"
RECENCY = "days_since_last_event"
OTHER = "eng_other_events"
PREFIX = "eng_"

AsOf = pd.Timestamp | np.datetime64 | np.ndarray | pd.Series | pd.DatetimeIndex


def _check_events(events: pd.DataFrame) -> None:
    """Raise DataError unless ``events`` has the lead, event and time columns.

    Raises:
        DataError: a required column is missing.
    """
    for col in (Columns.LEAD, Columns.EVENT, Columns.AT):
        if col not in events.columns:
            raise DataError("events table lacks a required column", file="events.csv", column=col)


def _as_of_array(as_of: AsOf, n: int) -> np.ndarray:
    """Return ``as_of`` as a datetime64[ns] array of length ``n``.

    Raises:
        DataError: wrong length, or a missing (NaT) time.
    """
    if isinstance(as_of, (pd.Timestamp, np.datetime64, str)):
        out = np.full(n, pd.Timestamp(as_of).to_datetime64(), dtype="datetime64[ns]")
    else:
        if isinstance(as_of, np.ndarray) and as_of.dtype == np.dtype("datetime64[ns]"):
            out = as_of  # already what pd.to_datetime would return (read, never written)
        else:
            out = pd.to_datetime(np.asarray(as_of)).to_numpy(dtype="datetime64[ns]")
        if out.shape != (n,):
            raise DataError(f"as_of must be one time or {n} times, got shape {out.shape}")
    if np.isnat(out).any():
        raise DataError("as_of holds a missing time")
    return out


class EngagementModel:
    """Time-decayed engagement features per lead, computed as of any moment.

    Args:
        half_life_days: days after which an event counts half; None picks it at ``fit``.
        max_event_types: most event types with a column of their own.
        min_event_count: an event type needs this many events at ``fit`` for a column.
        candidate_half_lives: half-lives (days) tried when ``half_life_days`` is None.
    """

    def __init__(
        self,
        half_life_days: float | None = DEFAULT_HALF_LIFE_DAYS,
        max_event_types: int = 30,
        min_event_count: int = 20,
        candidate_half_lives: Sequence[float] = (1.0, 3.0, 7.0, 14.0, 30.0, 90.0),
    ) -> None:
        self.half_life_days = half_life_days
        self.max_event_types = max_event_types
        self.min_event_count = min_event_count
        self.candidate_half_lives = candidate_half_lives
        self.event_types_: list[str] | None = None
        self.half_life_days_: float = DEFAULT_HALF_LIFE_DAYS
        self.half_life_auc_: dict[str, float] = {}

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    @property
    def feature_names_(self) -> list[str]:
        """The columns ``transform`` returns, in order.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "event_types_")
        assert self.event_types_ is not None
        return [*(PREFIX + t for t in self.event_types_), OTHER, TOTAL, RECENCY]

    def fit(
        self,
        events: pd.DataFrame,
        lead_ids: Sequence[str] | None = None,
        as_of: AsOf | None = None,
        labels: np.ndarray | None = None,
    ) -> Self:
        """Learn the event types (and, if ``half_life_days`` is None, the half-life).

        Args:
            events: ``lead_id``, ``event``, ``at`` (datetime64) and optional ``weight``.
            lead_ids: leads whose labels are given (only to pick the half-life).
            as_of: their as-of times (only to pick the half-life).
            labels: their 0/1 outcomes (only to pick the half-life).

        Raises:
            DataError: ``events`` lacks a required column.
        """
        _check_events(events)
        counts = events[Columns.EVENT].dropna().astype(str).value_counts()
        counts = counts[counts >= self.min_event_count]
        ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        self.event_types_ = [str(k) for k, _ in ranked[: self.max_event_types]]
        self.half_life_auc_ = {}
        self.half_life_days_ = float(self.half_life_days or DEFAULT_HALF_LIFE_DAYS)
        if self.half_life_days is None and lead_ids is not None and labels is not None:
            self.half_life_days_ = self._pick_half_life(events, lead_ids, as_of, labels)
        return self

    def _pick_half_life(
        self, events: pd.DataFrame, lead_ids: Sequence[str], as_of: AsOf | None, labels: Any
    ) -> float:
        """Return the candidate half-life whose total engagement has the best AUC."""
        y = np.asarray(labels, dtype=np.float64)
        if as_of is None or y.min() == y.max():
            return DEFAULT_HALF_LIFE_DAYS
        for h in self.candidate_half_lives:
            total = self._features(events, lead_ids, as_of, float(h))[TOTAL].to_numpy()
            self.half_life_auc_[f"{float(h):g}"] = float(roc_auc_score(y, total))
        best = max(self.half_life_auc_, key=lambda k: self.half_life_auc_[k])
        return float(best)

    def transform(self, events: pd.DataFrame, lead_ids: Sequence[str], as_of: AsOf) -> pd.DataFrame:
        """Return the engagement features of ``lead_ids`` as of ``as_of``.

        Args:
            events: ``lead_id``, ``event``, ``at`` (datetime64) and optional ``weight``
                (missing weights count 1.0). Events of other leads are ignored.
            lead_ids: distinct lead ids, one output row each, in this order.
            as_of: one time for all leads, or one per lead; only events strictly before
                it count.

        Returns:
            A frame with ``feature_names_`` columns (float64), one row per lead, index
            ``0..n-1``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: a required column is missing, ``lead_ids`` repeat, or ``as_of``
                has the wrong length or a missing time.
        """
        require_fitted(self, "event_types_")
        return self._features(events, lead_ids, as_of, self.half_life_days_)

    def transform_values(
        self, events: pd.DataFrame, lead_ids: Sequence[str], as_of: AsOf
    ) -> np.ndarray:
        """:meth:`transform` as an ``(n, len(feature_names_))`` float64 array (no frame).

        Raises:
            NotFittedError: before ``fit``.
            DataError: as :meth:`transform`.
        """
        require_fitted(self, "event_types_")
        return self._table(events, lead_ids, as_of, self.half_life_days_)

    def _features(
        self, events: pd.DataFrame, lead_ids: Sequence[str], as_of: AsOf, half_life: float
    ) -> pd.DataFrame:
        """Compute the feature frame for one half-life (vectorised over all events)."""
        table = self._table(events, lead_ids, as_of, half_life)
        return pd.DataFrame(table, columns=self.feature_names_)

    def _table(
        self, events: pd.DataFrame, lead_ids: Sequence[str], as_of: AsOf, half_life: float
    ) -> np.ndarray:
        """The features of ``lead_ids`` for one half-life, ``(n, k + 2)`` float64."""
        _check_events(events)
        assert self.event_types_ is not None
        names = [str(v) for v in lead_ids]
        if len(set(names)) != len(names):
            raise DataError("lead ids must be distinct to compute engagement")
        n, k = len(names), len(self.event_types_) + 1
        cut = _as_of_array(as_of, n)
        per_type, last = np.zeros((n, k)), np.full(n, np.inf)
        if len(events):  # without events: zero activity, no recency
            ids = pd.Index(np.asarray(names, dtype=object))
            per_type, last = self._accumulate(events, ids, cut, k, half_life)
        recency = np.where(np.isinf(last), np.nan, last)
        return np.column_stack([per_type, per_type.sum(axis=1), recency])

    def _accumulate(
        self, events: pd.DataFrame, ids: pd.Index, cut: np.ndarray, k: int, half_life: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decayed weight per (lead, event type), ``(n, k)``, and days since each lead's
        last event before its cut (``inf`` where none)."""
        assert self.event_types_ is not None
        n = len(ids)
        pos = ids.get_indexer(pd.Index(events[Columns.LEAD].astype(str).to_numpy()))
        at = pd.to_datetime(events[Columns.AT]).to_numpy(dtype="datetime64[ns]")
        keep = pos >= 0
        keep[keep] = at[keep] < cut[pos[keep]]  # NaT compares False: dropped
        pos, at = pos[keep], at[keep]
        age = (cut[pos] - at).astype(np.int64) / _DAY_NS
        if Columns.WEIGHT in events.columns:
            weight = pd.to_numeric(events[Columns.WEIGHT], errors="coerce").to_numpy(float)[keep]
            weight = np.where(np.isnan(weight), 1.0, weight)
        else:
            weight = np.ones(pos.size)
        value = weight * np.exp2(-age / half_life)
        kinds = events[Columns.EVENT].astype(object).to_numpy()[keep]
        code = pd.Index(self.event_types_, dtype=object).get_indexer(pd.Index(kinds))
        code[code < 0] = k - 1
        per_type = np.bincount(pos * k + code, weights=value, minlength=n * k).reshape(n, k)
        last = np.full(n, np.inf)
        np.minimum.at(last, pos, age)
        return per_type, last

    def save(self, path: Path) -> None:
        """Write ``engagement.json`` into the existing directory ``path``.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing directory.
        """
        require_fitted(self, "event_types_")
        folder = check_directory(path)
        write_json(
            folder / _FILE,
            _KIND,
            {
                "params": self.get_params(),
                "event_types": self.event_types_,
                "half_life_days": self.half_life_days_,
                "half_life_auc": self.half_life_auc_,
            },
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save` from directory ``path``.

        Raises:
            ModelFolderError: the file is missing or of another kind or version.
        """
        body = read_json(Path(path) / _FILE, _KIND)
        params = dict(body["params"])
        params["candidate_half_lives"] = tuple(params["candidate_half_lives"])
        model = cls(**params)
        model.event_types_ = [str(v) for v in body["event_types"]]
        model.half_life_days_ = float(body["half_life_days"])
        model.half_life_auc_ = {str(k): float(v) for k, v in body["half_life_auc"].items()}
        return model
