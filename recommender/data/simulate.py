"""A synthetic sales team with planted per-rep affinities, and its ground truth.

:func:`simulate` writes a dataset folder in the contract format (../shared/CONTRACT.md,
section 1) plus a ``truth/`` subfolder that the loader ignores. :func:`load_truth` reads
the truth back so that every lead's true conversion probability with every rep can be
rebuilt.

The generative model, per lead ``i`` worked by rep ``r``::

    fit_logit_i  = intercept + source + seniority + job_function + industry
                   + size(employees) + tech_stack + region + 0.2 * log1p(pages_first_visit)
                   + latent_i                           (latent_i ~ N(0, 0.4), unobserved)
    engagement_i = sum over events e with at_e <= t_ref_i of
                   weight_e * 2 ** (-(t_ref_i - at_e) / half_life)      (half_life 14 days)
    base_logit_i = fit_logit_i + 0.6 * log1p(engagement_i)
    P(won | i, r) = sigmoid(base_logit_i + rep_bias_r + affinity[r, segment_i])

``t_ref_i`` is the moment the outcome is decided (``created_at + 21 days``). A segment is
the visible pair (industry group, size band), 3 x 3 = 9 segments. ``affinity`` is
``rep_effect`` times a planted matrix: each rep is about +1 logit better in one or two
segments and about -1 logit worse in one or two, double-centred so that it is a pure
rep x segment interaction. ``rep_bias_r = rep_effect * N(0, 0.25)``. With
``rep_effect=0`` both are exactly zero: reps do not differ at all (a placebo team).

Columns ``form_fill_seconds`` and ``browser`` are pure noise. Historical assignment is
weighted random among the reps of the lead's region who were employed at the time
(reps of the matching team, by company size band, are twice as likely), so every rep sees
every segment of its region. Each random part draws from its own child stream of the
seed, so, for example, changing ``rep_effect`` keeps the same leads and events.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from recommender.columns import Columns, Files, Outcome
from recommender.errors import UnknownIdError

TRUTH_DIR = "truth"
"""Subfolder of a simulated dataset holding the ground truth (not a contract file)."""

EXPORT_TIME = np.datetime64("2026-11-01T00:00:00", "s")
"""The export moment: the end of 2026-10-31. Nothing in the data happens at or after it."""

HALF_LIFE_DAYS = 14.0
DECISION_DAYS = 21.0
ENGAGEMENT_COEF = 0.6
INTERCEPT = -3.5
LATENT_SD = 0.4
REP_BIAS_SD = 0.25
DAY_S = 86_400

# (name, industry group, fit effect, revenue per employee in USD, share)
_INDUSTRIES = (
    ("software", "digital", 0.6, 250e3, 0.14),
    ("internet", "digital", 0.4, 300e3, 0.08),
    ("telecom", "digital", 0.1, 400e3, 0.05),
    ("banking", "regulated", 0.2, 500e3, 0.07),
    ("insurance", "regulated", 0.0, 450e3, 0.06),
    ("healthcare", "regulated", 0.1, 150e3, 0.10),
    ("pharma", "regulated", 0.2, 400e3, 0.05),
    ("manufacturing", "traditional", -0.1, 200e3, 0.15),
    ("retail", "traditional", -0.3, 180e3, 0.12),
    ("logistics", "traditional", -0.2, 220e3, 0.09),
    ("construction", "traditional", -0.5, 200e3, 0.09),
)
_GROUPS = ("digital", "regulated", "traditional")
_BANDS = ("small", "mid", "large")  # employees < 100, 100-999, >= 1000
_BAND_EDGES = (100, 1000)
SEGMENTS = tuple(f"{g}/{b}" for g in _GROUPS for b in _BANDS)
"""Segment names, ``industry_group/size_band``, in the order of the affinity columns."""

# (name, share, fit effect, countries)
_REGIONS = (
    ("NA", 0.42, 0.2, ("US", "CA")),
    ("EMEA", 0.32, 0.1, ("GB", "DE", "FR", "NL", "ES", "SE")),
    ("APAC", 0.16, -0.1, ("AU", "SG", "JP", "IN")),
    ("LATAM", 0.10, -0.2, ("BR", "MX", "AR")),
)
_TECH = (
    ("salesforce", 0.30, 0.3),
    ("hubspot", 0.22, 0.4),
    ("dynamics", 0.12, 0.1),
    ("zoho", 0.08, 0.0),
    ("none", 0.28, -0.3),
)
# (name, share, fit effect, event-rate effect); cold lists are mostly junk
_SOURCES = (
    ("web_form", 0.30, 0.2, 0.2),
    ("paid_search", 0.20, -0.3, 0.0),
    ("cold_list", 0.20, -2.0, -1.2),
    ("event", 0.10, 0.3, 0.1),
    ("referral", 0.08, 1.0, 0.2),
    ("partner", 0.12, 0.6, 0.0),
)
_SENIORITY = (
    ("C-level", 0.06, 0.3),
    ("VP", 0.10, 0.6),
    ("Director", 0.16, 0.5),
    ("Manager", 0.28, 0.2),
    ("Individual Contributor", 0.30, -0.3),
    ("Student/Other", 0.10, -1.5),
)
_FUNCTIONS = (
    ("sales", 0.18, 0.1),
    ("marketing", 0.22, 0.3),
    ("it", 0.20, 0.2),
    ("operations", 0.14, 0.0),
    ("finance", 0.10, -0.1),
    ("hr", 0.06, -0.2),
    ("other", 0.10, -0.3),
)
_BROWSERS = (("chrome", 0.62), ("safari", 0.20), ("edge", 0.10), ("firefox", 0.06), ("other", 0.02))
# (event, truth weight, base logit of the type, slope on the lead's latent intent)
_EVENTS = (
    ("page_view", 1.0, 1.5, 0.0),
    ("email_open", 0.5, 1.2, 0.0),
    ("content_download", 3.0, 0.0, 0.3),
    ("webinar", 5.0, -0.8, 0.5),
    ("pricing_page", 6.0, -0.6, 0.8),
    ("demo_request", 15.0, -2.2, 1.2),
)
_TEAMS = (("SMB", 0.45), ("MidMarket", 0.35), ("Enterprise", 0.20))  # team k prefers band k
_STREAMS = ("accounts", "leads", "events", "reps", "affinity", "assign", "outcomes")


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate` wrote.

    Attributes:
        out: the dataset folder.
        n_leads: rows of ``leads.csv``.
        n_reps: rows of ``reps.csv``.
        n_accounts: rows of ``accounts.csv`` (0 when written without accounts).
        n_events: rows of ``events.csv``.
        conversion_rate: share of closed outcome rows (won or lost) that are won.
    """

    out: Path
    n_leads: int
    n_reps: int
    n_accounts: int
    n_events: int
    conversion_rate: float


