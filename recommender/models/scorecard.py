"""The practitioners' logistic scorecard: bins, weight of evidence, information value.

Each field is cut into bins: numeric fields at training quantiles (a value equal to a
cut point falls in the lower bin, so a heavy spike such as "0 visits" keeps a bin of its
own) plus a bin for missing values; categorical fields one bin per level seen at least
``min_category_count`` times (and at least ``rare_share`` of the rows), one "other" bin
for rarer and unseen levels, and a missing bin. Each bin gets its smoothed weight of
evidence

    WOE = ln((conv_in_bin + a+) / (conv + a+ B)) - ln((other_in_bin + a-) / (other + a- B))

(``a+ = 2 a r`` and ``a- = 2 a (1 - r)``, ``a`` = ``smoothing``, ``r`` = the overall
conversion rate, ``B`` = number of bins), so a positive WOE means "converts more than
average", a small bin shrinks towards 0, and an empty bin is exactly neutral. A field's
information value ``IV = sum((share of converted - share of others) * WOE)`` measures
its strength; fields with ``IV >= min_iv`` enter a logistic regression on their WOE
values, and fields that come out with a negative coefficient (collinear echoes of
another field) are dropped and the regression refitted, so every kept field reads
"higher WOE, higher score".

``explain`` returns ``coef * WOE(x)`` minus that term's training mean: positive means the
field raised this lead above the average lead. ``describe`` lists every bin with its
count, conversion rate, WOE and points (``points_to_double_odds`` points per doubling of
the odds), for a report a sales manager can read.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from recommender.columns import Role
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
    numeric_values,
    read_json,
    require_fitted,
    sigmoid,
    write_json,
)

_FILE = "scorecard.json"
_KIND = "scorecard"


@dataclass
class FieldBins:
    """The bins of one field and their weight of evidence.

    Bin layout: numeric fields have ``len(cuts) + 1`` value bins (bin ``i`` holds
    ``cuts[i-1] < x <= cuts[i]``); categorical fields have one bin per ``levels`` entry
    then an "other" bin. The last bin always holds missing values.

    Attributes:
        name: column name.
        role: ``numeric`` or ``categorical``.
        cuts: ascending cut points (numeric fields), else empty.
        levels: kept levels (categorical fields), else empty.
        woe: weight of evidence per bin (natural log units).
        counts: training rows per bin.
        positives: converted training rows per bin.
        iv: information value of the field.
    """

    name: str
    role: str
    cuts: list[float]
    levels: list[str]
    woe: np.ndarray
    counts: np.ndarray
    positives: np.ndarray
    iv: float

    @property
    def n_bins(self) -> int:
        """Number of bins, the missing bin included."""
        n_value = len(self.cuts) + 1 if self.role == Role.NUMERIC else len(self.levels) + 1
        return n_value + 1

    def index(self, X: Table) -> np.ndarray:
        """Return the bin index (int64) of every row of ``X`` for this field."""
        missing_bin = self.n_bins - 1
        if self.role == Role.NUMERIC:
            values = numeric_values(X, self.name)
            idx = np.searchsorted(self._cut_array, values, side="left")
            idx = idx.astype(np.int64)
            idx[np.isnan(values)] = missing_bin
            return idx
        cats = category_values(X, self.name)
        if len(cats) <= SMALL_ROWS:  # a dict lookup beats building an index for a few rows
            codes, other = self._level_codes, len(self.levels)
            return np.fromiter(  # category_values gives None, only None, where missing
                (missing_bin if v is None else codes.get(v, other) for v in cats),
                np.int64,
                len(cats),
            )
        idx = self._level_index.get_indexer(pd.Index(cats, dtype=object)).astype(np.int64)
        idx[idx < 0] = len(self.levels)
        idx[pd.isna(cats)] = missing_bin
        return idx

    @functools.cached_property
    def _cut_array(self) -> np.ndarray:
        """``cuts`` as float64 (built once per field)."""
        return np.asarray(self.cuts, dtype=np.float64)

    @functools.cached_property
    def _level_codes(self) -> dict[str, int]:
        """Bin of each kept level (built once per field)."""
        return {v: i for i, v in enumerate(self.levels)}

    @functools.cached_property
    def _level_index(self) -> pd.Index:
        """``levels`` as an index, built (with its hash table) once per field."""
        return pd.Index(self.levels, dtype=object)

    def labels(self) -> list[str]:
        """Return a readable label per bin, e.g. ``<= 3``, ``(3, 7]``, ``other``, ``missing``."""
        if self.role == Role.NUMERIC:
            if not self.cuts:
                out = ["any value"]
            else:
                c = [f"{v:g}" for v in self.cuts]
                out = [f"<= {c[0]}"]
                out += [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(c)]
                out.append(f"> {c[-1]}")
        else:
            out = [*self.levels, "other"]
        return [*out, "missing"]

    def to_json(self) -> dict[str, Any]:
        """Return this field as a JSON-ready dict."""
        return {
            "name": self.name,
            "role": self.role,
            "cuts": [float(v) for v in self.cuts],
            "levels": list(self.levels),
            "woe": [float(v) for v in self.woe],
            "counts": [int(v) for v in self.counts],
            "positives": [int(v) for v in self.positives],
            "iv": float(self.iv),
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FieldBins:
        """Rebuild a field from :meth:`to_json` output."""
        return cls(
            name=str(body["name"]),
            role=str(body["role"]),
            cuts=[float(v) for v in body["cuts"]],
            levels=[str(v) for v in body["levels"]],
            woe=np.asarray(body["woe"], dtype=np.float64),
            counts=np.asarray(body["counts"], dtype=np.int64),
            positives=np.asarray(body["positives"], dtype=np.int64),
            iv=float(body["iv"]),
        )


def quantile_cuts(values: np.ndarray, n_bins: int) -> list[float]:
    """Return ascending cut points splitting the non-missing ``values`` into ~equal bins.

    A field with at most ``n_bins`` distinct values gets one bin per value.
    """
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return []
    distinct = np.unique(finite)
    if distinct.size <= n_bins:
        return [float(v) for v in distinct[:-1]]
    q = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    cuts = np.unique(np.quantile(finite, q, method="inverted_cdf"))
    cuts = cuts[cuts < distinct[-1]]
    return [float(v) for v in cuts]


def kept_levels(values: np.ndarray, min_count: int) -> list[str]:
    """Return the levels of ``values`` seen at least ``min_count`` times, sorted."""
    present = pd.Series(values[~pd.isna(values)], dtype=object)
    counts = present.value_counts()
    return sorted(str(k) for k, c in counts.items() if c >= min_count)


def fit_field_bins(
    X: pd.DataFrame,
    spec: FeatureSpec,
    y: np.ndarray,
    *,
    n_bins: int = 10,
    min_category_count: int = 10,
    smoothing: float = 0.5,
) -> FieldBins:
    """Bin one field of ``X`` and compute its smoothed WOE and IV against labels ``y``."""
    if spec.role == Role.NUMERIC:
        field = FieldBins(
            spec.name,
            spec.role,
            quantile_cuts(numeric_values(X, spec.name), n_bins),
            [],
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            0.0,
        )
    else:
        levels = kept_levels(category_values(X, spec.name), min_category_count)
        field = FieldBins(
            spec.name, spec.role, [], levels, np.zeros(0), np.zeros(0), np.zeros(0), 0.0
        )
    idx = field.index(X)
    counts = np.bincount(idx, minlength=field.n_bins).astype(np.int64)
    positives = np.bincount(idx, weights=y, minlength=field.n_bins).astype(np.int64)
    negatives = counts - positives
    # Pseudo-counts in proportion to the classes (2a per bin in all), so a bin seen
    # rarely shrinks towards WOE 0 and a bin never seen (a missing value or category
    # absent from training) is exactly neutral. Equal pseudo-counts would give an empty
    # bin WOE ln(N/P): a +50-point bonus when conversions are rare.
    b = field.n_bins
    rate = (positives.sum() + 0.5) / (counts.sum() + 1.0)
    a_pos, a_neg = 2 * smoothing * rate, 2 * smoothing * (1 - rate)
    share_pos = (positives + a_pos) / (positives.sum() + a_pos * b)
    share_neg = (negatives + a_neg) / (negatives.sum() + a_neg * b)
    field.woe = np.log(share_pos) - np.log(share_neg)
    field.counts, field.positives = counts, positives
    field.iv = float(np.sum((share_pos - share_neg) * field.woe))
    return field


class Scorecard:
    """Logistic scorecard on weight-of-evidence bins, readable field by field.

    Args:
        n_bins: quantile bins per numeric field (before merging tied quantiles).
        min_iv: fields with a lower information value are left out.
        min_category_count: levels seen fewer times go to the "other" bin.
        rare_share: levels below this share of the rows also go to "other".
        smoothing: pseudo-count added to each bin's converted and other counts.
        C: inverse L2 strength of the logistic regression (smaller = more regularised).
        drop_negative: refit without fields whose coefficient comes out negative.
        points_to_double_odds: scale of ``describe``'s points.
    """

    def __init__(
        self,
        n_bins: int = 10,
        min_iv: float = 0.02,
        min_category_count: int = 10,
        rare_share: float = 0.005,
        smoothing: float = 0.5,
        C: float = 1.0,
        drop_negative: bool = True,
        points_to_double_odds: float = 20.0,
    ) -> None:
        self.n_bins = n_bins
        self.min_iv = min_iv
        self.min_category_count = min_category_count
        self.rare_share = rare_share
        self.smoothing = smoothing
        self.C = C
        self.drop_negative = drop_negative
        self.points_to_double_odds = points_to_double_odds
        self.fields_: list[FieldBins] | None = None
        self.feature_names_: list[str] = []
        self.coef_: np.ndarray = np.zeros(0)
        self.intercept_: float = 0.0
        self.mean_contribution_: np.ndarray = np.zeros(0)
        self.base_value_: float = 0.0

    def fit(self, X: pd.DataFrame, y: np.ndarray, specs: Sequence[FeatureSpec]) -> Self:
        """Bin every numeric and categorical field, select by IV, fit the regression.

        Args:
            X: feature frame, one row per lead.
            y: 0/1 (or bool) converted labels, one per row of ``X``.
            specs: column roles; ``text`` columns are ignored.

        Raises:
            DataError: bad labels, or a spec names a column absent from ``X``.
        """
        check_frame(X, [])
        labels = check_labels(y, len(X)).astype(np.float64)
        used = model_specs(specs, X)
        min_count = max(self.min_category_count, int(np.ceil(self.rare_share * len(X))))
        fields = [
            fit_field_bins(
                X,
                s,
                labels,
                n_bins=self.n_bins,
                min_category_count=min_count,
                smoothing=self.smoothing,
            )
            for s in used
        ]
        woe = self._woe_matrix(X, fields)
        keep = np.array([f.iv >= self.min_iv for f in fields], dtype=bool)
        coef, intercept = self._regress(woe, labels, keep)
        self.fields_ = fields
        self.feature_names_ = [f.name for f in fields]
        self.coef_ = coef
        self.intercept_ = intercept
        self.mean_contribution_ = (woe * coef).mean(axis=0) if len(X) else np.zeros(len(fields))
        self.base_value_ = float(intercept + self.mean_contribution_.sum())
        return self

    def _regress(
        self, woe: np.ndarray, labels: np.ndarray, keep: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Fit the logistic regression on the kept WOE columns; return coef per field."""
        coef = np.zeros(woe.shape[1])
        rate = float(np.clip(labels.mean(), 1e-6, 1 - 1e-6)) if labels.size else 0.5
        keep = keep.copy()
        while keep.any() and 0 < labels.sum() < labels.size:
            reg = LogisticRegression(C=self.C, max_iter=2000)
            reg.fit(woe[:, keep], labels)
            fitted = reg.coef_[0]
            if self.drop_negative and (fitted < 0).any():
                cols = np.flatnonzero(keep)
                keep[cols[fitted < 0]] = False
                continue
            coef[keep] = fitted
            return coef, float(reg.intercept_[0])
        return coef, float(logit(rate))

    @staticmethod
    def _woe_matrix(X: Table, fields: Sequence[FieldBins]) -> np.ndarray:
        """Return the (n, n_fields) matrix of each row's WOE per field."""
        out = np.zeros((len(X), len(fields)))
        for j, field in enumerate(fields):
            out[:, j] = field.woe[field.index(X)]
        return out

    def _fitted_woe(self, X: Table) -> np.ndarray:
        """Check fitted state and columns, then return the WOE matrix of ``X``."""
        require_fitted(self, "fields_")
        assert self.fields_ is not None
        check_frame(X, self.feature_names_)
        return self._woe_matrix(X, self.fields_)

    def decision_function(self, X: Table) -> np.ndarray:
        """Return the scorecard log-odds per row, shape ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        return np.asarray(self._fitted_woe(X) @ self.coef_ + self.intercept_, dtype=np.float64)

    def predict_proba(self, X: Table) -> np.ndarray:
        """Return P(converted) per row, shape ``(n,)``, inside [1e-4, 1 - 1e-4].

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        return sigmoid(self.decision_function(X))

    def known_levels(self) -> dict[str, frozenset[str]]:
        """The categories each categorical field scores on its own; any other value (rare
        in training, or new) shares the field's "other" bin.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "fields_")
        assert self.fields_ is not None
        return {f.name: frozenset(f.levels) for f in self.fields_ if f.role == Role.CATEGORICAL}

    def explain(self, X: Table) -> np.ndarray:
        """Return ``coef * WOE(x)`` minus its training mean, shape ``(n, n_features)``.

        Log-odds units; positive = this field raised the lead above the average lead.
        ``base_value_ + explain(X).sum(axis=1) == decision_function(X)``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        return np.asarray(self._fitted_woe(X) * self.coef_ - self.mean_contribution_)

    def describe(self) -> list[dict[str, Any]]:
        """Return per field: IV, whether kept, coefficient, and each bin's WOE and points.

        Points are ``points_to_double_odds / ln 2 * coef * WOE``: +20 points (by
        default) doubles the odds of converting.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "fields_")
        assert self.fields_ is not None
        factor = self.points_to_double_odds / np.log(2.0)
        out = []
        for field, coef in zip(self.fields_, self.coef_, strict=True):
            bins = []
            for label, count, pos, woe in zip(
                field.labels(), field.counts, field.positives, field.woe, strict=True
            ):
                bins.append(
                    {
                        "bin": label,
                        "count": int(count),
                        "converted": int(pos),
                        "rate": float(pos / count) if count else None,
                        "woe": float(woe),
                        "points": float(round(factor * coef * woe, 1)),
                    }
                )
            out.append(
                {
                    "field": field.name,
                    "role": field.role,
                    "iv": field.iv,
                    "selected": bool(coef != 0.0),
                    "coef": float(coef),
                    "bins": bins,
                }
            )
        return out

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    def save(self, path: Path) -> None:
        """Write ``scorecard.json`` into the existing directory ``path``.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing directory.
        """
        require_fitted(self, "fields_")
        assert self.fields_ is not None
        folder = check_directory(path)
        write_json(
            folder / _FILE,
            _KIND,
            {
                "params": self.get_params(),
                "fields": [f.to_json() for f in self.fields_],
                "coef": [float(v) for v in self.coef_],
                "intercept": self.intercept_,
                "mean_contribution": [float(v) for v in self.mean_contribution_],
            },
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a scorecard written by :meth:`save` from directory ``path``.

        Raises:
            ModelFolderError: the file is missing or of another kind or version.
        """
        body = read_json(Path(path) / _FILE, _KIND)
        model = cls(**body["params"])
        model.fields_ = [FieldBins.from_json(f) for f in body["fields"]]
        model.feature_names_ = [f.name for f in model.fields_]
        model.coef_ = np.asarray(body["coef"], dtype=np.float64)
        model.intercept_ = float(body["intercept"])
        model.mean_contribution_ = np.asarray(body["mean_contribution"], dtype=np.float64)
        model.base_value_ = float(model.intercept_ + model.mean_contribution_.sum())
        return model
