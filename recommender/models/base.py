"""The interface every fit model shares, and the small helpers they all use.

A *fit model* estimates P(converted | lead features) from a feature frame ``X`` (numeric
columns float64 with NaN for missing, categorical columns strings with None/NaN for
missing), a 0/1 label vector ``y`` and the column roles (``FeatureSpec``). Columns with
role ``text`` are ignored by every model here (free text needs its own encoder first).

Every model follows the scikit-learn estimator habits: ``__init__`` stores parameters,
``fit`` returns ``self``, learned state lives in trailing-underscore attributes, and using
a model before ``fit`` raises :class:`~recommender.errors.NotFittedError`. A fitted model
saves itself into an existing directory as JSON (LightGBM as its own text format) and
loads back to identical predictions; nothing is pickled.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

from recommender.columns import Role
from recommender.data.dataset import SMALL_ROWS, FeatureColumns, FeatureSpec, to_float
from recommender.errors import DataError, ModelFolderError, NotFittedError

FORMAT_VERSION = 1
"""Version of the on-disk format written by ``save``; ``load`` refuses any other."""

PROBA_EPS = 1e-4
"""Probabilities are kept inside ``[PROBA_EPS, 1 - PROBA_EPS]``."""

Table = pd.DataFrame | FeatureColumns
"""What a fitted model predicts from: a feature frame, or the same columns as arrays."""


@runtime_checkable
class FitModel(Protocol):
    """A lead-level conversion model: P(converted | features).

    Attributes:
        feature_names_: the modelled input columns (text columns excluded), in the
            column order of ``explain``.
        base_value_: the log-odds that ``explain``'s contributions are measured from:
            ``decision_function(X) == base_value_ + explain(X).sum(axis=1)``.
    """

    feature_names_: list[str]
    base_value_: float

    def fit(self, X: pd.DataFrame, y: np.ndarray, specs: Sequence[FeatureSpec]) -> Self:
        """Learn from features ``X``, 0/1 labels ``y`` and column roles ``specs``."""
        ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Return P(converted) per row, shape ``(n,)``, strictly inside (0, 1)."""
        ...

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Return the raw log-odds per row, shape ``(n,)``."""
        ...

    def explain(self, X: pd.DataFrame) -> np.ndarray:
        """Return per-feature log-odds contributions, shape ``(n, len(feature_names_))``."""
        ...

    def save(self, path: Path) -> None:
        """Write the fitted model into the existing directory ``path``."""
        ...

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by ``save`` from ``path``."""
        ...


def model_specs(specs: Sequence[FeatureSpec], X: pd.DataFrame) -> list[FeatureSpec]:
    """Return the specs a model uses: numeric and categorical ones, in the given order.

    Raises:
        DataError: a spec has an unknown role, or names a column absent from ``X``.
    """
    used: list[FeatureSpec] = []
    for spec in specs:
        if spec.role == Role.TEXT:
            continue
        if spec.role not in (Role.NUMERIC, Role.CATEGORICAL):
            raise DataError(f"cannot model role '{spec.role}'", column=spec.name)
        if spec.name not in X.columns:
            raise DataError("feature column is missing from the frame", column=spec.name)
        used.append(spec)
    return used


def check_frame(X: Table, names: Sequence[str]) -> None:
    """Check that ``X`` is a DataFrame (or FeatureColumns) holding every column in ``names``.

    Raises:
        DataError: ``X`` is not a DataFrame or lacks a column the model was fitted with.
    """
    if not isinstance(X, (pd.DataFrame, FeatureColumns)):
        raise DataError(f"features must be a pandas DataFrame, got {type(X).__name__}")
    for name in names:
        if name not in X.columns:
            raise DataError("feature column is missing from the frame", column=name)