@dataclass(frozen=True, eq=False)
class Truth:
    """The ground truth of a simulated dataset, as :func:`load_truth` reads it.

    Attributes:
        lead_ids: lead ids (str), in ``leads.csv`` order.
        rep_ids: rep ids (str), in ``reps.csv`` order.
        segments: segment names, the columns of ``affinity``.
        lead_segment: index into ``segments`` of each lead, shape (n_leads,).
        base_logit: fit plus decayed engagement at decision time, shape (n_leads,).
        fit_logit: the static ICP fit part only (intercept included), shape (n_leads,).
        affinity: additive logit effect of rep x segment, shape (n_reps, n_segments).
        rep_bias: additive logit effect of each rep overall, shape (n_reps,).
        params: the parameters of ``truth/truth.json`` (seed, rep_effect, half-life, ...).
        latent: the unobserved intent part of ``fit_logit``, shape (n_leads,); None for a
            folder written before it was recorded.
    """

    lead_ids: np.ndarray
    rep_ids: np.ndarray
    segments: list[str]
    lead_segment: np.ndarray
    base_logit: np.ndarray
    fit_logit: np.ndarray
    affinity: np.ndarray
    rep_bias: np.ndarray
    params: dict[str, Any]
    latent: np.ndarray | None = None

    def probability(
        self,
        lead_ids: Sequence[str] | None = None,
        rep_ids: Sequence[str] | None = None,
        *,
        base_logit: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return the true P(won) of each lead if worked by each rep.

        Args:
            lead_ids: leads to score (default: all, in order).
            rep_ids: reps to score with (default: all, in order).
            base_logit: the leads' base logits to use instead of the truth's, one per
                selected lead (for example :func:`knowable_base_logit`).

        Returns:
            float64 matrix (len(lead_ids), len(rep_ids)):
            ``sigmoid(base_logit + rep_bias + affinity[rep, segment])``.

        Raises:
            UnknownIdError: a lead or rep id not in the truth.
        """
        li = _positions(self.lead_ids, lead_ids, "lead")
        ri = _positions(self.rep_ids, rep_ids, "rep")
        base = self.base_logit[li] if base_logit is None else np.asarray(base_logit, float)
        if base.shape != li.shape:
            raise ValueError(f"base_logit has shape {base.shape}, expected {li.shape}")
        logit = (
            base[:, None]
            + self.rep_bias[ri][None, :]
            + self.affinity[ri][:, self.lead_segment[li]].T
        )
        return _sigmoid(logit)


def knowable_base_logit(
    truth: Truth, leads: pd.DataFrame, events: pd.DataFrame, as_of: np.ndarray
) -> np.ndarray:
    """Return the truth's base logit of some leads from what is known at ``as_of``.

    The truth's own formula, but without the unobserved latent intent and counting only the
    events that happened before each lead's ``as_of`` (decayed to the decision time, as the
    truth decays them). It is what a model scoring at ``as_of`` could at best plug in: a
    fairer reference for a score's AUC than the truth, whose latent intent and later events
    no model can see. It is not a strict ceiling (early events also hint at the latent).

    Args:
        truth: the dataset's truth (written with its latent intent).
        leads: the leads (``lead_id``, ``created_at`` datetime64), n rows.
        events: the dataset's events (``lead_id``, ``at`` datetime64, ``weight`` or NaN
            for 1.0), as :func:`recommender.data.load.load_dataset` reads them.
        as_of: the scoring time of each lead, datetime64 of shape (n,).

    Returns:
        float64 array (n,), in the order of ``leads``.

    Raises:
        ValueError: the truth has no latent intent (a folder written before it was kept).
        UnknownIdError: a lead id not in the truth.
    """
    if truth.latent is None:
        raise ValueError("this truth predates the recorded latent intent; simulate it again")
    ids = leads[Columns.LEAD].astype(str).tolist()
    li = _positions(truth.lead_ids, ids, "lead")
    pos = pd.Series(np.arange(len(ids)), index=ids)
    ev_lead = events[Columns.LEAD].astype(str).map(pos)
    keep = ev_lead.notna().to_numpy()
    k = ev_lead.to_numpy()[keep].astype(np.int64)
    at = events[Columns.AT].to_numpy()[keep].astype("datetime64[s]")
    weight = pd.to_numeric(events[Columns.WEIGHT]).fillna(1.0).to_numpy()[keep]
    as_of = np.asarray(as_of).astype("datetime64[s]")
    created = leads[Columns.CREATED].to_numpy().astype("datetime64[s]")
    t_ref = created + np.timedelta64(int(truth.params["decision_days"] * DAY_S), "s")
    age_days = (t_ref[k] - at).astype(np.float64) / DAY_S
    decayed = weight * 2.0 ** (-np.maximum(age_days, 0.0) / truth.params["half_life_days"])
    decayed = np.where((at < as_of[k]) & (age_days >= 0), decayed, 0.0)
    engagement = np.bincount(k, weights=decayed, minlength=len(ids))
    fit = truth.fit_logit[li] - truth.latent[li]
    return np.asarray(fit + truth.params["engagement_coef"] * np.log1p(engagement))


def _positions(known: np.ndarray, wanted: Sequence[str] | None, kind: str) -> np.ndarray:
    """Return the indices of ``wanted`` ids in ``known`` (all when None)."""
    if wanted is None:
        return np.arange(len(known))
    index = {v: i for i, v in enumerate(known.tolist())}
    out = np.empty(len(wanted), dtype=np.int64)
    for k, value in enumerate(wanted):
        if value not in index:
            raise UnknownIdError(kind, str(value))
        out[k] = index[value]
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Return the logistic function of ``x`` (float64)."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))))


def _pick(
    rng: np.random.Generator, table: Sequence[tuple[Any, ...]], n: int, share_at: int = 1
) -> np.ndarray:
    """Draw ``n`` row indices of a catalogue whose field ``share_at`` is the share."""
    p = np.array([row[share_at] for row in table], dtype=np.float64)
    return rng.choice(len(table), size=n, p=p / p.sum())


def _col(table: Sequence[tuple[Any, ...]], k: int) -> np.ndarray:
    """Return field ``k`` of every row of a catalogue as an array."""
    return np.array([row[k] for row in table])


def _iso(t: np.ndarray) -> np.ndarray:
    """Format datetime64[s] values as ISO 8601 strings (``YYYY-MM-DDTHH:MM:SS``)."""
    return np.datetime_as_string(t.astype("datetime64[s]"), unit="s")


def _size_band(employees: np.ndarray) -> np.ndarray:
    """Return the size band index (0 small, 1 mid, 2 large) of employee counts."""
    return np.searchsorted(np.array(_BAND_EDGES), employees, side="right")


# --------------------------------------------------------------------------- companies
def _companies(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` companies: firmographics, their fit part and their prior-customer flag."""
    industry = _pick(rng, _INDUSTRIES, n, share_at=4)
    employees = np.clip(np.round(np.exp(rng.normal(4.8, 1.8, n))), 1, 400_000).astype(np.int64)
    region = _pick(rng, _REGIONS, n)
    tech = _pick(rng, _TECH, n)
    tech_missing = rng.random(n) < 0.15
    rpe = _col(_INDUSTRIES, 3).astype(np.float64)[industry]
    revenue = np.round(employees * rpe * np.exp(rng.normal(0.0, 0.5, n)), -3)
    revenue_missing = rng.random(n) < 0.10
    log_size = np.log10(employees)
    fit = (
        _col(_INDUSTRIES, 2).astype(np.float64)[industry]
        + 0.3
        - 0.3 * (log_size - 2.7) ** 2
        + np.where(tech_missing, 0.0, _col(_TECH, 2).astype(np.float64)[tech])
        + _col(_REGIONS, 2).astype(np.float64)[region]
    )
    group = np.array([_GROUPS.index(g) for g in _col(_INDUSTRIES, 1)])[industry]
    prior_customer = rng.random(n) < _sigmoid(1.0 * fit - 3.2)
    return {
        "industry": industry,
        "employees": employees,
        "region": region,
        "tech": np.where(tech_missing, -1, tech),
        "revenue": np.where(revenue_missing, np.nan, revenue),
        "fit": fit,
        "segment": group * len(_BANDS) + _size_band(employees),
        "prior_customer": prior_customer,
    }


