"""LeadScorer: pick the fit model on a time-ordered validation slice, then calibrate it.

How ``fit`` works (no row later than the training window is ever looked at; the caller
keeps its test window out of ``X``):

1. The rows are put in time order by ``order`` (e.g. ``created_at`` as int64). The latest
   ``validation_share`` of them form the validation slice, the rest the fitting part.
2. The scorecard and the gradient-boosting model are fitted on the fitting part; the blend
   is the average of their log-odds. Each candidate is scored on the validation slice
   (AUC, log loss, Brier). The best AUC wins; a candidate within ``tie_tolerance`` of it
   wins if it is simpler (scorecard, then GBM, then blend).
3. A :class:`Calibrator` is fitted on the winner's validation log-odds.
4. The winner is refitted on the whole training window; the calibrator from step 3 is
   kept. (The refit sees 1/(1 - validation_share) times more rows, so its log-odds may be
   slightly sharper than the ones the calibrator saw; on the data we tried that costs
   less than the extra rows bring.)
5. ``report_`` records each candidate's validation figures, the choice, each single
   column's validation AUC (a column that alone reaches ``leak_auc`` is flagged as likely
   leakage: filled in after contact) and a readiness verdict.

With fewer than ``min_outcomes`` converted or unconverted leads (in all, or fewer than a
quarter of that in the validation slice), nothing is compared: a strongly regularised
scorecard is fitted on everything, or, below ``min_outcomes / 4``, the channel prior alone
(the source's smoothed conversion rate), and the verdict is "not ready".

A ``ChannelPrior`` is always fitted as well (``channel_``), for leads with nothing but a
source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from recommender.data.dataset import FeatureSpec
from recommender.errors import DataError
from recommender.models.base import (
    Table,
    check_directory,
    check_frame,
    check_labels,
    init_params,
    model_specs,
    read_json,
    require_fitted,
    sigmoid,
    write_json,
)
from recommender.models.calibration import Calibrator
from recommender.models.channel import ChannelPrior
from recommender.models.gbm import GradientBoosting
from recommender.models.scorecard import Scorecard, fit_field_bins

_FILE = "scorer.json"
_KIND = "lead_scorer"
CANDIDATES = ("scorecard", "gbm", "blend")
FALLBACK_SCORECARD = {"n_bins": 5, "C": 0.05, "min_iv": 0.02}
#: Below this validation AUC no candidate has found a signal: the channel prior (the
#: window's base rate where there is no source column) predicts better than noise.
NO_SIGNAL_AUC = 0.55


def score_metrics(y: np.ndarray, z: np.ndarray) -> dict[str, float]:
    """Return AUC, log loss and Brier score of raw log-odds ``z`` against labels ``y``."""
    p = sigmoid(z)
    both = 0 < y.sum() < y.size
    return {
        "auc": float(roc_auc_score(y, z)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


def single_column_auc(
    X_fit: pd.DataFrame,
    y_fit: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    specs: Sequence[FeatureSpec],
) -> dict[str, float]:
    """Return each column's validation AUC when it alone scores (its WOE from ``X_fit``)."""
    out: dict[str, float] = {}
    if not 0 < y_val.sum() < y_val.size:
        return out
    for spec in specs:
        field = fit_field_bins(X_fit, spec, y_fit.astype(np.float64))
        out[spec.name] = float(roc_auc_score(y_val, field.woe[field.index(X_val)]))
    return out


def readiness(n: int, positives: int, val_auc: float, fallback: bool) -> tuple[str, list[str]]:
    """Return the verdict (``ready`` / ``usable`` / ``not ready``) and the reasons."""
    reasons = []
    if n < 1000:
        reasons.append(f"{n} leads with a known outcome (ready needs 1000)")
    if positives < 120:
        reasons.append(f"{positives} converted leads (ready needs 120)")
    if fallback:
        reasons.append("too few outcomes to compare models: fell back to a simple model")
    elif not val_auc >= 0.65:
        reasons.append(f"validation AUC {val_auc:.3f} (ready needs 0.65)")
    if not reasons:
        return "ready", reasons
    if fallback or not val_auc >= 0.55:
        return "not ready", reasons
    return "usable", reasons


