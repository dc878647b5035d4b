"""Route each lead to one rep: best expected conversions within capacity, rules and exploration.

The router takes a matrix ``prob[i, j] = P(won | lead i, rep j)`` and chooses one rep per lead.
It works on arrays and integer indices only; ids, CSV files and rule texts live elsewhere
(``recommender.rules`` turns a rules file into the ``eligible`` mask).

Capacity is per day key: the leads that share a ``day`` value (for example the days since
1970-01-01 of ``created_at``) compete for that day's ``capacity`` (new leads per rep and day,
negative for unlimited) less what ``used`` says earlier requests already took. A rep is never
given more leads on one day than it has left, an inactive rep is never chosen, and a lead is
only given to a rep its ``eligible`` row allows. A lead that cannot be placed gets
``rep_index == -1``, policy ``"none"`` and a reason; no lead is ever dropped.

Policies. Each lead is drawn (seeded, in input order) into one of three policies:

* ``holdout`` (share ``holdout``): a rep drawn uniformly among the eligible reps with capacity
  left, so that the model's uplift can be measured against random routing;
* ``explore`` (share ``explore``): Thompson sampling, the argmax of ``logit(prob) + N(0, s)``
  with ``s = uncertainty[i, j]`` (the std of the logit), or epsilon-greedy (uniform) where
  ``uncertainty`` is ``None``;
* ``model`` (the rest): the assignment solver below.

Within a day the holdout leads are routed first, then the explore leads (both in input
order, each taking one unit of capacity), then the model leads share what is left. Random
routing first keeps the holdout an unbiased comparison, at a cost where capacity binds: a
random lead may take a slot that only some other lead could use, so fewer leads may be
placed than with ``explore = holdout = 0`` (those leads still get a reason).

The solver maximises ``sum(prob[i, j] * value[i])`` (``value`` 1 where not given) over the
day's model leads, first placing as many leads as possible, then (with a fairness floor)
filling each active rep's floor, then maximising the objective. It is exact:

1. fast path: if every lead's best rep has room for all the leads that prefer it, that is
   the optimum;
2. candidate reduction (exact): a lead only needs its best reps up to the first whose
   cumulated capacity reaches the number of leads of the day; a better rep outside that set
   always has a free slot, so moving the lead there cannot lose;
3. the lead-rep candidate graph is split into connected components (rules such as
   ``lead.region == rep.region`` make several), each an independent problem;
4. a component whose leads' best reps all have room takes them; otherwise its
   capacity-replicated matrix (one column per unit of capacity) is solved by
   ``scipy.optimize.linear_sum_assignment``. Where the capacities are large a rep starts
   with only a few copies (twice the leads that prefer it) and gets more only while all its
   copies are used. When no rep fills its copies the copy limits are inactive constraints
   of a linear programme, hence the solution is optimal for the full capacities too.

The bench (``bench/bench_routing.py``) checks the objective against exact LSA on the fully
replicated matrix: no gap was measured.

A day too large for one dense matrix (``max_cells``) is solved in consecutive blocks of
leads (in input order, each block taking what is left of the capacity); only then is the
result an approximation.

Propensity. ``propensity[i]`` approximates the probability that the mixture of policies
would have given lead ``i`` the rep it got: ``holdout / k + explore * q + model_share * g``
where ``k`` is the number of eligible reps with capacity left when the lead was routed,
``q`` the Thompson probability of that rep (Monte Carlo with ``propensity_samples`` draws
over the 64 of those reps with the highest ``logit + 3 std``, the others having a negligible
chance; ``1 / k`` for epsilon-greedy), and ``g`` is 1 if the model would have
chosen that rep: for model-routed leads ``g = 1`` (the solver's choice is treated as
deterministic given the batch), for explore and holdout leads ``g`` is 1 when the rep is the
lead's best available rep (the greedy choice), an approximation of the batch solver. Where
several reps tie for a lead's best (a model with no per-rep signal gives every rep the same
probability, up to float noise) the model picks among them at random, ``g = 1 / (number
tied)``; where capacity left a lead only some of its tied reps this overstates the
spread (an approximation, like the rest of ``g``).

Ties. The solver sees the weights plus a seeded jitter far below any real difference
(:data:`TIE_JITTER` times the largest weight, at least 1), so reps that tie are chosen at
random per lead rather than in id order: with no per-rep signal, leads spread evenly
instead of filling the first reps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from recommender.models.base import logit

MODEL = "model"
EXPLORE = "explore"
HOLDOUT = "holdout"
NONE = "none"
_THOMPSON_TOP = 64  # reps that take part in the Monte Carlo Thompson propensity
METHODS = ("auto", "optimal", "greedy")
TIE_JITTER = 1e-9
"""Scale of the seeded uniform noise added to the solver's weights to break exact ties."""

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class RoutingResult:
    """The rep chosen for each lead, in input order.

    Attributes:
        rep_index: ``(n_leads,)`` int, the chosen rep's column in ``prob``; -1 where no rep
            could take the lead.
        policy: ``(n_leads,)`` str: ``"model"``, ``"explore"``, ``"holdout"`` or ``"none"``
            (not placed).
        propensity: ``(n_leads,)`` float in [0, 1]: the mixture probability of the chosen
            rep (see the module docstring for the approximation); 0 where not placed.
        reason: per lead, why it was not placed (``None`` where it was).
    """

    rep_index: IntArray
    policy: NDArray[np.str_]
    propensity: FloatArray
    reason: list[str | None]

    @property
    def n_unassigned(self) -> int:
        """Number of leads no rep could take."""
        return int(np.sum(self.rep_index < 0))