# --------------------------------------------------------------------------- leads
def _arrivals(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Draw sorted creation times (datetime64[s]): weekdays busier, a growing trend."""
    start = EXPORT_TIME - np.timedelta64(days * DAY_S, "s")
    day = np.arange(days)
    weekday = (start.astype("datetime64[D]").astype(np.int64) + day + 3) % 7  # 0 = Monday
    w = np.select([weekday == 5, weekday == 6], [0.3, 0.25], 1.0) * (0.8 + 0.4 * day / days)
    chosen = rng.choice(days, size=n, p=w / w.sum())
    business = rng.random(n) < 0.85
    hours = np.where(business, np.clip(rng.normal(13.0, 2.8, n), 6.0, 21.0), rng.uniform(0, 24, n))
    seconds = chosen * DAY_S + np.minimum(np.floor(hours * 3600), DAY_S - 1).astype(np.int64)
    return np.sort(start + seconds.astype("timedelta64[s]"))


def _leads(
    rng: np.random.Generator, n: int, days: int, comp: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Draw ``n`` leads, their company, own columns, fit logit and latent intent."""
    created = _arrivals(rng, n, days)
    size_w = comp["employees"].astype(np.float64) ** 0.35
    company = rng.choice(len(size_w), size=n, p=size_w / size_w.sum())
    source = _pick(rng, _SOURCES, n)
    seniority = _pick(rng, _SENIORITY, n)
    function = np.where(rng.random(n) < 0.05, -1, _pick(rng, _FUNCTIONS, n))
    countries = [_REGIONS[k][3] for k in range(len(_REGIONS))]
    region = comp["region"][company]
    pick_c = rng.random(n)
    country = np.array([countries[r][int(u * len(countries[r]))] for r, u in zip(region, pick_c)])
    raw_intent = rng.normal(0.0, 1.0, n)
    pages = rng.poisson(np.exp(0.8 + 0.4 * raw_intent)).astype(np.float64)
    pages[source == [s[0] for s in _SOURCES].index("cold_list")] = np.nan  # never visited
    latent = rng.normal(0.0, LATENT_SD, n)
    fit = (
        INTERCEPT
        + _col(_SOURCES, 2).astype(np.float64)[source]
        + _col(_SENIORITY, 2).astype(np.float64)[seniority]
        + np.where(function < 0, 0.0, _col(_FUNCTIONS, 2).astype(np.float64)[function])
        + comp["fit"][company]
        + 0.2 * np.log1p(np.nan_to_num(pages))
        + latent
    )
    z = (fit - fit.mean()) / (fit.std() + 1e-12)
    intent = 0.35 * z + math.sqrt(1 - 0.35**2) * raw_intent
    return {
        "created": created,
        "company": company,
        "source": source,
        "seniority": seniority,
        "function": function,
        "country": country,
        "pages": pages,
        "form_fill_seconds": np.round(np.exp(rng.normal(3.5, 0.6, n)), 1),
        "browser": _pick(rng, _BROWSERS, n),
        "fit": fit,
        "latent": latent,
        "intent": intent,
        "segment": comp["segment"][company],
    }


# --------------------------------------------------------------------------- events
def _events(rng: np.random.Generator, leads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draw engagement events; higher-intent leads have more, later, stronger events.

    Returns the event table (lead index, type index, time, sorted by time) and the decayed
    engagement of each lead at its decision time.
    """
    intent, created = leads["intent"], leads["created"]
    rate = np.exp(0.9 + 0.6 * intent + _col(_SOURCES, 3).astype(np.float64)[leads["source"]])
    lead = np.repeat(np.arange(len(intent)), rng.poisson(rate))
    m = len(lead)
    late = rng.random(m) < 0.06
    shape = np.exp(0.6 * intent[lead])  # Beta(a, 1) on [0, t_ref]: high a -> near t_ref
    offset = np.where(
        late,
        DECISION_DAYS + rng.exponential(12.0, m),
        DECISION_DAYS * rng.random(m) ** (1.0 / shape),
    )
    at = created[lead] + np.maximum(np.round(offset * DAY_S), 1).astype(np.int64).astype(
        "timedelta64[s]"
    )
    logits = _col(_EVENTS, 2).astype(np.float64)[None, :] + np.outer(
        intent[lead], _col(_EVENTS, 3).astype(np.float64)
    )
    kind = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    keep = at < EXPORT_TIME
    lead, kind, at = lead[keep], kind[keep], at[keep]
    order = np.lexsort((kind, lead, at.astype(np.int64)))
    lead, kind, at = lead[order], kind[order], at[order]
    t_ref = created + np.timedelta64(int(DECISION_DAYS * DAY_S), "s")
    age_days = (t_ref[lead] - at).astype(np.float64) / DAY_S
    weight = _col(_EVENTS, 1).astype(np.float64)[kind]
    decayed = np.where(
        age_days >= 0, weight * 2.0 ** (-np.maximum(age_days, 0) / HALF_LIFE_DAYS), 0
    )
    engagement = np.bincount(lead, weights=decayed, minlength=len(intent))
    return {"lead": lead, "kind": kind, "at": at, "engagement": engagement}


# --------------------------------------------------------------------------- reps
def _region_counts(n_reps: int) -> np.ndarray:
    """Split ``n_reps`` over regions by lead share, at least one each where possible."""
    share = _col(_REGIONS, 1).astype(np.float64)
    if n_reps < len(share):
        counts = np.zeros(len(share), dtype=np.int64)
        counts[np.argsort(-share, kind="stable")[:n_reps]] = 1
        return counts
    rest = n_reps - len(share)
    ideal = share / share.sum() * rest
    counts = np.floor(ideal).astype(np.int64)
    left = rest - counts.sum()
    counts[np.argsort(-(ideal - counts), kind="stable")[:left]] += 1
    return np.asarray(counts + 1)


def _reps(
    rng: np.random.Generator, n_reps: int, n_leads: int, days: int, rep_effect: float
) -> dict[str, np.ndarray]:
    """Draw the team: region, team, capacity, active flag, leave date, tenure, bias."""
    region = rng.permutation(np.repeat(np.arange(len(_REGIONS)), _region_counts(n_reps)))
    team = _pick(rng, _TEAMS, n_reps)
    per_day = n_leads / max(days * 5 / 7, 1.0) / n_reps
    capacity = np.maximum(2, np.ceil(per_day * rng.uniform(2.0, 4.0, n_reps))).astype(np.int64)
    inactive = np.zeros(n_reps, dtype=bool)
    inactive[rng.choice(n_reps, size=n_reps // 10, replace=False)] = True
    start = EXPORT_TIME - np.timedelta64(days * DAY_S, "s")
    left_s = np.round(rng.uniform(0.4, 0.9, n_reps) * days * DAY_S).astype(np.int64)
    left_s = left_s.astype("timedelta64[s]")
    left_at = np.where(inactive, start + left_s, EXPORT_TIME + np.timedelta64(DAY_S, "s"))
    tenure = np.round(np.clip(rng.exponential(3.0, n_reps) + 0.2, 0.2, 25.0), 1)
    bias = rep_effect * rng.normal(0.0, REP_BIAS_SD, n_reps)
    return {
        "region": region,
        "team": team,
        "capacity": capacity,
        "active": ~inactive,
        "left_at": left_at,
        "tenure": tenure,
        "bias": bias,
    }


def _affinity(rng: np.random.Generator, n_reps: int, rep_effect: float) -> np.ndarray:
    """Plant rep x segment effects: +1 in 1-2 segments, -1 in 1-2, small noise, centred.

    Every segment is some rep's strength where there are enough reps (round robin over a
    random permutation). The result is double-centred (zero row and column means) and
    scaled by ``rep_effect``. With one rep the centring leaves zeros, and with two reps
    one is the mirror of the other: a rep x segment interaction needs several reps.
    """
    s = len(SEGMENTS)
    a = rng.normal(0.0, 0.2, (n_reps, s))
    first = rng.permutation(s)
    for r in range(n_reps):
        others = rng.permutation([k for k in range(s) if k != first[r % s]])
        n_strong, n_weak = rng.integers(1, 3, size=2)
        strong = [int(first[r % s]), *others[: n_strong - 1].tolist()]
        a[r, strong] = 1.0
        a[r, others[n_strong - 1 : n_strong - 1 + n_weak]] = -1.0
    a = a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()
    return np.asarray(rep_effect * a)


def _assign(
    rng: np.random.Generator,
    leads: dict[str, np.ndarray],
    comp: dict[str, np.ndarray],
    reps: dict[str, np.ndarray],
    chunk: int = 8192,
) -> np.ndarray:
    """Historical assignment: weighted random among same-region reps employed at the time.

    Reps whose team matches the company size band weigh 2, others 1. Where no rep of the
    region is employed, any employed rep may take the lead; where none at all, any rep.
    """
    n = len(leads["created"])
    region = comp["region"][leads["company"]]
    band = leads["segment"] % len(_BANDS)
    out = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        employed = leads["created"][sl, None] < reps["left_at"][None, :]
        w = (region[sl, None] == reps["region"][None, :]) & employed
        w = np.where(w.any(axis=1, keepdims=True), w, employed)
        w = np.where(w.any(axis=1, keepdims=True), w, True).astype(np.float64)
        w *= np.where(band[sl, None] == reps["team"][None, :], 2.0, 1.0)
        cum = np.cumsum(w, axis=1)
        out[sl] = np.minimum((cum < (u[sl] * cum[:, -1])[:, None]).sum(axis=1), w.shape[1] - 1)
    return out


# --------------------------------------------------------------------------- outcomes
def _outcomes(
    rng: np.random.Generator,
    leads: dict[str, np.ndarray],
    comp: dict[str, np.ndarray],
    reps: dict[str, np.ndarray],
    affinity: np.ndarray,
    rep: np.ndarray,
    base: np.ndarray,
) -> dict[str, np.ndarray]:
    """Decide each worked lead's outcome with its assigned rep, at decision time.

    About 3 % of leads are never worked (no row); about 1 % of rows lose their rep id. A
    row whose close would fall after the export is ``open``.
    """
    n = len(base)
    worked = rng.random(n) >= 0.03
    p = _sigmoid(base + reps["bias"][rep] + affinity[rep, leads["segment"]])
    won = rng.random(n) < p
    created = leads["created"]
    lag_s = np.round(np.exp(rng.normal(8.0, 1.5, n))).astype(np.int64)
    assigned = created + lag_s.astype("timedelta64[s]")
    assigned = np.minimum(assigned, EXPORT_TIME - np.timedelta64(1, "s"))
    delay_days = np.where(won, rng.exponential(8.0, n), rng.uniform(-10.0, 5.0, n))
    close_s = np.round((DECISION_DAYS + delay_days) * DAY_S).astype(np.int64)
    closed = created + close_s.astype("timedelta64[s]")
    closed = np.maximum(closed, assigned + np.timedelta64(3600, "s"))
    is_open = closed >= EXPORT_TIME
    employees = comp["employees"][leads["company"]].astype(np.float64)
    value = np.round(
        np.exp(np.log(8000.0) + 0.35 * np.log(employees / 100.0) + rng.normal(0.0, 0.6, n)), 2
    )
    no_rep = rng.random(n) < 0.01
    return {
        "worked": worked,
        "won": won,
        "open": is_open,
        "assigned": assigned,
        "closed": closed,
        "value": value,
        "no_rep": no_rep,
        "p": p,
    }


# --------------------------------------------------------------------------- writing
def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """Return ids ``prefix + zero-padded 1..n`` (wider where n needs more digits)."""
    w = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{w}d}" for i in range(1, n + 1)], dtype=object)


def _fmt(x: np.ndarray, spec: str = "%.10g") -> np.ndarray:
    """Format numbers as strings, NaN as an empty cell."""
    x = np.asarray(x, dtype=np.float64)
    out = np.char.mod(spec, np.nan_to_num(x)).astype(object)
    out[np.isnan(x)] = ""
    return out


def _labels(table: Sequence[tuple[Any, ...]], idx: np.ndarray) -> np.ndarray:
    """Map catalogue indices to names, -1 to an empty cell."""
    names = np.array([row[0] for row in table] + [""], dtype=object)
    return names[np.where(idx < 0, len(table), idx)]


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write string columns as a UTF-8 CSV with a header and ``\\n`` line ends."""
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def _firmographics(comp: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Return the firmographic columns of companies ``rows``."""
    return {
        "industry": _labels(_INDUSTRIES, comp["industry"][rows]),
        "employees": _fmt(comp["employees"][rows], "%d"),
        "annual_revenue": _fmt(comp["revenue"][rows], "%.0f"),
        "region": _labels(_REGIONS, comp["region"][rows]),
        "tech_stack": _labels(_TECH, comp["tech"][rows]),
    }


def _lead_columns(
    leads: dict[str, np.ndarray],
    comp: dict[str, np.ndarray],
    lead_ids: np.ndarray,
    account_ids: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Return the columns of ``leads.csv`` (firmographics inline when no accounts)."""
    cols: dict[str, np.ndarray] = {Columns.LEAD: lead_ids, Columns.CREATED: _iso(leads["created"])}
    if account_ids is not None:
        cols[Columns.ACCOUNT] = account_ids[leads["company"]]
    cols[Columns.SOURCE] = _labels(_SOURCES, leads["source"])
    cols["seniority"] = _labels(_SENIORITY, leads["seniority"])
    cols["job_function"] = _labels(_FUNCTIONS, leads["function"])
    cols["country"] = leads["country"].astype(object)
    cols["pages_first_visit"] = _fmt(leads["pages"], "%.0f")
    cols["form_fill_seconds"] = _fmt(leads["form_fill_seconds"], "%.1f")
    cols["browser"] = _labels(_BROWSERS, leads["browser"])
    if account_ids is None:
        cols.update(_firmographics(comp, leads["company"]))
    return cols


def _write_dataset(folder: Path, w: dict[str, Any], with_accounts: bool) -> dict[str, int]:
    """Write the contract files of the simulated world ``w``; return row counts."""
    leads, comp, reps, ev, oc = w["leads"], w["comp"], w["reps"], w["events"], w["outcomes"]
    lead_ids, rep_ids = w["lead_ids"], w["rep_ids"]
    account_ids = _ids("A", len(comp["industry"]), 5) if with_accounts else None
    _write_csv(folder / Files.LEADS, _lead_columns(leads, comp, lead_ids, account_ids))
    if account_ids is not None:
        rows = np.arange(len(account_ids))
        won_at = np.zeros(len(account_ids), dtype=bool)
        visible = oc["worked"] & oc["won"] & ~oc["open"]
        won_at[leads["company"][visible]] = True
        cust = np.where(comp["prior_customer"] | won_at, "true", "false").astype(object)
        _write_csv(
            folder / Files.ACCOUNTS,
            {Columns.ACCOUNT: account_ids, Columns.IS_CUSTOMER: cust, **_firmographics(comp, rows)},
        )
    _write_csv(
        folder / Files.REPS,
        {
            Columns.REP: rep_ids,
            "team": _labels(_TEAMS, reps["team"]),
            "region": _labels(_REGIONS, reps["region"]),
            Columns.CAPACITY: _fmt(reps["capacity"], "%d"),
            Columns.ACTIVE: np.where(reps["active"], "true", "false").astype(object),
            "tenure_years": _fmt(reps["tenure"], "%.1f"),
        },
    )
    weight = _col(_EVENTS, 1).astype(np.float64)[ev["kind"]]
    _write_csv(
        folder / Files.EVENTS,
        {
            Columns.LEAD: lead_ids[ev["lead"]],
            Columns.EVENT: _labels(_EVENTS, ev["kind"]),
            Columns.AT: _iso(ev["at"]),
            Columns.WEIGHT: _fmt(np.where(ev["kind"] == 0, np.nan, weight)),
        },
    )
    rows = np.flatnonzero(oc["worked"])
    status = np.where(oc["open"], Outcome.OPEN, np.where(oc["won"], Outcome.WON, Outcome.LOST))
    closed = np.where(oc["open"], "", _iso(oc["closed"])).astype(object)
    value = _fmt(np.where(oc["won"] & ~oc["open"], oc["value"], np.nan), "%.2f")
    _write_csv(
        folder / Files.OUTCOMES,
        {
            Columns.LEAD: lead_ids[rows],
            Columns.REP: np.where(oc["no_rep"], "", rep_ids[w["rep"]])[rows],
            Columns.OUTCOME: status[rows].astype(object),
            Columns.ASSIGNED: _iso(oc["assigned"])[rows],
            Columns.CLOSED: closed[rows],
            Columns.VALUE: value[rows],
        },
    )
    closed_rows = oc["worked"] & ~oc["open"]
    n_won = int((closed_rows & oc["won"]).sum())
    return {
        "accounts": 0 if account_ids is None else len(account_ids),
        "events": len(ev["lead"]),
        "won": n_won,
        "closed": int(closed_rows.sum()),
    }


def _write_truth(folder: Path, w: dict[str, Any], params: dict[str, Any]) -> None:
    """Write ``truth/``: per-lead logits, rep biases, the affinity table and the formula."""
    t = folder / TRUTH_DIR
    t.mkdir()
    leads, ev = w["leads"], w["events"]
    seg_names = np.array(SEGMENTS, dtype=object)
    _write_csv(
        t / "leads.csv",
        {
            Columns.LEAD: w["lead_ids"],
            "segment": seg_names[leads["segment"]],
            "fit_logit": _fmt(leads["fit"]),
            "latent": _fmt(leads["latent"]),
            "engagement": _fmt(ev["engagement"]),
            "base_logit": _fmt(w["base"]),
        },
    )
    _write_csv(
        t / "reps.csv",
        {
            Columns.REP: w["rep_ids"],
            "rep_bias": _fmt(w["reps"]["bias"]),
            "left_at": _iso(w["reps"]["left_at"]),
        },
    )
    n_reps, n_seg = w["affinity"].shape
    _write_csv(
        t / "affinity.csv",
        {
            Columns.REP: np.repeat(w["rep_ids"], n_seg),
            "segment": np.tile(seg_names, n_reps),
            "effect": _fmt(w["affinity"].ravel()),
        },
    )
    text = json.dumps(params, indent=2, sort_keys=True) + "\n"
    (t / "truth.json").write_text(text, encoding="utf-8")


def _params(seed: int, rep_effect: float, days: int, with_accounts: bool) -> dict[str, Any]:
    """Return the parameters and formula recorded in ``truth/truth.json``."""
    return {
        "formula": "p = sigmoid(base_logit + rep_bias[rep] + affinity[rep, segment])",
        "base_logit": "fit_logit + engagement_coef * log1p(engagement)",
        "engagement": "sum of event weight * 2 ** (-(t_ref - at) / half_life) over at <= t_ref",
        "t_ref": "created_at + decision_days",
        "segment": "industry_group/size_band; size bands: employees < 100, 100-999, >= 1000",
        "industry_groups": {row[0]: row[1] for row in _INDUSTRIES},
        "segments": list(SEGMENTS),
        "event_weights": {row[0]: row[1] for row in _EVENTS},
        "noise_columns": ["form_fill_seconds", "browser"],
        "seed": seed,
        "rep_effect": rep_effect,
        "days": days,
        "with_accounts": with_accounts,
        "half_life_days": HALF_LIFE_DAYS,
        "decision_days": DECISION_DAYS,
        "engagement_coef": ENGAGEMENT_COEF,
        "intercept": INTERCEPT,
        "latent_sd": LATENT_SD,
        "rep_bias_sd": REP_BIAS_SD * rep_effect,
        "export_time": str(EXPORT_TIME),
    }


# --------------------------------------------------------------------------- public
def _check_args(n_leads: int, n_reps: int, seed: int, rep_effect: float, days: int) -> None:
    """Raise ValueError on arguments that cannot make a dataset."""
    if n_leads < 1:
        raise ValueError(f"n_leads must be >= 1, got {n_leads}")
    if n_reps < 1:
        raise ValueError(f"n_reps must be >= 1, got {n_reps}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not math.isfinite(rep_effect) or rep_effect < 0:
        raise ValueError(f"rep_effect must be a finite number >= 0, got {rep_effect}")


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file or a non-empty folder."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; choose a new or empty folder")


def simulate(
    out: Path | str,
    *,
    n_leads: int = 5000,
    n_reps: int = 20,
    seed: int = 0,
    rep_effect: float = 1.0,
    days: int = 365,
    with_accounts: bool = True,
    progress: bool = False,
) -> SimulationSummary:
    """Write a synthetic dataset folder with planted per-rep affinities and its truth.

    The folder holds ``leads.csv``, ``reps.csv``, ``outcomes.csv``, ``events.csv``,
    ``accounts.csv`` (unless ``with_accounts`` is False, when firmographics are lead
    columns) and ``truth/``. It is written to a temporary sibling folder first and renamed
    into place, so a failure leaves nothing half-written. The same arguments give the same
    bytes. See the module docstring for the model.

    Args:
        out: folder to create (an existing empty folder is accepted).
        n_leads: number of leads.
        n_reps: number of reps (about 10 % inactive, i.e. left the team).
        seed: random seed (>= 0).
        rep_effect: scale of the rep x segment affinity and of the rep biases, in logits
            (1.0: about +-1 logit; 0: reps do not differ).
        days: length of the history in days, ending 2026-10-31.
        with_accounts: write ``accounts.csv`` (else firmographics go onto the leads).
        progress: show a progress bar on stderr.

    Returns:
        A :class:`SimulationSummary`.

    Raises:
        ValueError: bad arguments, or ``out`` exists and is not an empty folder.
    """
    _check_args(n_leads, n_reps, seed, rep_effect, days)
    out = Path(out)
    _check_out(out)
    with tqdm(total=8, desc="simulate", file=sys.stderr, disable=not progress) as bar:

        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        w = _build(n_leads, n_reps, seed, float(rep_effect), days, step)
        params = _params(seed, float(rep_effect), days, with_accounts)
        counts = _write_atomic(out, w, params, with_accounts, step)
    return SimulationSummary(
        out=out,
        n_leads=n_leads,
        n_reps=n_reps,
        n_accounts=counts["accounts"],
        n_events=counts["events"],
        conversion_rate=counts["won"] / max(counts["closed"], 1),
    )


def _build(
    n_leads: int,
    n_reps: int,
    seed: int,
    rep_effect: float,
    days: int,
    step: Callable[[str], None],
) -> dict[str, Any]:
    """Draw the whole simulated world; each part from its own child stream of ``seed``."""
    seqs = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rng = {k: np.random.default_rng(s) for k, s in zip(_STREAMS, seqs, strict=True)}
    w: dict[str, Any] = {"comp": _companies(rng["accounts"], max(1, math.ceil(n_leads / 2.5)))}
    step("companies")
    w["leads"] = _leads(rng["leads"], n_leads, days, w["comp"])
    step("leads")
    w["events"] = _events(rng["events"], w["leads"])
    w["base"] = w["leads"]["fit"] + ENGAGEMENT_COEF * np.log1p(w["events"]["engagement"])
    step("events")
    w["reps"] = _reps(rng["reps"], n_reps, n_leads, days, rep_effect)
    w["affinity"] = _affinity(rng["affinity"], n_reps, rep_effect)
    step("reps")
    w["rep"] = _assign(rng["assign"], w["leads"], w["comp"], w["reps"])
    step("assignment")
    w["outcomes"] = _outcomes(
        rng["outcomes"], w["leads"], w["comp"], w["reps"], w["affinity"], w["rep"], w["base"]
    )
    w["lead_ids"], w["rep_ids"] = _ids("L", n_leads, 6), _ids("R", n_reps, 3)
    step("outcomes")
    return w


def _write_atomic(
    out: Path,
    w: dict[str, Any],
    params: dict[str, Any],
    with_accounts: bool,
    step: Callable[[str], None],
) -> dict[str, int]:
    """Write everything into a hidden sibling folder, then rename it to ``out``.

    On any failure the sibling is removed and ``out`` is left as it was.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        counts = _write_dataset(tmp, w, with_accounts)
        step("dataset files")
        _write_truth(tmp, w, params)
        step("truth")
        _check_out(out)
        if out.is_dir():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def load_truth(out: Path | str) -> Truth:
    """Read the ground truth that :func:`simulate` wrote into ``out/truth``.

    Raises:
        FileNotFoundError: ``out`` has no ``truth/`` folder (not a simulated dataset).
    """
    t = Path(out) / TRUTH_DIR
    if not (t / "truth.json").is_file():
        raise FileNotFoundError(f"{t / 'truth.json'} not found: not a simulated dataset")
    params = json.loads((t / "truth.json").read_text(encoding="utf-8"))
    segments = [str(s) for s in params["segments"]]
    leads = pd.read_csv(t / "leads.csv", dtype={Columns.LEAD: str, "segment": str})
    reps = pd.read_csv(t / "reps.csv", dtype={Columns.REP: str})
    aff = pd.read_csv(t / "affinity.csv", dtype={Columns.REP: str, "segment": str})
    rep_ids = reps[Columns.REP].to_numpy(dtype=object)
    matrix = aff.pivot(index=Columns.REP, columns="segment", values="effect")
    matrix = matrix.reindex(index=rep_ids, columns=segments)
    seg_index = {s: i for i, s in enumerate(segments)}
    return Truth(
        lead_ids=leads[Columns.LEAD].to_numpy(dtype=object),
        rep_ids=rep_ids,
        segments=segments,
        lead_segment=leads["segment"].map(seg_index).to_numpy(dtype=np.int64),
        base_logit=leads["base_logit"].to_numpy(dtype=np.float64),
        fit_logit=leads["fit_logit"].to_numpy(dtype=np.float64),
        affinity=matrix.to_numpy(dtype=np.float64),
        rep_bias=reps["rep_bias"].to_numpy(dtype=np.float64),
        params=params,
        latent=leads["latent"].to_numpy(dtype=np.float64) if "latent" in leads else None,
    )
