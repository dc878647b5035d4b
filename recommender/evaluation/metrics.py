"""Offline metrics of the three models `leadrank evaluate` reports (CONTRACT.md, section 2).

Pure functions of arrays: numpy and scikit-learn only, no files, no models. A metric the
data cannot tell (one class only, nothing to rank, no positives) is ``None``, never NaN and
never an exception, so that ``evaluate`` still succeeds; malformed input (shapes that do not
match, labels other than 0/1, NaN probabilities) raises ``ValueError``.

Conventions:
    * ``y`` is a 0/1 (or boolean) vector of labels: 1 = converted / won.
    * ``p`` is a vector of predicted probabilities in ``[0, 1]``.
    * Shares (``0.1``, ``0.2``, ...) are fractions of the leads, not percentages.
    * Ranks are 1-based: rank 1 is the best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

DEFAULT_SHARES: tuple[float, ...] = (0.1, 0.2, 0.3)
"""The shares of leads at which cumulative gains are reported (contract keys)."""

DEFAULT_KS: tuple[int, ...] = (1, 3, 5)
"""The cut-offs of the hit rates ``hr@k`` (contract keys)."""

PSI_EPS = 1e-4
"""Smallest bin share used by :func:`psi`, so that an empty bin gives a finite term."""

POLICY_ORDER: tuple[str, ...] = ("model", "explore", "holdout")
"""Routing policies in the order :func:`policy_table` lists them (others follow, sorted)."""

GRADES: tuple[str, ...] = ("A", "B", "C", "D")
"""The grades :func:`grade_table` always lists, best first."""


# ---------------------------------------------------------------- input checks


def _labels(y: Any, name: str = "y") -> np.ndarray:
    """Return ``y`` as an int8 0/1 vector; raise ``ValueError`` on anything else."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 labels")
    return arr.astype(np.int8)