_LONE_DAY_RUNS = True
"""Route runs of one-lead days together (off only in tests, to compare with the loop)."""


def days_since_epoch(timestamps: np.ndarray) -> IntArray:
    """Turn ``datetime64`` timestamps into int day keys (days since 1970-01-01).

    Args:
        timestamps: array of ``datetime64`` values (any unit), no NaT.

    Raises:
        ValueError: if a timestamp is NaT.
    """
    days = np.asarray(timestamps).astype("datetime64[D]")
    if np.isnat(days).any():
        raise ValueError("a timestamp is missing (NaT); every lead needs a created_at")
    return days.astype(np.int64)


def default_day_label(day: int) -> str:
    """Format a day key (days since 1970-01-01) as an ISO date such as ``2026-11-03``."""
    return str(np.datetime64(int(day), "D"))


def objective(prob: np.ndarray, rep_index: np.ndarray, value: np.ndarray | None = None) -> float:
    """Expected conversions (or expected value) of an assignment.

    Args:
        prob: ``(n_leads, n_reps)`` win probabilities.
        rep_index: ``(n_leads,)`` chosen rep per lead, -1 for none.
        value: optional ``(n_leads,)`` deal values.

    Returns:
        ``sum(prob[i, rep_index[i]] * value[i])`` over placed leads.
    """
    rows = np.flatnonzero(rep_index >= 0)
    gains = np.asarray(prob)[rows, rep_index[rows]]
    if value is not None:
        gains = gains * np.asarray(value, dtype=np.float64)[rows]
    return float(gains.sum())


def route_one(
    prob_row: np.ndarray,
    *,
    remaining: np.ndarray,
    eligible_row: np.ndarray | None = None,
    active: np.ndarray | None = None,
) -> int:
    """Fast greedy path for one lead: its best eligible active rep with capacity left today.

    Args:
        prob_row: ``(n_reps,)`` P(won | lead, rep).
        remaining: ``(n_reps,)`` int, leads each rep can still take today; negative means
            unlimited. Not modified: the caller takes one unit from the chosen rep.
        eligible_row: optional ``(n_reps,)`` bool, which reps the rules allow.
        active: optional ``(n_reps,)`` bool, which reps are active.

    Returns:
        The chosen rep's index (the lowest index among ties), or -1 if no rep can take it.
    """
    ok = remaining != 0
    if eligible_row is not None:
        ok &= eligible_row
    if active is not None:
        ok &= active
    best = int(np.argmax(np.where(ok, prob_row, -1.0)))
    return best if ok[best] else -1


