"""Gradient boosting (LightGBM) conversion model, with categorical fields handled natively.

Categorical fields are encoded as integer codes over the levels fixed at fit time (levels
seen fewer than ``min_category_count`` times share one "other" code, which also takes
levels never seen in training; missing stays missing) and passed to LightGBM as
categorical features. Training is deterministic for a given ``seed`` and
``num_threads`` (``deterministic=True``, column-wise histograms).

The number of boosting rounds is chosen by early stopping on an internal time-ordered
split: the last ``validation_share`` of the rows by ``order`` (or by row order when no
order is given) is held out, the best round found there is kept, and the booster is
refitted on all rows for that many rounds scaled by ``refit_round_scale``. With fewer than
``small_data_rows`` rows, or fewer than 20 converted or unconverted rows in the held-out
part, a fixed ``small_data_rounds`` with stronger regularisation is used instead.

``explain`` returns LightGBM's exact TreeSHAP contributions (``pred_contrib``) in
log-odds; the model is saved as LightGBM's own text format plus a JSON manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self, cast

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.columns import Role
from recommender.data.dataset import SMALL_ROWS, FeatureSpec
from recommender.errors import ModelFolderError
from recommender.models.base import (
    Table,
    category_values,
    check_directory,
    check_frame,
    check_labels,
    init_params,
    model_specs,
    numeric_values,
    read_json,
    require_fitted,
    sigmoid,
    write_json,
)
from recommender.models.scorecard import kept_levels

_FILE = "gbm.json"
_BOOSTER = "booster.txt"
_KIND = "gbm"


SMALL_BATCH = 1000
"""Rows below which prediction runs on one thread (see ``GradientBoosting._threads``)."""


class GradientBoosting:
    """LightGBM binary classifier for P(converted), deterministic for a seed.

    Args:
        n_estimators: most boosting rounds.
        learning_rate: shrinkage per round.
        num_leaves: leaves per tree.
        min_child_samples: fewest rows in a leaf.
        feature_fraction: share of columns sampled per tree.
        bagging_fraction: share of rows sampled per round (every round).
        reg_lambda: L2 penalty on leaf values.
        min_category_count: categorical levels seen fewer times share an "other" code.
        early_stopping_rounds: rounds without improvement before stopping.
        validation_share: share of rows (latest by ``order``) held out to pick the rounds.
        refit_round_scale: the refit on all rows runs ``best_round * scale`` rounds.
        small_data_rows: below this many rows, use ``small_data_rounds`` fixed rounds.
        small_data_rounds: fixed rounds for small data.
        seed: random seed (bagging and column sampling).
        num_threads: LightGBM threads (results are reproducible for a fixed value). The
            default is 1: on a busy 2-core machine, OpenMP spin-waiting made 2 threads
            about 10 times slower than 1 (36.5 s against 3.4 s for a 25,000-lead
            LeadScorer fit), while on an idle machine 2 threads gain little at this size.
        predict_threads: LightGBM threads for prediction and contributions. Unlike
            training, prediction gives the same numbers at any thread count, so it uses
            the two cores the contract's speed promises assume.
        extra_params: further LightGBM parameters, overriding the ones above.
    """

    def __init__(
        self,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        feature_fraction: float = 0.8,
        bagging_fraction: float = 0.8,
        reg_lambda: float = 1.0,
        min_category_count: int = 10,
        early_stopping_rounds: int = 100,
        validation_share: float = 0.2,
        refit_round_scale: float = 1.1,
        small_data_rows: int = 500,
        small_data_rounds: int = 100,
        seed: int = 0,
        num_threads: int = 1,
        predict_threads: int = 2,
        extra_params: dict[str, Any] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.reg_lambda = reg_lambda
        self.min_category_count = min_category_count
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_share = validation_share
        self.refit_round_scale = refit_round_scale
        self.small_data_rows = small_data_rows
        self.small_data_rounds = small_data_rounds
        self.seed = seed
        self.num_threads = num_threads
        self.predict_threads = predict_threads
        self.extra_params = extra_params
        self.booster_: lgb.Booster | None = None
        self._paths: tuple[sp.csr_matrix, np.ndarray, float] | None = None
        self.neutral_: dict[str, float] = {}
        self.seen_missing_: list[str] = []
        self.seen_other_: list[str] = []
        self.feature_names_: list[str] = []
        self.roles_: list[str] = []
        self.levels_: dict[str, list[str]] = {}
        self._level_maps: dict[str, dict[str, int]] = {}  # levels_ as dicts, built lazily
        self.best_round_: int = 0
        self.base_value_: float = 0.0

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters."""
        return init_params(self)

    def _lgb_params(self, n_rows: int, small: bool) -> dict[str, Any]:
        """Return the LightGBM parameter dict for ``n_rows`` training rows."""
        leaf = (
            max(3, min(self.min_child_samples, n_rows // 20)) if small else self.min_child_samples
        )
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": self.learning_rate if not small else 0.05,
            "num_leaves": self.num_leaves if not small else min(self.num_leaves, 7),
            "min_data_in_leaf": leaf,
            "min_data_per_group": max(5, min(50, n_rows // 50)),
            "cat_smooth": 10.0,
            "cat_l2": 10.0,
            "max_cat_to_onehot": 4,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1.0 else 0,
            "lambda_l2": self.reg_lambda if not small else max(self.reg_lambda, 5.0),
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }
        params.update(self.extra_params or {})
        return params

    def _matrix(self, X: Table) -> np.ndarray:
        """Return the float64 design matrix: numeric values and categorical codes."""
        out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64)
        for j, (name, role) in enumerate(zip(self.feature_names_, self.roles_, strict=True)):
            if role == Role.NUMERIC:
                out[:, j] = numeric_values(X, name)
                continue
            levels = self.levels_[name]
            cats = category_values(X, name)
            if len(cats) <= SMALL_ROWS:  # a few rows: dict lookups, no index built
                lookup = self._level_lookup(name)
                codes = np.fromiter((lookup.get(v, -1) for v in cats), np.float64, len(cats))
            else:
                codes = (
                    pd.Index(levels, dtype=object)
                    .get_indexer(pd.Index(cats, dtype=object))
                    .astype(np.float64)
                )
            codes[codes < 0] = len(levels)
            codes[pd.isna(cats)] = np.nan
            out[:, j] = codes
        return out

    def _level_lookup(self, name: str) -> dict[str, int]:
        """Code of each kept level of categorical column ``name`` (built once per model)."""
        lookup = self._level_maps.get(name)
        if lookup is None:
            lookup = {v: i for i, v in enumerate(self.levels_[name])}
            self._level_maps[name] = lookup
        return lookup

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        specs: Sequence[FeatureSpec],
        order: np.ndarray | None = None,
    ) -> Self:
        """Fit the booster, choosing the rounds on the latest ``validation_share`` rows.

        Args:
            X: feature frame, one row per lead.
            y: 0/1 (or bool) converted labels.
            specs: column roles; ``text`` columns are ignored.
            order: time-order key per row (e.g. ``created_at`` as int64); the largest
                values form the internal validation part. Default: row order.

        Raises:
            DataError: bad labels, or a spec names a column absent from ``X``.
        """
        check_frame(X, [])
        labels = check_labels(y, len(X))
        used = model_specs(specs, X)
        self.feature_names_ = [s.name for s in used]
        self.roles_ = [s.role for s in used]
        self.levels_ = {
            s.name: kept_levels(category_values(X, s.name), self.min_category_count)
            for s in used
            if s.role == Role.CATEGORICAL
        }
        self._level_maps = {}
        matrix = self._matrix(X)
        self.neutral_ = self._neutral_values(matrix, labels)
        cat_idx = [j for j, r in enumerate(self.roles_) if r == Role.CATEGORICAL]
        rounds, small = self._choose_rounds(matrix, labels, cat_idx, order)
        params = self._lgb_params(len(X), small)
        data = lgb.Dataset(matrix, label=labels, categorical_feature=cat_idx, free_raw_data=True)
        self.booster_ = lgb.train(params, data, num_boost_round=rounds)
        self.best_round_ = rounds
        self._paths = None
        self.base_value_ = self._path_table()[2]
        return self

    def _choose_rounds(
        self,
        matrix: np.ndarray,
        labels: np.ndarray,
        cat_idx: list[int],
        order: np.ndarray | None,
    ) -> tuple[int, bool]:
        """Return (rounds for the final fit, whether the small-data settings apply)."""
        n = len(labels)
        n_val = round(n * self.validation_share)
        rank = np.argsort(np.asarray(order), kind="stable") if order is not None else np.arange(n)
        val, train = rank[n - n_val :], rank[: n - n_val]
        val_pos = int(labels[val].sum()) if n_val else 0
        train_pos = int(labels[train].sum())
        enough = (
            n >= self.small_data_rows
            and min(val_pos, n_val - val_pos) >= 20
            and min(train_pos, len(train) - train_pos) >= 20
        )
        if not enough or self.early_stopping_rounds <= 0:
            return min(self.small_data_rounds, self.n_estimators), not enough
        params = self._lgb_params(len(train), False)
        dtrain = lgb.Dataset(matrix[train], label=labels[train], categorical_feature=cat_idx)
        dval = lgb.Dataset(matrix[val], label=labels[val], reference=dtrain)
        params["metric"] = "binary_logloss"
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=self.n_estimators,
            valid_sets=[dval],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        best = max(1, int(booster.best_iteration or self.n_estimators))
        return max(1, round(best * self.refit_round_scale)), False

    def _neutral_values(self, matrix: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """For each column, the value standing in for a state never seen in training.

        A tree sends a value it never saw (a missing cell where training had none, or a
        category code it never trained on) down an arbitrary side of each split, which
        can be worth +50 points. Such values get a neutral stand-in instead: the median
        of a numeric column, and for a categorical column the level whose training
        conversion rate is closest to the overall rate (among levels with 20+ rows).
        """
        out: dict[str, float] = {}
        overall = float(labels.mean()) if labels.size else 0.5
        for j, (name, role) in enumerate(zip(self.feature_names_, self.roles_, strict=True)):
            col = matrix[:, j]
            seen = col[~np.isnan(col)]
            if seen.size == 0:
                continue
            if role == Role.NUMERIC:
                out[name] = float(np.median(seen))
                continue
            codes, counts = np.unique(seen, return_counts=True)
            rates = np.array([labels[col == c].mean() for c in codes])
            ok = counts >= min(20, counts.max())
            best = np.argmin(np.where(ok, np.abs(rates - overall), np.inf))
            out[name] = float(codes[best])
        self.seen_missing_ = [
            name for j, name in enumerate(self.feature_names_) if np.isnan(matrix[:, j]).any()
        ]
        self.seen_other_ = [
            name
            for j, (name, role) in enumerate(zip(self.feature_names_, self.roles_, strict=True))
            if role == Role.CATEGORICAL and (matrix[:, j] == len(self.levels_[name])).any()
        ]
        return out

    def _checked_matrix(self, X: Table) -> np.ndarray:
        """Check fitted state and columns, then return the design matrix of ``X``.

        Values never seen in training are replaced by the column's neutral stand-in
        (see :meth:`_neutral_values`); missing cells and the "other" category keep their
        learned meaning where training had them.
        """
        require_fitted(self, "booster_")
        check_frame(X, self.feature_names_)
        matrix = self._matrix(X)
        if not self.neutral_:
            return matrix
        missing_ok, other_ok = set(self.seen_missing_), set(self.seen_other_)
        for j, (name, role) in enumerate(zip(self.feature_names_, self.roles_, strict=True)):
            if name not in self.neutral_:
                continue
            col = matrix[:, j]
            unseen = np.zeros(col.shape, dtype=bool) if name in missing_ok else np.isnan(col)
            if role == Role.CATEGORICAL and name not in other_ok:
                unseen |= col == len(self.levels_[name])
            col[unseen] = self.neutral_[name]
        return matrix

    def _threads(self, n_rows: int) -> int:
        """Prediction threads for ``n_rows`` rows: one for a small batch, where starting
        a second thread costs more than the trees (and a scheduler tick when busy)."""
        return 1 if n_rows < SMALL_BATCH else self.predict_threads

    def decision_function(self, X: Table) -> np.ndarray:
        """Return the raw log-odds per row, shape ``(n,)``.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        matrix = self._checked_matrix(X)
        assert self.booster_ is not None
        raw = self.booster_.predict(
            matrix, raw_score=True, num_threads=self._threads(matrix.shape[0])
        )
        return np.asarray(raw, dtype=np.float64).reshape(-1)

    def predict_proba(self, X: Table) -> np.ndarray:
        """Return P(converted) per row, shape ``(n,)``, inside [1e-4, 1 - 1e-4].

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        return sigmoid(self.decision_function(X))

    def known_levels(self) -> dict[str, frozenset[str]]:
        """The levels each categorical feature was coded with; any other value (rare in
        training, or new) is read as "other" or a neutral stand-in.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "booster_")
        return {
            name: frozenset(self.levels_[name])
            for name, role in zip(self.feature_names_, self.roles_, strict=True)
            if role == Role.CATEGORICAL
        }

    def explain(self, X: Table, *, chunk_size: int = 20_000) -> np.ndarray:
        """Return per-feature contributions in log-odds, shape ``(n, n_features)``.

        Path attribution (Saabas, as in *treeinterpreter*): each split on a row's path
        credits its feature with the change in node value it causes. The contributions
        sum exactly to the raw score (``base_value_ + explain(X).sum(axis=1) ==
        decision_function(X)``), cost O(depth) per tree instead of TreeSHAP's
        O(leaves x depth^2), and are computed for a whole batch as one sparse product of
        the rows' leaf memberships with a per-leaf contribution table.

        Raises:
            NotFittedError: before ``fit``.
            DataError: ``X`` lacks a fitted column.
        """
        matrix = self._checked_matrix(X)
        assert self.booster_ is not None
        table, offsets, _ = self._path_table()
        out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64)
        for start in range(0, len(X), chunk_size):
            part = matrix[start : start + chunk_size]
            leaves = np.asarray(
                self.booster_.predict(
                    part, pred_leaf=True, num_threads=self._threads(part.shape[0])
                ),
                dtype=np.int64,
            ).reshape(len(part), -1)
            cols = (leaves + offsets[None, : leaves.shape[1]]).ravel()
            member = sp.csr_matrix(
                (np.ones(cols.size), cols, np.arange(0, cols.size + 1, leaves.shape[1])),
                shape=(len(part), table.shape[0]),
            )
            out[start : start + len(part)] = (member @ table).toarray()
        return out

    def _path_table(self) -> tuple[sp.csr_matrix, np.ndarray, float]:
        """Per-leaf path contributions of every tree, leaf offsets, and the bias (cached)."""
        cached = getattr(self, "_paths", None)
        if cached is not None:
            return cast(tuple[sp.csr_matrix, np.ndarray, float], cached)
        assert self.booster_ is not None
        trees = self.booster_.dump_model()["tree_info"]
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        offsets = np.zeros(len(trees), dtype=np.int64)
        offset, bias = 0, 0.0
        for t, tree in enumerate(trees):
            offsets[t] = offset
            root = tree["tree_structure"]
            if "leaf_index" in root:
                bias += float(root["leaf_value"])
                offset += 1
                continue
            bias += float(root["internal_value"])
            stack: list[tuple[dict[str, Any], dict[int, float]]] = [(root, {})]
            while stack:
                node, path = stack.pop()
                for side in ("left_child", "right_child"):
                    child = node[side]
                    leaf = "leaf_index" in child
                    value = float(child["leaf_value"] if leaf else child["internal_value"])
                    step = dict(path)
                    feat = int(node["split_feature"])
                    step[feat] = step.get(feat, 0.0) + value - float(node["internal_value"])
                    if leaf:
                        for f, v in step.items():
                            rows.append(offset + int(child["leaf_index"]))
                            cols.append(f)
                            vals.append(v)
                    else:
                        stack.append((child, step))
            offset += int(tree["num_leaves"])
        table = sp.csr_matrix(
            (vals, (rows, cols)), shape=(offset, len(self.feature_names_)), dtype=np.float64
        )
        self._paths = (table, offsets, bias)
        return table, offsets, bias

    def save(self, path: Path) -> None:
        """Write ``gbm.json`` and LightGBM's text model ``booster.txt`` into ``path``.

        Raises:
            NotFittedError: before ``fit``.
            ModelFolderError: ``path`` is not an existing directory.
        """
        require_fitted(self, "booster_")
        assert self.booster_ is not None
        folder = check_directory(path)
        (folder / _BOOSTER).write_text(self.booster_.model_to_string(), encoding="utf-8")
        write_json(
            folder / _FILE,
            _KIND,
            {
                "params": self.get_params(),
                "feature_names": self.feature_names_,
                "roles": self.roles_,
                "levels": self.levels_,
                "best_round": self.best_round_,
                "base_value": self.base_value_,
                "neutral": self.neutral_,
                "seen_missing": self.seen_missing_,
                "seen_other": self.seen_other_,
            },
        )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save` from directory ``path``.

        Raises:
            ModelFolderError: a file is missing or of another kind or version.
        """
        folder = Path(path)
        body = read_json(folder / _FILE, _KIND)
        try:
            text = (folder / _BOOSTER).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ModelFolderError(f"{folder / _BOOSTER}: file is missing") from exc
        model = cls(**body["params"])
        model.booster_ = lgb.Booster(model_str=text)
        model._paths = None
        model.feature_names_ = [str(v) for v in body["feature_names"]]
        model.roles_ = [str(v) for v in body["roles"]]
        model.levels_ = {str(k): [str(x) for x in v] for k, v in body["levels"].items()}
        model.best_round_ = int(body["best_round"])
        model.base_value_ = float(body["base_value"])
        # folders written before neutral stand-ins existed predict as they always did
        model.neutral_ = {str(k): float(v) for k, v in body.get("neutral", {}).items()}
        model.seen_missing_ = list(body.get("seen_missing", []))
        model.seen_other_ = list(body.get("seen_other", []))
        return model
