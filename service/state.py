"""What the app holds while it runs: settings, engine, metrics, key cache and the model.

One :class:`Runtime` lives in the lifespan state. The model is a :class:`Loaded` that is
replaced whole on reload (a plain attribute assignment), never changed in place, so a
request that picked up the old one finishes with it.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from recommender.columns import Columns
from recommender.pipeline import ModelBundle
from service import schemas
from service.batching import Coalescer
from service.config import Settings
from service.metrics import Metrics


def settle_heap() -> None:
    """Collect garbage, then exempt what survives from later collections.

    The app and its model live as long as the process; the collector's full passes over
    them (a model holds many objects) were the tail of ``/v1/route`` under load: p99 121
    -> about 40 ms, and 10-20 % more requests a second (``bench/bench_service.py``,
    2026-11-23, on a model whose tied reps then sent every lead to one rep).
    Called after start and after a reload (unfreezing first, so that an old model's
    reference cycles are still collected).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Loaded:
    """A loaded model folder and what the service derives from it once.

    ``reps_cache`` holds the reps table as the store last had it, keyed by the store's
    reps stamp; it lives and dies with this model, so a reloaded model never sees
    another model's reps.
    """

    bundle: ModelBundle
    version: str
    rep_ids: frozenset[str]
    reps_cache: dict[str, tuple[Any, pd.DataFrame]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, bundle: ModelBundle) -> Loaded:
        """Wrap ``bundle`` (reads its version and rep ids)."""
        reps: pd.DataFrame = bundle.reps
        return cls(bundle, str(bundle.version), frozenset(reps[Columns.REP].astype(str)))


class KeyCache:
    """Verified keys (by hash) with their role, trusted for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._roles: dict[str, tuple[str, float]] = {}

    def get(self, key_hash: str) -> str | None:
        """The cached role of ``key_hash``, or ``None`` when absent or expired."""
        hit = self._roles.get(key_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key_hash: str, role: str) -> None:
        """Remember that ``key_hash`` has ``role``."""
        if len(self._roles) > 10_000:
            self._roles.clear()
        self._roles[key_hash] = (role, time.monotonic() + self.ttl)


@dataclass
class Runtime:
    """The running service's state (one per app)."""

    settings: Settings
    engine: Engine
    metrics: Metrics = field(default_factory=Metrics)
    keys: KeyCache = field(default_factory=lambda: KeyCache(30.0))
    model: Loaded | None = None
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    route_batches: Coalescer[tuple[Loaded, schemas.LeadsRequest], schemas.RouteResponse] | None = (
        None
    )
    """Concurrent ``/v1/route`` requests, routed together (set by the app at start)."""