def check_labels(y: Any, n_rows: int) -> np.ndarray:
    """Return ``y`` as an int8 array of 0/1 labels of length ``n_rows``.

    Raises:
        DataError: wrong length, missing values, or values other than 0/1 (or bool).
    """
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n_rows:
        raise DataError(f"labels must be a vector of {n_rows} values, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    try:
        num = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError("labels must be 0/1 or true/false") from exc
    if np.isnan(num).any() or not np.isin(num, (0.0, 1.0)).all():
        raise DataError("labels must be 0/1 or true/false, without missing values")
    return num.astype(np.int8)


def numeric_values(X: Table, name: str) -> np.ndarray:
    """Return column ``name`` of ``X`` as float64 (anything unparsable becomes NaN)."""
    col = X[name]
    if isinstance(col, np.ndarray):
        return col if col.dtype == np.float64 else to_float(col)
    if col.dtype == np.float64:  # already typed (the usual case): no conversion pass
        return np.asarray(col.to_numpy(), dtype=np.float64)
    return np.asarray(pd.to_numeric(col, errors="coerce"), dtype=np.float64)


def category_values(X: Table, name: str) -> np.ndarray:
    """Return column ``name`` of ``X`` as an object array of ``str``, None where missing."""
    col = X[name]
    if isinstance(col, np.ndarray):
        values = np.asarray(col, dtype=object)
        if len(values) <= SMALL_ROWS and all(v is None or type(v) is str for v in values):
            return values.copy()  # a few cells already in this form: no missing-value scan
    else:
        values = col.to_numpy(dtype=object)
    present = ~np.asarray(pd.isna(values), dtype=bool)
    out = np.full(len(values), None, dtype=object)
    out[present] = [v if type(v) is str else str(v) for v in values[present]]
    return out


def init_params(model: object) -> dict[str, Any]:
    """Return the constructor arguments of ``model`` as stored on it (scikit-learn style).

    Every estimator stores each ``__init__`` argument under its own name, so the
    parameters saved with a model are read off the signature instead of a list kept by
    hand beside it. Tuples become lists (what JSON writes anyway).
    """
    names = [n for n in inspect.signature(type(model).__init__).parameters if n != "self"]
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(model, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def require_fitted(model: object, attribute: str) -> None:
    """Raise NotFittedError unless ``model`` has the fitted ``attribute``.

    Raises:
        NotFittedError: ``model`` has not been fitted.
    """
    if getattr(model, attribute, None) is None:
        raise NotFittedError(f"{type(model).__name__} is not fitted yet: call fit first")


def logit(p: np.ndarray | float) -> np.ndarray:
    """Return log(p / (1 - p)) with ``p`` clipped into [1e-12, 1 - 1e-12]."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """Return 1 / (1 + exp(-z)) clipped into [PROBA_EPS, 1 - PROBA_EPS]."""
    p = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
    return np.asarray(np.clip(p, PROBA_EPS, 1.0 - PROBA_EPS), dtype=np.float64)


def write_json(path: Path, kind: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` with its ``kind`` and ``FORMAT_VERSION`` as JSON to ``path``.

    Floats are written with ``repr`` precision, so they read back bit for bit.
    """
    body = {"kind": kind, "format_version": FORMAT_VERSION, **payload}
    path.write_text(json.dumps(body, indent=1, allow_nan=False), encoding="utf-8")


def read_json(path: Path, kind: str) -> dict[str, Any]:
    """Read a JSON file written by :func:`write_json` and check its kind and version.

    Raises:
        ModelFolderError: the file is missing, unreadable, of another kind or version.
    """
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFolderError(f"{path}: file is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(body, dict) or body.get("kind") != kind:
        raise ModelFolderError(f"{path}: expected a '{kind}' model")
    if body.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{path}: format version {body.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    return body


def check_directory(path: Path) -> Path:
    """Return ``path`` as a Path after checking it is an existing directory.

    Raises:
        ModelFolderError: ``path`` is not an existing directory.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: not an existing directory")
    return folder


def finite_or_none(value: float) -> float | None:
    """Return ``value`` as float, or None where it is NaN or infinite (for JSON)."""
    return float(value) if math.isfinite(value) else None