def route(
    prob: np.ndarray,
    *,
    day: np.ndarray,
    capacity: np.ndarray,
    active: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    used: Mapping[tuple[int, int], int] | None = None,
    value: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    explore: float = 0.0,
    holdout: float = 0.0,
    fairness_floor: float = 0.0,
    seed: int = 0,
    method: str = "auto",
    eligible_why: Sequence[str | None] | None = None,
    day_label: Callable[[int], str] = default_day_label,
    propensity_samples: int = 64,
    max_cells: int = 12_000_000,
) -> RoutingResult:
    """Choose one rep per lead (see the module docstring for the algorithm).

    Args:
        prob: ``(n_leads, n_reps)`` P(won | lead, rep) in [0, 1].
        day: ``(n_leads,)`` int day key of each lead (``days_since_epoch`` of created_at).
        capacity: ``(n_reps,)`` int, new leads a rep takes per day; negative = unlimited.
        active: ``(n_reps,)`` bool, default all active.
        eligible: ``(n_leads, n_reps)`` bool, which pairs the rules allow; default all.
        used: ``{(day_key, rep_index): count}`` capacity already taken on that day by
            earlier requests; missing keys are 0. Only reps with less room left than
            there are leads change the result (one with room for every lead routes as if
            it took none), so a caller may pass just those.
        value: ``(n_leads,)`` expected deal value >= 0; NaN where unknown (then the mean of
            the known values). The objective becomes ``sum(value * prob)``.
        uncertainty: ``(n_leads, n_reps)`` std of the logit for Thompson sampling; ``None``
            makes exploration uniform among the eligible reps (epsilon-greedy).
        explore: share of leads routed by exploration, in [0, 1].
        holdout: share of leads routed uniformly at random, in [0, 1].
        fairness_floor: each active rep gets at least ``floor(fairness_floor * N)`` of the
            ``N`` model-routed leads of the batch so far, checked at the end of each day
            (as far as capacity and eligibility allow).
        seed: seed of every random draw; equal inputs and seed give equal results.
        method: ``"auto"`` (the exact solver, a greedy pass for a single lead),
            ``"optimal"``, or ``"greedy"`` (leads in input order, each its best rep left).
        eligible_why: optional per-lead text naming the rules that leave it no rep, used in
            the reason ``no eligible rep (rules: ...)``.
        day_label: formats a day key for reasons (default: ISO date of days since epoch).
        propensity_samples: Monte Carlo draws per lead for Thompson propensities.
        max_cells: largest dense cost matrix (cells) one solver call may build.

    Returns:
        A ``RoutingResult`` in input order.

    Raises:
        ValueError: on inconsistent shapes, probabilities outside [0, 1], shares outside
            [0, 1] or summing above 1, an unknown method, or a fairness floor with
            ``method="greedy"``.
    """
    prob, weight, allowed, cap, unlimited = _prepare(
        prob, day, capacity, active, eligible, value, explore, holdout, fairness_floor, method
    )
    n, m = prob.shape
    days = np.asarray(day, dtype=np.int64)
    act = np.ones(m, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    elig = np.ones((n, m), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    sigma = None if uncertainty is None else _check_matrix(uncertainty, (n, m), "uncertainty")
    policy_rng, holdout_rng, explore_rng, prop_rng, tie_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    draw = policy_rng.random(n)
    planned = np.where(draw < holdout, HOLDOUT, np.where(draw < holdout + explore, EXPLORE, MODEL))

    rep_index = np.full(n, -1, dtype=np.int64)
    policy = np.full(n, NONE, dtype="<U7")
    propensity = np.zeros(n, dtype=np.float64)
    reason: list[str | None] = [None] * n
    used_by_day = _group_used(used, m)
    floor_got = np.zeros(m, dtype=np.int64)
    n_model_seen = 0
    uniq, counts = np.unique(days, return_counts=True)
    # Days with one lead, all by the model's greedy pass, go through in runs (one set of
    # array operations per run, not per day: a batch of live requests spans many days).
    lone = (counts == 1) & (explore == 0 and holdout == 0 and fairness_floor == 0)
    lone &= method != "optimal" and m > 0 and _LONE_DAY_RUNS
    first = np.argsort(days, kind="stable")[np.cumsum(counts) - counts]
    k = 0
    while k < uniq.size:
        if lone[k]:
            end = k + 1
            while end < uniq.size and lone[end]:
                end += 1
            rows = first[k:end]
            used_rows = np.zeros((rows.size, m), dtype=np.int64)
            for r, d in enumerate(uniq[k:end]):
                if int(d) in used_by_day:
                    used_rows[r] = used_by_day[int(d)]
            rem = np.where(unlimited[None, :], n, cap[None, :] - used_rows).astype(np.int64)
            np.clip(rem, 0, None, out=rem)
            open_rows = allowed[rows] & (rem > 0)
            chosen = _greedy_lone(weight[rows], allowed[rows] & (rem != 0), tie_rng)
            placed = chosen >= 0
            rep_index[rows[placed]] = chosen[placed]
            policy[rows[placed]] = MODEL
            floor_got += np.bincount(chosen[placed], minlength=m)
            propensity[rows[placed]] = _propensity(
                prob[rows[placed]],
                None,
                open_rows[placed],
                chosen[placed],
                np.ones(int(placed.sum()), dtype=bool),
                (holdout, explore, 1.0 - holdout - explore),
                propensity_samples,
                prop_rng,
            )
            for i, d in zip(rows[~placed], uniq[k:end][~placed], strict=True):
                reason[i] = _reason(int(i), elig, act, int(d), day_label, eligible_why)
            k = end
            continue
        d = uniq[k]
        k += 1
        idx = np.flatnonzero(days == d)
        used_today = used_by_day.get(int(d), np.zeros(m, dtype=np.int64))
        # an unlimited rep has room for every lead, whatever it took earlier today
        rem = np.where(unlimited, n, cap - used_today).astype(np.int64)
        np.clip(rem, 0, None, out=rem)
        avail = np.zeros((idx.size, m), dtype=bool)  # reps open to each lead when routed
        for pol, rng in ((HOLDOUT, holdout_rng), (EXPLORE, explore_rng)):
            pos = np.flatnonzero(planned[idx] == pol)
            avail[pos], picked = _route_random(pol, idx[pos], prob, sigma, allowed, rem, rng)
            rep_index[idx[pos]] = picked
            policy[idx[pos[picked >= 0]]] = pol
        model_pos = np.flatnonzero(planned[idx] == MODEL)
        model_idx = idx[model_pos]
        avail[model_pos] = allowed[model_idx] & (rem > 0)[None, :]
        need = np.zeros(m, dtype=np.int64)
        if fairness_floor > 0 and model_idx.size:
            n_model_seen += model_idx.size
            target = np.floor(fairness_floor * n_model_seen + 1e-9).astype(np.int64)
            need = np.where(act, np.maximum(target - floor_got, 0), 0)
        use_greedy = method == "greedy" or (
            method == "auto" and model_idx.size <= 1 and fairness_floor == 0
        )
        solve = _solve_greedy if use_greedy else _solve_optimal
        w = weight[model_idx]
        scale = max(float(np.abs(w).max()), 1.0) if w.size else 1.0  # values can be large
        jitter = tie_rng.random((model_idx.size, m)) * (TIE_JITTER * scale)
        chosen = solve(w + jitter, allowed[model_idx], rem, need, max_cells)
        placed = chosen >= 0
        rep_index[model_idx[placed]] = chosen[placed]
        policy[model_idx[placed]] = MODEL
        floor_got += np.bincount(chosen[placed], minlength=m)
        done = rep_index[idx] >= 0
        propensity[idx[done]] = _propensity(
            prob[idx[done]],
            None if sigma is None else sigma[idx[done]],
            avail[done],
            rep_index[idx[done]],
            policy[idx[done]] == MODEL,
            (holdout, explore, 1.0 - holdout - explore),
            propensity_samples,
            prop_rng,
        )
        for i in idx[~done]:
            reason[i] = _reason(int(i), elig, act, int(d), day_label, eligible_why)
    return RoutingResult(rep_index, policy, propensity, reason)


def _route_random(
    pol: str,
    rows: IntArray,
    prob: FloatArray,
    sigma: FloatArray | None,
    allowed: BoolArray,
    rem: IntArray,
    rng: np.random.Generator,
) -> tuple[BoolArray, IntArray]:
    """Route ``rows`` one by one by holdout (uniform) or explore (Thompson); updates ``rem``.

    Returns:
        The reps open to each lead when it was routed, and the chosen rep (-1 if none).
    """
    avail = np.zeros((rows.size, prob.shape[1]), dtype=bool)
    picked = np.full(rows.size, -1, dtype=np.int64)
    for pos, i in enumerate(rows):
        avail[pos] = allowed[i] & (rem > 0)
        if pol == HOLDOUT:
            j = _pick_random(avail[pos], rng)
        else:
            j = _pick_thompson(prob[i], None if sigma is None else sigma[i], avail[pos], rng)
        if j >= 0:
            picked[pos] = j
            rem[j] -= 1
    return avail, picked


def _prepare(
    prob: np.ndarray,
    day: np.ndarray,
    capacity: np.ndarray,
    active: np.ndarray | None,
    eligible: np.ndarray | None,
    value: np.ndarray | None,
    explore: float,
    holdout: float,
    fairness_floor: float,
    method: str,
) -> tuple[FloatArray, FloatArray, BoolArray, IntArray, BoolArray]:
    """Validate the inputs; return prob, weight, allowed mask, capacity, unlimited mask."""
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"prob must be 2-D (n_leads, n_reps), got shape {p.shape}")
    n, m = p.shape
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("prob must hold probabilities in [0, 1] (no NaN)")
    if np.shape(day) != (n,):
        raise ValueError(f"day must have shape ({n},), got {np.shape(day)}")
    cap = np.asarray(capacity).astype(np.int64)
    if cap.shape != (m,):
        raise ValueError(f"capacity must have shape ({m},), got {cap.shape}")
    if active is not None and np.shape(active) != (m,):
        raise ValueError(f"active must have shape ({m},), got {np.shape(active)}")
    if eligible is not None and np.shape(eligible) != (n, m):
        raise ValueError(f"eligible must have shape ({n}, {m}), got {np.shape(eligible)}")
    for name, share in (
        ("explore", explore),
        ("holdout", holdout),
        ("fairness_floor", fairness_floor),
    ):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {share}")
    if explore + holdout > 1.0 + 1e-12:
        raise ValueError(f"explore + holdout must be at most 1, got {explore + holdout}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "greedy" and fairness_floor > 0:
        raise ValueError("a fairness floor needs method 'auto' or 'optimal', not 'greedy'")
    weight = p.copy()
    if value is not None:
        v = np.asarray(value, dtype=np.float64)
        if v.shape != (n,):
            raise ValueError(f"value must have shape ({n},), got {v.shape}")
        if np.any(v < 0):
            raise ValueError("value must be >= 0")
        known = np.isfinite(v)
        v = np.where(known, v, v[known].mean() if known.any() else 1.0)
        weight *= v[:, None]
    allowed = np.ones((n, m), dtype=bool)
    if eligible is not None:
        allowed &= np.asarray(eligible, dtype=bool)
    if active is not None:
        allowed &= np.asarray(active, dtype=bool)[None, :]
    return p, weight, allowed, cap, cap < 0


def _check_matrix(a: np.ndarray, shape: tuple[int, int], name: str) -> FloatArray:
    """Return ``a`` as float64 after checking its shape and that it is finite and >= 0."""
    out = np.asarray(a, dtype=np.float64)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    if not np.all(np.isfinite(out) & (out >= 0)):
        raise ValueError(f"{name} must be finite and >= 0")
    return out


def _group_used(used: Mapping[tuple[int, int], int] | None, m: int) -> dict[int, IntArray]:
    """Turn ``{(day, rep): count}`` into ``{day: (n_reps,) counts}``.

    Raises:
        ValueError: on a rep index outside ``[0, m)`` or a negative count.
    """
    out: dict[int, IntArray] = {}
    for (d, r), count in (used or {}).items():
        if not 0 <= int(r) < m or count < 0:
            raise ValueError(f"used has a bad entry ({d}, {r}): {count}")
        out.setdefault(int(d), np.zeros(m, dtype=np.int64))[int(r)] += int(count)
    return out


def _pick_random(avail: BoolArray, rng: np.random.Generator) -> int:
    """A uniform draw among the available reps; -1 if none."""
    options = np.flatnonzero(avail)
    return int(options[rng.integers(options.size)]) if options.size else -1


def _pick_thompson(
    prob_row: FloatArray, sigma_row: FloatArray | None, avail: BoolArray, rng: np.random.Generator
) -> int:
    """Thompson draw (argmax of logit + N(0, sigma)) among available reps; uniform if no sigma."""
    options = np.flatnonzero(avail)
    if not options.size:
        return -1
    if sigma_row is None:
        return int(options[rng.integers(options.size)])
    sample = logit(prob_row[options]) + sigma_row[options] * rng.standard_normal(options.size)
    return int(options[np.argmax(sample)])


def _thompson_prob(
    prob: FloatArray,
    sigma: FloatArray,
    avail: BoolArray,
    chosen: IntArray,
    draws: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Monte Carlo P(the chosen rep wins the Thompson draw among available reps), per row.

    Only the ``_THOMPSON_TOP`` available reps with the highest ``logit + 3 std`` (and the
    chosen rep) take part, an approximation that drops reps with a negligible chance.
    Add-half smoothing keeps the estimate above 0.
    """
    top = min(_THOMPSON_TOP, prob.shape[1])
    mu = np.where(avail, logit(prob), -np.inf)
    upper = mu + 3 * sigma
    part = np.argpartition(-upper, top - 1, axis=1)[:, :top]
    has = (part == chosen[:, None]).any(axis=1)
    worst = np.argmin(np.take_along_axis(upper, part, axis=1), axis=1)
    part[~has, worst[~has]] = chosen[~has]
    mu_k = np.take_along_axis(mu, part, axis=1)
    sd_k = np.take_along_axis(sigma, part, axis=1)
    wins = np.zeros(prob.shape[0], dtype=np.float64)
    target = np.argmax(part == chosen[:, None], axis=1)
    step = max(1, 2_000_000 // max(mu_k.size, 1))  # draws per vectorised step
    for start in range(0, draws, step):
        size = min(step, draws - start)
        sample = mu_k + sd_k * rng.standard_normal((size, *mu_k.shape))
        wins += np.sum(np.argmax(sample, axis=2) == target, axis=0)
    out: FloatArray = (wins + 0.5) / (draws + 1.0)
    out[avail.sum(axis=1) == 1] = 1.0
    return out


def _propensity(
    prob: FloatArray,
    sigma: FloatArray | None,
    avail: BoolArray,
    chosen: IntArray,
    by_model: BoolArray,
    mix: tuple[float, float, float],
    draws: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Mixture probability of each lead's chosen rep (see the module docstring)."""
    share_holdout, share_explore, share_model = mix
    k = np.maximum(avail.sum(axis=1), 1)
    explore_p = 1.0 / k
    if share_explore > 0 and sigma is not None and prob.shape[0]:
        explore_p = _thompson_prob(prob, sigma, avail, chosen, draws, rng)
    open_prob = np.where(avail, prob, -1.0)
    best = open_prob.max(axis=1) if prob.shape[0] else np.zeros(0)
    tied = open_prob >= best[:, None] - TIE_JITTER  # equal up to float noise
    ties = np.maximum(tied.sum(axis=1), 1)
    got = prob[np.arange(prob.shape[0]), chosen]
    # the model picks uniformly among reps tied for best (TIE_JITTER), else it is treated
    # as deterministic: 1 for its own choice, 0 for a rep it would not have picked
    model_p = np.where(got >= best - TIE_JITTER, 1.0 / ties, np.where(by_model, 1.0, 0.0))
    out = share_holdout / k + share_explore * explore_p + share_model * model_p
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def _reason(
    i: int,
    elig: BoolArray,
    act: BoolArray,
    d: int,
    day_label: Callable[[int], str],
    why: Sequence[str | None] | None,
) -> str:
    """Why lead ``i`` could not be placed on day ``d``."""
    if not act.any():
        return "no active rep"
    if not elig[i].any():
        text = why[i] if why is not None else None
        return f"no eligible rep (rules: {text})" if text else "no eligible rep"
    if not (elig[i] & act).any():
        return "no eligible rep is active"
    return f"all eligible reps at capacity on {day_label(d)}"


def _greedy_lone(weight: FloatArray, ok: BoolArray, rng: np.random.Generator) -> IntArray:
    """Each row a lone lead of its own day: its best ``ok`` rep, -1 if none.

    What :func:`_solve_greedy` answers for each row alone, with the seeded tie jitter
    drawn row after row from ``rng`` as the per-day loop of :func:`route` draws it.
    """
    scale = np.maximum(np.abs(weight).max(axis=1), 1.0)  # values can be large
    jitter = rng.random(weight.shape) * (TIE_JITTER * scale)[:, None]
    best = np.argmax(np.where(ok, weight + jitter, -1.0), axis=1)
    return np.where(ok[np.arange(best.size), best], best, -1).astype(np.int64)


def _solve_greedy(
    weight: FloatArray, allowed: BoolArray, rem: IntArray, need: IntArray, max_cells: int
) -> IntArray:
    """Leads in input order, each takes its best allowed rep with room; updates ``rem``."""
    out = np.full(weight.shape[0], -1, dtype=np.int64)
    for i in range(weight.shape[0]):
        j = route_one(weight[i], remaining=rem, eligible_row=allowed[i])
        if j >= 0:
            out[i] = j
            rem[j] -= 1
    return out


def _solve_optimal(
    weight: FloatArray, allowed: BoolArray, rem: IntArray, need: IntArray, max_cells: int
) -> IntArray:
    """Exact assignment of one day's model leads (see the module docstring); updates ``rem``.

    Priorities: most leads placed, then most floor units filled (``need`` per rep), then
    the largest total weight.
    """
    k, m = weight.shape
    out = np.full(k, -1, dtype=np.int64)
    ok = allowed & (rem > 0)[None, :]
    rows = np.flatnonzero(ok.any(axis=1))
    if rows.size == 0:
        return out
    w, ok = weight[rows], ok[rows]
    if rows.size * m > max_cells and rows.size > 1:
        half = rows.size // 2
        for part in (rows[:half], rows[half:]):
            sub = _solve_optimal(weight[part], allowed[part], rem, need, max_cells)
            out[part] = sub
            need = np.maximum(need - np.bincount(sub[sub >= 0], minlength=m), 0)
        return out
    masked = np.where(ok, w, -np.inf)
    best = np.argmax(masked, axis=1)
    demand = np.bincount(best, minlength=m)
    if not need.any() and np.all(demand <= rem):
        chosen = best
    else:
        cand = ok if need.any() else _candidates(masked, ok, rem)
        need = np.minimum(need, rem)
        chosen = np.full(rows.size, -1, dtype=np.int64)
        for sub_rows, sub_reps in _components(cand):
            sub_w = np.where(cand[np.ix_(sub_rows, sub_reps)], w[np.ix_(sub_rows, sub_reps)], -1.0)
            pick = np.argmax(sub_w, axis=1)
            sub_demand = np.bincount(pick, minlength=sub_reps.size)
            if need[sub_reps].any() or np.any(sub_demand > rem[sub_reps]):
                pick = _solve_lsa(
                    np.maximum(sub_w, 0.0),
                    sub_w >= 0,
                    rem[sub_reps],
                    need[sub_reps],
                    sub_demand,
                    max_cells,
                )
            chosen[sub_rows[pick >= 0]] = sub_reps[pick[pick >= 0]]
    out[rows] = chosen
    placed = chosen[chosen >= 0]
    rem -= np.bincount(placed, minlength=m)
    return out


def _components(cand: BoolArray) -> list[tuple[IntArray, IntArray]]:
    """Connected components of the lead-rep candidate graph: (lead rows, rep columns) each.

    Components share no lead and no rep, so each is an independent assignment problem.
    Reps without any candidate lead are left out.
    """
    k, m = cand.shape
    r, c = np.nonzero(cand)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c + k)), shape=(k + m, k + m))
    n_comp, labels = connected_components(graph, directed=False)
    if n_comp == 1:
        return [(np.arange(k, dtype=np.int64), np.arange(m, dtype=np.int64))]
    lead_lab, rep_lab = labels[:k], labels[k:]
    lead_order = np.argsort(lead_lab, kind="stable")
    rep_order = np.argsort(rep_lab, kind="stable")
    lead_cut = np.searchsorted(lead_lab[lead_order], np.arange(n_comp + 1))
    rep_cut = np.searchsorted(rep_lab[rep_order], np.arange(n_comp + 1))
    return [
        (
            lead_order[lead_cut[g] : lead_cut[g + 1]].astype(np.int64),
            rep_order[rep_cut[g] : rep_cut[g + 1]].astype(np.int64),
        )
        for g in range(n_comp)
        if lead_cut[g + 1] > lead_cut[g]
    ]


