"""Probability calibration of raw log-odds: Platt scaling or isotonic regression.

A calibrator is fitted on scores a model gave to rows it was *not* trained on (the
validation slice) and maps raw log-odds to probabilities that match observed rates.

- ``platt``: ``p = sigmoid(a * z + b)``, two parameters, safe on small slices, keeps the
  ranking exactly.
- ``isotonic``: the best monotone step function of ``z`` (linearly interpolated between
  steps, flat beyond the ends); more flexible, needs more data, may tie neighbours.
- ``auto`` (default): the method with the lowest ``cv``-fold cross-validated log loss on
  the slice among ``none`` (keep the model's own probabilities: a small slice often
  estimates a well-calibrated model's slope worse than the model already has it),
  ``platt``, and ``isotonic`` where the slice holds at least ``min_isotonic_rows`` rows and
  ``min_isotonic_class`` of each class.
- ``none``: ``sigmoid(z)`` (for models whose scores are already probabilities).

Outputs are clipped into ``[eps, 1 - eps]`` so they stay strictly inside (0, 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from recommender.errors import DataError
from recommender.models.base import (
    check_directory,
    check_labels,
    init_params,
    read_json,
    require_fitted,
    sigmoid,
    write_json,
)

_FILE = "calibrator.json"
_KIND = "calibrator"
METHODS = ("auto", "platt", "isotonic", "none")


def fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return (slope, intercept) of the logistic fit of ``y`` on ``z`` (nearly unpenalised)."""
    if y.min() == y.max():
        return 0.0, float(np.log((y.sum() + 0.5) / (y.size - y.sum() + 0.5)))
    reg = LogisticRegression(C=1e4, max_iter=1000)
    reg.fit(z.reshape(-1, 1), y)
    return float(reg.coef_[0, 0]), float(reg.intercept_[0])


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the knots (x, y) of the isotonic fit of ``y`` on ``z``."""
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(z, y)
    return np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)


class Calibrator:
    """Maps raw log-odds to calibrated probabilities.

    Args:
        method: ``auto``, ``platt``, ``isotonic`` or ``none``.
        eps: outputs are clipped into ``[eps, 1 - eps]``.
        min_isotonic_rows: ``auto`` considers isotonic only from this many rows.
        min_isotonic_class: ... and this many rows of each class.
        cv: folds of the cross-validation that ``auto`` uses to compare methods.
        seed: seed of the fold assignment.

    Raises:
        ValueError: unknown ``method`` (at ``fit``).
    """

    def __init__(
        self,
        method: str = "auto",
        eps: float = 1e-4,
        min_isotonic_rows: int = 1000,
        min_isotonic_class: int = 100,
        cv: int = 5,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.eps = eps
        self.min_isotonic_rows = min_isotonic_rows
        self.min_isotonic_class = min_isotonic_class
        self.cv = cv
        self.seed = seed
        self.method_: str | None = None
        self.slope_: float = 1.0
        self.intercept_: float = 0.0
        self.knots_x_: np.ndarray = np.zeros(0)
        self.knots_y_: np.ndarray = np.zeros(0)
        self.cv_log_loss_: dict[str, float] = {}

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    def fit(self, z: np.ndarray, y: np.ndarray) -> Self:
        """Fit the mapping from raw log-odds ``z`` to the 0/1 outcomes ``y``.

        Raises:
            ValueError: unknown ``method``.
            DataError: ``z`` is not a finite vector matching ``y``.
        """
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method '{self.method}', expected {METHODS}")
        scores = np.asarray(z, dtype=np.float64).reshape(-1)
        labels = check_labels(y, scores.size).astype(np.float64)
        if not np.isfinite(scores).all():
            raise DataError("calibration scores must be finite")
        method = self.method
        self.cv_log_loss_ = {}
        if method == "auto":
            method = self._choose(scores, labels)
        self.slope_, self.intercept_ = 1.0, 0.0
        self.knots_x_, self.knots_y_ = np.zeros(0), np.zeros(0)
        if method == "platt":
            self.slope_, self.intercept_ = fit_platt(scores, labels)
        elif method == "isotonic":
            self.knots_x_, self.knots_y_ = fit_isotonic(scores, labels)
        self.method_ = method
        return self

    def _choose(self, z: np.ndarray, y: np.ndarray) -> str:
        """Return the method with the lowest cross-validated log loss on the slice."""
        n_pos = int(y.sum())
        smaller = min(n_pos, y.size - n_pos)
        if smaller < 2:
            return "platt"
        methods = ["none", "platt"]
        if y.size >= self.min_isotonic_rows and smaller >= self.min_isotonic_class:
            methods.append("isotonic")
        folds = StratifiedKFold(
            n_splits=min(self.cv, smaller), shuffle=True, random_state=self.seed
        )
        pred = {m: self._clip(sigmoid(z)) for m in methods}
        for train, test in folds.split(z.reshape(-1, 1), y):
            a, b = fit_platt(z[train], y[train])
            pred["platt"][test] = self._clip(sigmoid(a * z[test] + b))
            if "isotonic" in pred:
                kx, ky = fit_isotonic(z[train], y[train])
                pred["isotonic"][test] = self._clip(np.interp(z[test], kx, ky))
        self.cv_log_loss_ = {k: float(log_loss(y, v, labels=[0, 1])) for k, v in pred.items()}
        return min(methods, key=lambda k: self.cv_log_loss_[k])

    def _clip(self, p: np.ndarray) -> np.ndarray:
        """Return ``p`` clipped into ``[eps, 1 - eps]``."""
        return np.asarray(np.clip(p, self.eps, 1.0 - self.eps), dtype=np.float64)

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities for raw log-odds ``z``, shape ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "method_")
        scores = np.asarray(z, dtype=np.float64).reshape(-1)
        if self.method_ == "isotonic":
            return self._clip(np.interp(scores, self.knots_x_, self.knots_y_))
        return self._clip(sigmoid(self.slope_ * scores + self.intercept_))

    def save(self, path: Path) -> None:
        """Write ``calibrator.json`` into the existing directory ``path``.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing directory.
        """
        require_fitted(self, "method_")
        folder = check_directory(path)
        write_json(
            folder / _FILE,
            _KIND,
            {
                "params": self.get_params(),
                "method": self.method_,
                "slope": self.slope_,
                "intercept": self.intercept_,
                "knots_x": [float(v) for v in self.knots_x_],
                "knots_y": [float(v) for v in self.knots_y_],
                "cv_log_loss": self.cv_log_loss_,
            },
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a calibrator written by :meth:`save` from directory ``path``.

        Raises:
            ModelFolderError: the file is missing or of another kind or version.
        """
        body = read_json(Path(path) / _FILE, _KIND)
        model = cls(**body["params"])
        model.method_ = str(body["method"])
        model.slope_ = float(body["slope"])
        model.intercept_ = float(body["intercept"])
        model.knots_x_ = np.asarray(body["knots_x"], dtype=np.float64)
        model.knots_y_ = np.asarray(body["knots_y"], dtype=np.float64)
        model.cv_log_loss_ = {str(k): float(v) for k, v in body["cv_log_loss"].items()}
        return model