def _floats(x: Any, name: str, n: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 vector of length ``n`` (if given)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values, expected {n}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _probabilities(p: Any, n: int) -> np.ndarray:
    """Return ``p`` as a float64 vector of length ``n`` inside ``[0, 1]``."""
    arr = _floats(p, "p", n)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError("p must hold probabilities in [0, 1]")
    return arr


def _share_key(share: float) -> str:
    """Return the JSON key of a share: ``0.1 -> "0.1"``."""
    return f"{share:g}"


# ---------------------------------------------------------------- binary scores


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Score probabilities ``p`` against 0/1 labels ``y``.

    Returns ``{"n", "n_positive", "auc", "average_precision", "log_loss", "brier",
    "reason"}``. AUC and average precision need both classes: with one class they are
    ``None`` and ``reason`` says why. Log loss (natural log, mean per row) and the Brier
    score (mean squared error of ``p``) are proper scoring rules defined row by row, so
    they are still computed with one class; every value is ``None`` when ``y`` is empty.
    ``reason`` is ``None`` when every value could be computed.

    Raises:
        ValueError: ``y`` is not 0/1, lengths differ, or ``p`` is outside ``[0, 1]``/NaN.
    """
    yy = _labels(y)
    pp = _probabilities(p, yy.shape[0])
    n, n_pos = int(yy.shape[0]), int(yy.sum())
    out: dict[str, Any] = {
        "n": n,
        "n_positive": n_pos,
        "auc": None,
        "average_precision": None,
        "log_loss": None,
        "brier": None,
        "reason": None,
    }
    if n == 0:
        out["reason"] = "no rows to evaluate"
        return out
    out["log_loss"] = float(log_loss(yy, pp, labels=[0, 1]))
    out["brier"] = float(brier_score_loss(yy, pp, pos_label=1))
    if 0 < n_pos < n:
        out["auc"] = float(roc_auc_score(yy, pp))
        out["average_precision"] = float(average_precision_score(yy, pp))
    else:
        which = "converted" if n_pos == n else "not converted"
        out["reason"] = f"one class only: all {n} rows {which}"
    return out


def constant_log_loss(y: np.ndarray, rate: float) -> float | None:
    """Log loss of predicting the constant probability ``rate`` for every row of ``y``.

    The reference a model's log loss should beat (``rate`` usually the training base
    rate); ``rate`` is clipped into ``[1e-6, 1 - 1e-6]``. ``None`` when ``y`` is empty.
    """
    yy = _labels(y)
    if yy.size == 0:
        return None
    r = float(np.clip(rate, 1e-6, 1.0 - 1e-6))
    return float(-np.mean(yy * np.log(r) + (1 - yy) * np.log(1.0 - r)))


# ---------------------------------------------------------------- cumulative gains


def _gains_of_sorted(y_sorted: np.ndarray, shares: Sequence[float]) -> dict[str, float | None]:
    """Cumulative gains of labels already in working order (linear between leads)."""
    n, n_pos = y_sorted.shape[0], int(y_sorted.sum())
    if n == 0 or n_pos == 0:
        return {_share_key(s): None for s in shares}
    cum = np.concatenate(([0.0], np.cumsum(y_sorted, dtype=np.float64)))
    out: dict[str, float | None] = {}
    for s in shares:
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"share {s} is outside [0, 1]")
        pos = s * n
        whole = min(int(np.floor(pos + 1e-9)), n)
        frac = pos - whole if whole < n else 0.0
        found = cum[whole] + (frac * y_sorted[whole] if frac > 1e-9 else 0.0)
        out[_share_key(s)] = float(found / n_pos)
    return out


def gains(
    y: np.ndarray, order_score: np.ndarray, shares: Sequence[float] = DEFAULT_SHARES
) -> dict[str, float | None]:
    """Share of the positives found in the first ``share`` of the leads, best score first.

    Leads are taken in descending ``order_score``; equal scores keep their input order
    (a stable sort), so the result is deterministic. Where ``share * n`` is not a whole
    number of leads, the next lead counts in proportion (linear interpolation of the
    cumulative gains curve), so small test sets are not rounded to 0 %. Keys are the
    shares as strings (``"0.1"``); values are ``None`` when there is no positive.

    Raises:
        ValueError: bad labels, lengths differ, NaN scores, or a share outside ``[0, 1]``.
    """
    yy = _labels(y)
    score = _floats(order_score, "order_score", yy.shape[0])
    order = np.argsort(-score, kind="stable")
    return _gains_of_sorted(yy[order], shares)


def gains_in_order(
    y: np.ndarray, order_key: np.ndarray | pd.Series, shares: Sequence[float] = DEFAULT_SHARES
) -> dict[str, float | None]:
    """Like :func:`gains`, but leads are taken in ascending ``order_key``.

    ``order_key`` is anything numpy sorts: positions, numbers, ``datetime64`` times (for
    example ``created_at``: arrival order, what a team without a model works in). Equal
    keys keep their input order; NaT/NaN keys go last.

    Raises:
        ValueError: bad labels, lengths differ, or a share outside ``[0, 1]``.
    """
    yy = _labels(y)
    key = np.asarray(order_key)
    if key.ndim != 1 or key.shape[0] != yy.shape[0]:
        raise ValueError(f"order_key has shape {key.shape}, expected ({yy.shape[0]},)")
    order = np.argsort(key, kind="stable")
    return _gains_of_sorted(yy[order], shares)


# ---------------------------------------------------------------- calibration and drift


def _quantile_bins(reference: np.ndarray, values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each of ``values`` on the quantile cut points of ``reference``.

    Cut points are the interior quantiles of ``reference``, de-duplicated; bin ``i`` holds
    ``cut[i-1] < v <= cut[i]``. Ties in ``reference`` therefore merge bins instead of
    splitting equal values apart.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    cuts = np.unique(np.quantile(reference, qs)) if qs.size else np.empty(0)
    return np.searchsorted(cuts, values, side="left")


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict[str, Any]]:
    """Reliability table: predicted against observed conversion per quantile bin of ``p``.

    Returns one row per non-empty bin, lowest probabilities first:
    ``{"bin", "n", "p_min", "p_max", "mean_p", "observed_rate"}``. A calibrated model has
    ``mean_p`` close to ``observed_rate`` in every bin. Empty ``y`` gives ``[]``.

    Raises:
        ValueError: bad labels, lengths differ, ``p`` outside ``[0, 1]``, ``n_bins < 1``.
    """
    yy = _labels(y)
    pp = _probabilities(p, yy.shape[0])
    if yy.size == 0:
        return []
    bins = _quantile_bins(pp, pp, n_bins)
    rows: list[dict[str, Any]] = []
    for i, b in enumerate(np.unique(bins)):
        m = bins == b
        rows.append(
            {
                "bin": i + 1,
                "n": int(m.sum()),
                "p_min": float(pp[m].min()),
                "p_max": float(pp[m].max()),
                "mean_p": float(pp[m].mean()),
                "observed_rate": float(yy[m].mean()),
            }
        )
    return rows


def psi(expected_scores: np.ndarray, actual_scores: np.ndarray, n_bins: int = 10) -> float | None:
    """Population stability index of ``actual_scores`` against ``expected_scores``.

    ``sum((a_i - e_i) * ln(a_i / e_i))`` over the quantile bins of the expected scores
    (usually the training scores), with bin shares floored at :data:`PSI_EPS` so an empty
    bin gives a finite term. Usual reading: < 0.1 stable, 0.1-0.25 a shift worth a look,
    > 0.25 a major shift. ``None`` when either side is empty.

    Raises:
        ValueError: NaN or infinite scores, or ``n_bins < 1``.
    """
    e = _floats(expected_scores, "expected_scores")
    a = _floats(actual_scores, "actual_scores")
    if e.size == 0 or a.size == 0:
        return None
    be = _quantile_bins(e, e, n_bins)
    ba = _quantile_bins(e, a, n_bins)
    k = int(max(be.max(), ba.max())) + 1
    pe = np.maximum(np.bincount(be, minlength=k) / e.size, PSI_EPS)
    pa = np.maximum(np.bincount(ba, minlength=k) / a.size, PSI_EPS)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def grade_table(y: np.ndarray, grades: np.ndarray) -> list[dict[str, Any]]:
    """Conversion per grade: ``{"grade", "n", "converted", "rate"}`` for A, B, C, D.

    The four grades are always listed (``rate`` ``None`` where a grade has no lead); any
    other grade value found follows, sorted. A useful grading has falling rates A to D.

    Raises:
        ValueError: bad labels or lengths differ.
    """
    yy = _labels(y)
    gg = np.asarray(grades).astype(str)
    if gg.shape != yy.shape:
        raise ValueError(f"grades has shape {gg.shape}, expected {yy.shape}")
    extra = sorted(set(np.unique(gg).tolist()) - set(GRADES))
    rows: list[dict[str, Any]] = []
    for g in (*GRADES, *extra):
        m = gg == g
        n, conv = int(m.sum()), int(yy[m].sum())
        rows.append({"grade": g, "n": n, "converted": conv, "rate": conv / n if n else None})
    return rows


# ---------------------------------------------------------------- rep ranking


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Hit rates and mean reciprocal rank of 1-based ``ranks`` of the true item.

    Returns ``{"n", "hr@1", "hr@3", "hr@5", "mrr"}`` (one ``hr@k`` per ``k`` in ``ks``):
    ``hr@k`` is the share of rows whose true item ranks in the top ``k``; ``mrr`` the mean
    of ``1 / rank``. With ``n == 0`` every value but ``n`` is ``None``.

    Raises:
        ValueError: a rank below 1, NaN, or not one-dimensional.
    """
    r = _floats(ranks, "ranks")
    if r.size and r.min() < 1:
        raise ValueError("ranks are 1-based: every rank must be >= 1")
    out: dict[str, Any] = {"n": int(r.size)}
    for k in ks:
        out[f"hr@{k}"] = float(np.mean(r <= k)) if r.size else None
    out["mrr"] = float(np.mean(1.0 / r)) if r.size else None
    return out