class LeadScorer:
    """The calibrated lead-level conversion model the pipeline uses.

    Args:
        validation_share: latest share of the training rows used to choose and calibrate.
        seed: seed of the gradient-boosting model and the calibrator's folds.
        min_outcomes: fewer converted (or unconverted) leads trigger the fallback.
        candidates: which of ``scorecard``, ``gbm``, ``blend`` may be chosen.
        tie_tolerance: AUC margin within which the simpler candidate is preferred.
        calibration: calibration method (see :class:`Calibrator`).
        leak_auc: single-column validation AUC above which a column is flagged.
        scorecard_params: keyword arguments of :class:`Scorecard`.
        gbm_params: keyword arguments of :class:`GradientBoosting` (``seed`` excluded).
    """

    def __init__(
        self,
        validation_share: float = 0.2,
        seed: int = 0,
        min_outcomes: int = 40,
        candidates: Sequence[str] = CANDIDATES,
        tie_tolerance: float = 0.002,
        calibration: str = "auto",
        leak_auc: float = 0.9,
        scorecard_params: dict[str, Any] | None = None,
        gbm_params: dict[str, Any] | None = None,
    ) -> None:
        self.validation_share = validation_share
        self.seed = seed
        self.min_outcomes = min_outcomes
        self.candidates = candidates
        self.tie_tolerance = tie_tolerance
        self.calibration = calibration
        self.leak_auc = leak_auc
        self.scorecard_params = scorecard_params
        self.gbm_params = gbm_params
        self.chosen_: str | None = None
        self.scorecard_: Scorecard | None = None
        self.gbm_: GradientBoosting | None = None
        self.channel_: ChannelPrior | None = None
        self.calibrator_: Calibrator | None = None
        self.report_: dict[str, Any] = {}
        self.feature_names_: list[str] = []
        self.base_value_: float = 0.0

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    def _new_scorecard(self, fallback: bool = False) -> Scorecard:
        """Return an unfitted scorecard (strongly regularised for the fallback)."""
        params = dict(self.scorecard_params or {})
        if fallback:
            params.update(FALLBACK_SCORECARD)
        return Scorecard(**params)

    def _new_gbm(self, seed: int) -> GradientBoosting:
        """Return an unfitted gradient-boosting model with this scorer's seed."""
        return GradientBoosting(**{**(self.gbm_params or {}), "seed": seed})

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        specs: Sequence[FeatureSpec],
        order: np.ndarray | None = None,
        *,
        seed: int | None = None,
        min_outcomes: int | None = None,
    ) -> Self:
        """Choose, calibrate and refit the lead model on the training window ``X``.

        Args:
            X: feature frame of the training window, one row per lead.
            y: 0/1 (or bool) converted labels.
            specs: column roles; ``text`` columns are ignored.
            order: time-order key per row (larger = later), e.g. ``created_at`` as int64;
                default: row order.
            seed: overrides the constructor's ``seed`` for this fit.
            min_outcomes: overrides the constructor's ``min_outcomes`` for this fit.

        Raises:
            DataError: bad labels or ``order``, or a spec names a column absent from ``X``.
        """
        check_frame(X, [])
        labels = check_labels(y, len(X))
        used = model_specs(specs, X)
        rng_seed = self.seed if seed is None else seed
        floor = self.min_outcomes if min_outcomes is None else min_outcomes
        key = np.arange(len(X)) if order is None else np.asarray(order)
        if key.shape != (len(X),):
            raise DataError(f"order must hold one key per row ({len(X)}), got {key.shape}")
        frame = X.reset_index(drop=True)
        self.channel_ = ChannelPrior().fit(frame, labels, used)
        self.feature_names_ = [s.name for s in used]
        self.scorecard_, self.gbm_ = None, None
        rank = np.argsort(key, kind="stable")
        n_val = round(len(X) * self.validation_share)
        fit_rows, val_rows = rank[: len(X) - n_val], rank[len(X) - n_val :]
        pos, val_pos = int(labels.sum()), int(labels[val_rows].sum())
        few = min(pos, len(X) - pos) < floor or min(val_pos, n_val - val_pos) < floor / 4
        if few:
            self._fit_fallback(frame, labels, used, floor)
        else:
            self._fit_compare(frame, labels, used, key, fit_rows, val_rows, rng_seed)
        self.base_value_ = self._component_base()
        return self

    def _fit_fallback(
        self, X: pd.DataFrame, y: np.ndarray, specs: list[FeatureSpec], floor: int
    ) -> None:
        """Fit the few-outcomes fallback: regularised scorecard, or channel prior alone."""
        pos = int(y.sum())
        if min(pos, len(y) - pos) >= max(1, floor // 4):
            self.scorecard_ = self._new_scorecard(fallback=True).fit(X, y, specs)
            self.chosen_ = "fallback_scorecard"
        else:
            self.chosen_ = "channel"
        self.calibrator_ = Calibrator(method="none").fit(np.zeros(2), np.array([0, 1]))
        verdict, reasons = readiness(len(y), pos, float("nan"), fallback=True)
        self.report_ = {
            "chosen": self.chosen_,
            "fallback": True,
            "candidates": {},
            "n_train": len(y),
            "n_fit": len(y),
            "n_val": 0,
            "positives": pos,
            "val_positives": 0,
            "single_column_auc": {},
            "warnings": [],
            "ready": verdict,
            "reasons": reasons,
            "channel_strength": self.channel_.strength_ if self.channel_ else None,
        }

    def _fit_no_signal(
        self,
        y: np.ndarray,
        metrics: dict[str, dict[str, float]],
        best: float,
        *,
        n_fit: int,
        y_val: np.ndarray,
    ) -> None:
        """No candidate beat noise on validation: use the channel prior on the whole window.

        A constant fitted on the latest slice alone would follow that slice's rate (on
        Maven CRM 0.588 against the window's 0.629), which forecasts worse than the
        window's own base rate; the channel prior shrinks each source to that rate.
        """
        self.chosen_ = "channel"
        self.calibrator_ = Calibrator(method="none").fit(np.zeros(2), np.array([0, 1]))
        _, reasons = readiness(len(y), int(y.sum()), best, False)
        reasons.append(
            f"no model beat validation AUC {NO_SIGNAL_AUC} (best {best:.3f}): "
            "scoring with the window's base rate (by source, where the data has one)"
        )
        self.report_ = {
            "chosen": self.chosen_,
            "fallback": True,
            "candidates": metrics,
            "n_train": len(y),
            "n_fit": n_fit,
            "n_val": len(y_val),
            "positives": int(y.sum()),
            "val_positives": int(y_val.sum()),
            "single_column_auc": {},
            "warnings": [],
            "ready": "not ready",
            "reasons": reasons,
            "channel_strength": self.channel_.strength_ if self.channel_ else None,
        }

    def _fit_compare(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        specs: list[FeatureSpec],
        key: np.ndarray,
        fit_rows: np.ndarray,
        val_rows: np.ndarray,
        seed: int,
    ) -> None:
        """Compare the candidates on the validation slice, calibrate, refit the winner."""
        X_fit, y_fit = X.iloc[fit_rows].reset_index(drop=True), y[fit_rows]
        X_val, y_val = X.iloc[val_rows].reset_index(drop=True), y[val_rows]
        scorecard = self._new_scorecard().fit(X_fit, y_fit, specs)
        gbm = self._new_gbm(seed).fit(X_fit, y_fit, specs, order=key[fit_rows])
        z_sc, z_gbm = scorecard.decision_function(X_val), gbm.decision_function(X_val)
        logits = {"scorecard": z_sc, "gbm": z_gbm, "blend": 0.5 * (z_sc + z_gbm)}
        metrics = {c: score_metrics(y_val, logits[c]) for c in CANDIDATES}
        allowed = [c for c in CANDIDATES if c in self.candidates] or ["scorecard"]
        best = max(metrics[c]["auc"] for c in allowed)
        chosen = next(c for c in allowed if metrics[c]["auc"] >= best - self.tie_tolerance)
        if not best >= NO_SIGNAL_AUC:
            self._fit_no_signal(y, metrics, best, n_fit=len(y_fit), y_val=y_val)
            return
        self.calibrator_ = Calibrator(method=self.calibration, seed=seed).fit(logits[chosen], y_val)
        calibrated = self.calibrator_.predict(logits[chosen])
        if chosen in ("scorecard", "blend"):
            self.scorecard_ = self._new_scorecard().fit(X, y, specs)
        if chosen in ("gbm", "blend"):
            self.gbm_ = self._new_gbm(seed).fit(X, y, specs, order=key)
        self.chosen_ = chosen
        single = single_column_auc(X_fit, y_fit, X_val, y_val, specs)
        warnings = [
            f"column '{name}' alone reaches validation AUC {auc:.3f}: is it filled in "
            "after contact (leaky)?"
            for name, auc in single.items()
            if auc > self.leak_auc
        ]
        verdict, reasons = readiness(len(y), int(y.sum()), metrics[chosen]["auc"], False)
        self.report_ = {
            "chosen": chosen,
            "fallback": False,
            "candidates": metrics,
            "calibration": {
                "method": self.calibrator_.method_,
                "cv_log_loss": self.calibrator_.cv_log_loss_,
                "val_log_loss": float(log_loss(y_val, calibrated, labels=[0, 1])),
                "val_brier": float(brier_score_loss(y_val, calibrated)),
            },
            "n_train": len(y),
            "n_fit": len(y_fit),
            "n_val": len(y_val),
            "positives": int(y.sum()),
            "val_positives": int(y_val.sum()),
            "gbm_rounds": gbm.best_round_,
            "single_column_auc": single,
            "warnings": warnings,
            "ready": verdict,
            "reasons": reasons,
            "channel_strength": self.channel_.strength_ if self.channel_ else None,
        }

    def _component_base(self) -> float:
        """Return the base log-odds of the chosen component(s)."""
        if self.chosen_ == "channel":
            assert self.channel_ is not None
            return self.channel_.base_value_
        bases = [m.base_value_ for m in (self.scorecard_, self.gbm_) if m is not None]
        return float(np.mean(bases))

    def _components(self) -> list[Scorecard | GradientBoosting | ChannelPrior]:
        """Return the fitted models whose log-odds are averaged."""
        require_fitted(self, "chosen_")
        if self.chosen_ == "channel":
            assert self.channel_ is not None
            return [self.channel_]
        return [m for m in (self.scorecard_, self.gbm_) if m is not None]

    def known_levels(self) -> dict[str, frozenset[str]]:
        """Per categorical input, the values some component of the chosen model scores on
        their own; a value outside them (rare in training, or new) is scored as "other"
        (or neutral) by every component.

        Raises:
            NotFittedError: before ``fit``.
        """
        out: dict[str, frozenset[str]] = {}
        for model in self._components():
            for name, levels in model.known_levels().items():
                out[name] = out.get(name, frozenset()) | levels
        return out

    def decision_function(self, X: Table) -> np.ndarray:
        """Return the chosen model's raw (uncalibrated) log-odds, shape ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        parts = [m.decision_function(X) for m in self._components()]
        check_frame(X, self.feature_names_)
        return np.asarray(np.mean(parts, axis=0), dtype=np.float64)

    def predict_proba(self, X: Table) -> np.ndarray:
        """Return calibrated P(converted) per row, shape ``(n,)``, inside [1e-4, 1 - 1e-4].

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        z = self.decision_function(X)
        assert self.calibrator_ is not None
        return self.calibrator_.predict(z)

    def explain(self, X: Table) -> np.ndarray:
        """Return per-feature contributions to the raw log-odds, ``(n, n_features)``.

        Contributions are measured before calibration (calibration is monotone, so the
        signs and the order of the reasons hold): ``base_value_ + explain(X).sum(axis=1)
        == decision_function(X)``. A blend averages its two models' contributions.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        parts = [m.explain(X) for m in self._components()]
        check_frame(X, self.feature_names_)
        return np.asarray(np.mean(parts, axis=0), dtype=np.float64)

    def predict_and_explain(self, X: Table) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(predict_proba(X), explain(X))`` in one pass over the models.

        The raw log-odds are rebuilt from the contributions (``base_value_`` plus their
        sum), so each tree is walked once per row instead of twice.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        contrib = self.explain(X)
        assert self.calibrator_ is not None
        return self.calibrator_.predict(self.base_value_ + contrib.sum(axis=1)), contrib

    def save(self, path: Path) -> None:
        """Write ``scorer.json`` and one subfolder per component into ``path``.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing directory.
        """
        require_fitted(self, "chosen_")
        folder = check_directory(path)
        parts = {
            "scorecard": self.scorecard_,
            "gbm": self.gbm_,
            "channel": self.channel_,
            "calibrator": self.calibrator_,
        }
        for name, part in parts.items():
            if part is not None:
                (folder / name).mkdir(exist_ok=True)
                part.save(folder / name)
        write_json(
            folder / _FILE,
            _KIND,
            {
                "params": self.get_params(),
                "chosen": self.chosen_,
                "components": [k for k, v in parts.items() if v is not None],
                "feature_names": self.feature_names_,
                "report": self.report_,
            },
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a scorer written by :meth:`save` from directory ``path``.

        Raises:
            ModelFolderError: a file is missing or of another kind or version.
        """
        folder = Path(path)
        body = read_json(folder / _FILE, _KIND)
        model = cls(**body["params"])
        parts = set(body["components"])
        model.scorecard_ = Scorecard.load(folder / "scorecard") if "scorecard" in parts else None
        model.gbm_ = GradientBoosting.load(folder / "gbm") if "gbm" in parts else None
        model.channel_ = ChannelPrior.load(folder / "channel") if "channel" in parts else None
        model.calibrator_ = Calibrator.load(folder / "calibrator")
        model.chosen_ = str(body["chosen"])
        model.feature_names_ = [str(v) for v in body["feature_names"]]
        model.report_ = body["report"]
        model.base_value_ = model._component_base()
        return model
