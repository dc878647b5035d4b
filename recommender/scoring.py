"""Turn calibrated probabilities and log-odds contributions into what a sales manager reads.

- ``score`` (0-100): points on the scorecard scale. 50 is a lead with the average odds of
  converting; every ``PDO`` (20) points doubles the odds; clipped to [0, 100].
- ``grade`` (A-D): cut points on the probability learned so that the grades' conversion
  rates differ as much as possible (maximal information value over a grid of quantiles,
  each grade holding at least ``min_share`` of the leads).
- ``reasons``: the factors whose contributions moved this lead's score most, each as
  ``"Source = Reference: +18 points"`` on the same points scale.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from recommender.models.base import PROBA_EPS, logit, sigmoid

#: Points that double the odds of converting.
PDO = 20.0
POINTS_PER_LOGIT = PDO / math.log(2.0)
GRADES = ("A", "B", "C", "D")
__all__ = [
    "EPS",
    "GRADES",
    "PDO",
    "clip_probability",
    "grade",
    "learn_grade_cuts",
    "logit",
    "reasons",
    "score_0_100",
    "sigmoid",
    "to_points",
]
#: Probabilities are kept strictly inside (0, 1): a lead is never certain.
EPS = PROBA_EPS


def clip_probability(p: np.ndarray) -> np.ndarray:
    """Clip probabilities into [EPS, 1 - EPS]."""
    return np.asarray(np.clip(np.asarray(p, dtype=float), EPS, 1.0 - EPS))


def to_points(logits: np.ndarray) -> np.ndarray:
    """Convert log-odds (or log-odds contributions) into score points."""
    return np.asarray(logits, dtype=float) * POINTS_PER_LOGIT


def score_0_100(p: np.ndarray, base_rate: float) -> np.ndarray:
    """Return integer scores in [0, 100]: 50 + points of the log-odds above ``base_rate``."""
    pts = 50.0 + to_points(logit(p) - logit(base_rate))
    return np.clip(np.rint(pts), 0, 100).astype(int)


FLAT_SPREAD = 1e-4
"""Probabilities closer than this (0.01 percentage points) are one value to
:func:`learn_grade_cuts`: float noise, or a model that found no signal but for a hair.
Maven CRM's no-signal model gives 0.631499163061863 and ...8629 to its training leads,
and 0.62867 to a lead scored later (engagement as of another moment)."""


def learn_grade_cuts(
    p: np.ndarray, y: np.ndarray, *, min_share: float = 0.05, grid: int = 20
) -> list[float]:
    """Learn three probability cut points separating grades A > B > C > D.

    The cuts are chosen among the ``grid`` quantiles of ``p`` to maximise the information
    value of the grades against ``y``, each grade holding at least ``min_share`` of the
    leads. Returns ``[cut_AB, cut_BC, cut_CD]`` (descending). With one class only, the cuts
    are the 85th, 60th and 30th percentiles. A score that does not rank at all (one value
    for every lead) grades every lead C, the grade of the median lead under those
    percentiles, rather than A. "One value" allows float noise (a spread up to
    ``FLAT_SPREAD``), and so do the cuts: a new lead scored within that noise is a C too.
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if p.size and np.ptp(p) <= FLAT_SPREAD:
        above = float(p.max()) + FLAT_SPREAD
        return [above, above, float(p.min()) - FLAT_SPREAD]
    default = (
        [float(np.quantile(p, q)) for q in (0.85, 0.60, 0.30)] if p.size else [0.75, 0.5, 0.25]
    )
    pos, neg = y.sum(), (1 - y).sum()
    if p.size < 20 or pos == 0 or neg == 0:
        return default
    qs = np.unique(np.quantile(p, np.linspace(0, 1, grid + 1)[1:-1]))
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    cum_pos = np.concatenate([[0.0], np.cumsum(ys)])
    n = p.size
    idx = np.searchsorted(ps, qs, side="left")
    best: tuple[float, list[float]] = (-1.0, default)
    for a, b, c in itertools.combinations(range(len(qs)), 3):
        bounds = [0, idx[a], idx[b], idx[c], n]
        sizes = np.diff(bounds)
        if sizes.min() < min_share * n:
            continue
        gp = np.diff(cum_pos[bounds])
        gn = sizes - gp
        dp = (gp + 0.5) / (pos + 1.0)
        dn = (gn + 0.5) / (neg + 1.0)
        iv = float(np.sum((dp - dn) * np.log(dp / dn)))
        rates = gp / sizes
        if np.all(np.diff(rates) > 0) and iv > best[0]:
            best = (iv, [float(qs[c]), float(qs[b]), float(qs[a])])
    return best[1]


def grade(p: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Return grades 'A'-'D' for probabilities ``p`` given descending ``cuts``."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, "D", dtype="<U1")
    out[p >= cuts[2]] = "C"
    out[p >= cuts[1]] = "B"
    out[p >= cuts[0]] = "A"
    return out


def format_value(value: object) -> str:
    """Format a feature value for a reason: numbers compactly, missing as 'missing'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, float | np.floating):
        v = float(value)
        return f"{v:.0f}" if v.is_integer() else f"{v:.2f}"  # as the data writes it: no 1,428
    return str(value)


def reasons(
    contributions: np.ndarray,
    labels: Sequence[str],
    values: Sequence[Sequence[object]],
    *,
    top: int = 3,
    min_points: float = 0.5,
) -> list[list[str]]:
    """Return, per lead, its ``top`` factors as readable strings, largest effect first.

    Args:
        contributions: (n_leads, n_factors) log-odds contributions against the average lead.
        labels: the readable name of each factor (for example ``"Source"``).
        values: per lead, the value of each factor (shown after ``=``).
        top: how many reasons per lead.
        min_points: factors moving the score by less than this are not listed.
    """
    pts = to_points(contributions)
    out: list[list[str]] = []
    order = np.argsort(-np.abs(pts), axis=1, kind="stable")[:, :top]
    for i in range(pts.shape[0]):
        row = []
        for j in order[i]:
            if abs(pts[i, j]) < min_points:
                continue
            row.append(f"{labels[j]} = {format_value(values[i][j])}: {pts[i, j]:+.0f} points")
        out.append(row)
    return out