def rank_of(
    true_idx: np.ndarray, scores: np.ndarray, ties: str = "random", seed: int = 0
) -> np.ndarray:
    """1-based rank of each row's true item among all items, by descending score.

    ``scores`` has shape ``(n, n_items)``; ``true_idx`` the column of the true item per row.
    Ties between the true item and others are broken by ``ties``:

    * ``"random"`` (default): uniformly among the tied positions, with ``seed``. The
      expected metrics then equal those of a random order among ties, so a scorer that
      cannot tell items apart (all equal) scores like :func:`random_baseline_ranking`
      (MRR ~ H(n_items) / n_items), and baselines with many ties (popularity: reps
      without wins) are not punished for them.
    * ``"pessimistic"``: after every tied item (a lower bound).
    * ``"optimistic"``: before every tied item (an upper bound).

    Returns an int64 vector of ranks in ``[1, n_items]``.

    Raises:
        ValueError: wrong shapes, an index out of range, NaN scores, unknown ``ties``.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(true_idx)
    if s.ndim != 2 or t.ndim != 1 or t.shape[0] != s.shape[0]:
        raise ValueError(f"scores {s.shape} and true_idx {t.shape} do not match (n, n_items)")
    if t.size and (t.min() < 0 or t.max() >= s.shape[1]):
        raise ValueError(f"true_idx must be in [0, {s.shape[1]})")
    if np.isnan(s).any():
        raise ValueError("scores hold NaN values")
    true_score = s[np.arange(s.shape[0]), t.astype(np.int64)][:, None]
    greater = (s > true_score).sum(axis=1)
    tied_others = (s == true_score).sum(axis=1) - 1
    if ties == "pessimistic":
        extra = tied_others
    elif ties == "optimistic":
        extra = np.zeros_like(tied_others)
    elif ties == "random":
        extra = np.random.default_rng(seed).integers(0, tied_others + 1)
    else:
        raise ValueError(f"ties must be 'random', 'pessimistic' or 'optimistic', not {ties!r}")
    ranks: np.ndarray = (1 + greater + extra).astype(np.int64)
    return ranks


def random_baseline_ranking(n_items: int, n: int, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Expected metrics of a uniformly random ranking of ``n_items`` items, in closed form.

    The true item's rank is uniform on ``1..n_items``, so ``hr@k = min(k, n_items) /
    n_items`` and ``mrr = H(n_items) / n_items`` (``H`` the harmonic number
    ``1 + 1/2 + ... + 1/n_items``). ``n`` is only carried into the result; with ``n == 0``
    or no items every value but ``n`` is ``None``.
    """
    out: dict[str, Any] = {"n": int(n)}
    ok = n > 0 and n_items > 0
    for k in ks:
        out[f"hr@{k}"] = min(k, n_items) / n_items if ok else None
    harmonic = float(np.sum(1.0 / np.arange(1, n_items + 1))) if n_items > 0 else 0.0
    out["mrr"] = harmonic / n_items if ok else None
    return out