def _candidates(masked: FloatArray, ok: BoolArray, rem: IntArray) -> BoolArray:
    """Each lead's best reps up to the first whose cumulated capacity covers all the leads."""
    k = masked.shape[0]
    order = np.argsort(-masked, axis=1, kind="stable")
    ok_sorted = np.take_along_axis(ok, order, axis=1)
    cum = np.cumsum(np.where(ok_sorted, np.minimum(rem, k)[order], 0), axis=1)
    keep = ok_sorted & ((cum - np.minimum(rem, k)[order]) < k)
    cand = np.zeros_like(ok)
    np.put_along_axis(cand, order, keep, axis=1)
    return cand


def _greedy_usage(w: FloatArray, cand: BoolArray, bound: IntArray) -> IntArray:
    """Leads per rep of a greedy pass (best leads first, each its best rep with room).

    Only a first guess of how many copies of each rep the exact solver will need.
    """
    left = bound.copy()
    masked = np.where(cand, w, -1.0)
    for i in np.argsort(-masked.max(axis=1), kind="stable"):
        j = route_one(masked[i], remaining=left, eligible_row=cand[i])
        if j >= 0:
            left[j] -= 1
    return np.asarray(bound - left, dtype=np.int64)


def _solve_blocks(
    w: FloatArray, cand: BoolArray, rem: IntArray, need: IntArray, max_cells: int
) -> IntArray:
    """Solve the first and the second half of the leads in turn (too large for one matrix)."""
    k, m = w.shape
    out = np.full(k, -1, dtype=np.int64)
    rem, need = rem.copy(), need.copy()
    for part in (np.arange(k // 2), np.arange(k // 2, k)):
        sub = cand[part] & (rem > 0)[None, :]
        demand = np.bincount(np.argmax(np.where(sub, w[part], -1.0), axis=1), minlength=m)
        pick = _solve_lsa(w[part], sub, rem, need, demand, max_cells)
        out[part] = pick
        taken = np.bincount(pick[pick >= 0], minlength=m)
        rem -= taken
        need = np.maximum(need - taken, 0)
    return out


def _solve_lsa(
    w: FloatArray,
    cand: BoolArray,
    rem: IntArray,
    need: IntArray,
    demand: IntArray,
    max_cells: int,
) -> IntArray:
    """Capacity-replicated LSA with lazily grown copies per rep; -1 for unplaced rows."""
    k, m = w.shape
    bound = np.minimum(rem, cand.sum(axis=0))
    guess = _greedy_usage(w, cand, bound)
    copies = np.maximum(np.maximum(2 * demand, 2 * guess + 4), need)
    copies = np.where(2 * guess >= bound, bound, np.minimum(bound, copies))
    if bound.sum() <= 2 * k:  # small enough: all the copies at once, no regrowth
        copies = bound
    if k > 1 and k * int(copies.sum()) > max_cells:
        return _solve_blocks(w, cand, rem, need, max_cells)
    scale = float(np.max(np.where(cand, w, 0.0)))
    wn = w / scale if scale > 0 else w
    value_bonus = k + 1.0
    floor_bonus = value_bonus if need.any() else 0.0
    place_bonus = value_bonus + floor_bonus * (k + 1.0)
    while True:
        cols = np.repeat(np.arange(m), copies)
        rank = np.arange(cols.size) - np.repeat(np.cumsum(copies) - copies, copies)
        is_floor = rank < need[cols]
        cost = wn[:, cols]
        cost += place_bonus
        if floor_bonus:
            cost += floor_bonus * is_floor[None, :]
        np.negative(cost, out=cost)
        cost[~cand[:, cols]] = 0.0
        r, c = linear_sum_assignment(cost)
        real = cand[r, cols[c]]
        chosen = np.full(k, -1, dtype=np.int64)
        chosen[r[real]] = cols[c[real]]
        taken = np.bincount(chosen[chosen >= 0], minlength=m)
        grow = (taken >= copies) & (copies < bound)
        new = np.where(grow, np.minimum(2 * copies, bound), copies)
        if not grow.any() or k * int(new.sum()) > max_cells:
            return chosen
        copies = new
