"""Training settings of a model bundle, stored in its folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

AFFINITY_CROSSES = ("none", "firmographic", "all")
"""Values of :attr:`TrainConfig.affinity_crosses`."""
AFFINITY_FEATURES = ("all", "firmographic")
"""Values of :attr:`TrainConfig.affinity_features`."""
AFFINITY_BINS = ("quantile", "magnitude")
"""Values of :attr:`TrainConfig.affinity_bins` (``recommender.features.BINS``)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`recommender.pipeline.train`.

    Attributes:
        seed: seed of every random choice (fits, splits, exploration defaults).
        half_life_days: engagement decay: an event this many days old counts half.
        horizon_days: a training lead's engagement is taken as of ``created_at`` plus this
            many days (never after its outcome closed); new leads are scored as of the same
            point, or now if sooner.
        affinity_engine: ``lowrank`` (default: per-rep effects over the lead features
            through a trace-norm penalised map that all reps share, over the global score;
            see ``models/affinity_lowrank.py``), ``lightfm`` (the default before
            2026-11-23), ``implicit`` or ``pair`` (penalised per-(rep, feature value)
            logistic model; see ``models/affinity_pair.py``). The defaults of this engine,
            ``affinity_features`` and ``affinity_bins`` were chosen together, on
            ``bench/routing_capture.py`` and ``notebooks/routing.ipynb`` (the README's
            measured table has the figures): ``lowrank`` routes better from 25,000 to
            500,000 leads on 50 reps and at 60,000 on 200 reps; on 200 reps with 500,000
            leads LightFM on the same columns does better (share of the oracle's uplift
            0.81 against 0.78; per-(rep, segment) Spearman 0.88 against 0.78,
            ``bench/affinity_quality.py``), so large teams with long histories should
            compare the two with ``leadrank evaluate``.
        affinity_crosses: crossed indicators in the affinity model's lead representation,
            so that a model summing per-feature factors can express a rep's affinity to a
            *pair* of values (large software firms but not small ones): ``none``,
            ``firmographic`` (default: pairs of account columns only, industry, size,
            region... as joined from ``accounts.csv``; no crosses without accounts) or
            ``all`` (pairs of every low-cardinality column). Measured on simulated teams
            (``bench/affinity_quality.py``, ``bench/routing_capture.py``): firmographic
            crosses recover more of the planted per-rep affinity from 100,000 leads on
            (Spearman 0.733 -> 0.836 at 500,000) and capture more of the oracle's routing
            uplift (250,000 leads, 50 reps: 0.58 -> 0.66); at 50,000 leads they are even
            (seeds +0.003, -0.046, -0.008). A model saved before this option existed
            loads as ``none``.
        affinity_features: the lead columns the affinity model reads: ``firmographic``
            (default: the account columns only: which *kind of customer* a rep converts,
            not which contact; the lead score still reads every column) or ``all``. Data
            without accounts reads all. Measured with ``bench/routing_capture.py`` (50
            reps, seed 1, share of the oracle's routing uplift, all -> firmographic):
            ``lowrank`` 0.04 -> 0.44 at 25,000 leads, 0.51 -> 0.56 at 50,000, 0.57 -> 0.62
            at 100,000; LightFM 0.22 -> 0.21, 0.37 -> 0.37, 0.50 -> 0.46.
        affinity_bins: how the affinity model cuts numeric lead columns (and so which
            size classes it crosses with industry): ``magnitude`` (default: powers of ten
            for a column spread over two orders of magnitude or more, as sales teams cut
            company size and revenue; quantiles otherwise; see
            ``recommender.features.magnitude_edges``) or ``quantile`` (five equal-count
            bins, the only way before 2026-11-23). Measured with
            ``bench/routing_capture.py`` (50 reps, 100,000 leads, seed 1, share of the
            oracle's routing uplift, quantile -> magnitude): ``lowrank`` on the account
            columns 0.62 -> 0.72, LightFM on all columns 0.50 -> 0.63. The simulator's size
            segments sit on 100 and 1,000 employees, on these cuts: with its bands moved
            to 300 and 3,000 (50 reps, 50,000 leads, one seed) magnitude bins did worse
            than quantile bins (0.447 against 0.479). A model saved
            before this option existed loads as ``quantile``.
        n_components: width of the affinity (ICP) embedding.
        n_threads: threads for model fitting and scoring. The default 1 keeps training
            bit-for-bit reproducible for a seed (LightFM's parallel SGD is not); more
            threads train faster on big data.
        embedding: lookalike space: ``contributions`` (each account's per-feature
            contributions to the fit model's log-odds: "converts like") or ``affinity``
            (the LightFM lead representation). Measured in notebooks/lookalikes.ipynb on
            simulated teams, lift@10 % over held-out converters was 1.54 for
            contributions against 1.27 for affinity, so contributions is the default.
        exact_threshold: catalogues up to this size use exact FAISS search.
        placebo: also fit the rep-permuted placebo during ``evaluate``.
    """

    seed: int = 0
    half_life_days: float = 14.0
    horizon_days: float = 14.0
    affinity_engine: str = "lowrank"
    affinity_crosses: str = "firmographic"
    affinity_features: str = "firmographic"
    affinity_bins: str = "magnitude"
    n_components: int = 16
    n_threads: int = 1
    embedding: str = "contributions"
    exact_threshold: int = 50_000
    placebo: bool = True

    def __post_init__(self) -> None:
        """Reject an unknown ``affinity_crosses``, ``affinity_features`` or ``affinity_bins``.

        Raises:
            ValueError: ``affinity_crosses`` is not one of :data:`AFFINITY_CROSSES`,
                ``affinity_features`` not one of :data:`AFFINITY_FEATURES`, or
                ``affinity_bins`` not one of :data:`AFFINITY_BINS`.
        """
        if self.affinity_crosses not in AFFINITY_CROSSES:
            raise ValueError(
                f"affinity_crosses must be one of {', '.join(AFFINITY_CROSSES)}, "
                f"not {self.affinity_crosses!r}"
            )
        if self.affinity_features not in AFFINITY_FEATURES:
            raise ValueError(
                f"affinity_features must be one of {', '.join(AFFINITY_FEATURES)}, "
                f"not {self.affinity_features!r}"
            )
        if self.affinity_bins not in AFFINITY_BINS:
            raise ValueError(
                f"affinity_bins must be one of {', '.join(AFFINITY_BINS)}, "
                f"not {self.affinity_bins!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build settings from :meth:`to_dict` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values.setdefault("affinity_crosses", "none")  # saved before crosses existed
        values.setdefault("affinity_bins", "quantile")  # saved before magnitude bins
        values.setdefault("affinity_engine", "lightfm")  # the defaults before 2026-11-23
        values.setdefault("affinity_features", "all")
        return cls(**values)