def popularity_scores(
    train_rep_idx_of_wins: np.ndarray, n_reps: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Score of each rep = (weighted) number of training wins: the popularity baseline.

    ``train_rep_idx_of_wins`` holds the rep index (``0..n_reps-1``) of every training win;
    ``weights`` (same length, >= 0) turns it into a weighted count, for example with
    :func:`recency_weights` for the ``recent_popularity`` baseline. Returns a float64
    vector of length ``n_reps``; reps without wins score 0.

    Raises:
        ValueError: an index out of range, or ``weights`` of the wrong length or negative.
    """
    idx = np.asarray(train_rep_idx_of_wins, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_reps):
        raise ValueError(f"rep indices must be in [0, {n_reps})")
    w = None
    if weights is not None:
        w = _floats(weights, "weights", idx.shape[0])
        if w.size and w.min() < 0:
            raise ValueError("weights must be >= 0")
    return np.bincount(idx, weights=w, minlength=n_reps).astype(np.float64)


def recency_weights(
    times: np.ndarray | pd.Series, reference: Any, half_life_days: float = 30.0
) -> np.ndarray:
    """Exponential-decay weights ``0.5 ** (age_days / half_life_days)`` of timestamps.

    ``age_days`` is the time from each of ``times`` to ``reference`` (for example the split
    time) in days, floored at 0; missing times weigh 0. Used for the recent-popularity
    baseline.

    Raises:
        ValueError: ``half_life_days <= 0``.
    """
    if half_life_days <= 0:
        raise ValueError("half_life_days must be > 0")
    t = pd.to_datetime(pd.Series(np.asarray(times)))
    age = (pd.Timestamp(reference) - t).dt.total_seconds().to_numpy(dtype=np.float64) / 86400.0
    w = 0.5 ** (np.maximum(age, 0.0) / half_life_days)
    return np.where(np.isnan(w), 0.0, w)


# ---------------------------------------------------------------- uncertainty


def bootstrap_ci(
    statistic: np.ndarray | Callable[..., float | None],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval, ``1 - alpha`` coverage.

    Two forms:

    * ``bootstrap_ci(values)``: interval of the mean of ``values`` (vectorised).
    * ``bootstrap_ci(fn, a, b, ...)``: rows of the arrays are resampled together and
      ``fn(a*, b*, ...)`` computed on each resample; resamples where ``fn`` returns
      ``None`` or NaN (for example AUC with one class) are skipped. A paired difference of
      two metrics is ``bootstrap_ci(lambda a, b: a.mean() - b.mean(), a, b)``.

    Returns ``(low, high)``, or ``None`` when there is no row or no valid resample.

    Raises:
        ValueError: arrays of different lengths, or ``alpha`` outside ``(0, 1)``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    rng = np.random.default_rng(seed)
    if not callable(statistic):
        values = _floats(statistic, "values")
        if values.size == 0:
            return None
        stats = np.concatenate(
            [
                values[rng.integers(0, values.size, (min(200, n_boot - start), values.size))].mean(
                    1
                )
                for start in range(0, n_boot, 200)
            ]
        )
    else:
        arrs = [np.asarray(a) for a in arrays]
        n = arrs[0].shape[0] if arrs else 0
        if any(a.shape[0] != n for a in arrs):
            raise ValueError("every array must have the same number of rows")
        if n == 0:
            return None
        found = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            v = statistic(*(a[idx] for a in arrs))
            if v is not None and np.isfinite(v):
                found.append(float(v))
        if not found:
            return None
        stats = np.asarray(found)
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


# ---------------------------------------------------------------- leakage


def _oof_target_rate(codes: np.ndarray, y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Out-of-fold, smoothed conversion rate of each row's category."""
    n_cat = int(codes.max()) + 1
    prior = float(y.mean())
    fold = np.random.default_rng(seed).permutation(codes.shape[0]) % n_folds
    out = np.empty(codes.shape[0], dtype=np.float64)
    for f in range(n_folds):
        test = fold == f
        pos = np.bincount(codes[~test], weights=y[~test], minlength=n_cat)
        cnt = np.bincount(codes[~test], minlength=n_cat)
        out[test] = ((pos + prior) / (cnt + 1.0))[codes[test]]
    return out


def _auc_numeric(values: np.ndarray, y: np.ndarray) -> float:
    """AUC of a numeric column in its better direction, missing put at either end."""
    finite = np.isfinite(values)
    if not finite.any():
        return 0.5
    lo, hi = values[finite].min() - 1.0, values[finite].max() + 1.0
    best = 0.5
    for fill in (lo, hi):
        auc = float(roc_auc_score(y, np.where(finite, values, fill)))
        best = max(best, auc, 1.0 - auc)
    return best


def single_column_auc(
    X: pd.DataFrame, y: np.ndarray, n_folds: int = 5, seed: int = 0
) -> dict[str, float | None]:
    """AUC of each column of ``X`` used alone as a score: the leakage screen.

    0.5 = no information, 1.0 = separates converted from not converted perfectly; a
    column above about 0.9 is suspect (filled in after contact?).

    * numeric and boolean columns: the values as scores, in whichever direction is
      better (``max(auc, 1 - auc)``), missing values placed at whichever end is better;
      slightly optimistic by construction.
    * other columns (categorical, text): each row scored by the conversion rate of its
      category estimated *out of fold* (``n_folds`` seeded folds, smoothed towards the
      overall rate), so an id-like column with one row per value scores about 0.5 instead
      of a spurious 1.0; missing is a category of its own.

    Every value is ``None`` when ``y`` has one class only.

    Raises:
        ValueError: ``X`` and ``y`` differ in length or ``y`` is not 0/1.
    """
    yy = _labels(y)
    if len(X) != yy.shape[0]:
        raise ValueError(f"X has {len(X)} rows, y has {yy.shape[0]}")
    one_class = yy.size == 0 or yy.min() == yy.max()
    out: dict[str, float | None] = {}
    for col in X.columns:
        if one_class:
            out[str(col)] = None
            continue
        s = X[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            vals = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            out[str(col)] = _auc_numeric(vals, yy)
        else:
            codes, _ = pd.factorize(s.astype(object), use_na_sentinel=False)
            rate = _oof_target_rate(np.asarray(codes), yy.astype(np.float64), n_folds, seed)
            out[str(col)] = float(roc_auc_score(yy, rate))
    return out


# ---------------------------------------------------------------- routing policies


def policy_table(
    policy: np.ndarray, converted: np.ndarray, propensity: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Conversion by routing policy (``model``, ``explore``, ``holdout``, then others).

    One row per policy present: ``{"policy", "n", "share", "conversions", "rate",
    "ipw_rate"}``. ``propensity[i]`` is the probability, at routing time, that lead ``i``
    was routed the way it was (its policy and its rep); where given, ``ipw_rate`` is the
    self-normalised inverse-propensity-weighted conversion rate of the policy,
    ``sum(c / q) / sum(1 / q)``, which corrects for unequal chances of being routed that
    way; ``None`` without propensities. The holdout row (random routing) is the yardstick
    the model row is compared against.

    Raises:
        ValueError: lengths differ, bad labels, or a propensity outside ``(0, 1]``.
    """
    pol = np.asarray(policy).astype(str)
    conv = _labels(converted, "converted")
    if pol.shape != conv.shape:
        raise ValueError(f"policy has shape {pol.shape}, converted {conv.shape}")
    q = None
    if propensity is not None:
        q = _floats(propensity, "propensity", conv.shape[0])
        if q.size and (q.min() <= 0.0 or q.max() > 1.0):
            raise ValueError("propensity must be in (0, 1]")
    present = set(np.unique(pol).tolist())
    names = [p for p in POLICY_ORDER if p in present] + sorted(present - set(POLICY_ORDER))
    rows: list[dict[str, Any]] = []
    for name in names:
        m = pol == name
        n, c = int(m.sum()), int(conv[m].sum())
        ipw = None
        if q is not None:
            w = 1.0 / q[m]
            ipw = float(np.sum(w * conv[m]) / np.sum(w))
        rows.append(
            {
                "policy": name,
                "n": n,
                "share": n / conv.shape[0],
                "conversions": c,
                "rate": c / n,
                "ipw_rate": ipw,
            }
        )
    return rows
