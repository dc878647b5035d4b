"""Run concurrent requests of one kind together: dynamic batching on the event loop.

Scoring and routing one lead costs nearly as much as scoring a few dozen: the fixed cost
is the table building around the model, not the arithmetic. A :class:`Coalescer` runs one
batch at a time in a worker thread; requests that arrive while it runs wait on the event
loop (no thread held) and go together into the next batch. Under light load a request
runs alone and at once, so batching adds no delay; under heavy load batches grow and the
fixed cost is paid once per batch.

Requests whose keys (lead ids) collide with a request already in the batch, or that hold
another model, wait for the next batch, so one batch never routes a lead twice and never
mixes models across a reload. The batch function answers each request on its own: one
request's bad value fails that request only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi.concurrency import run_in_threadpool

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    keys: frozenset[Hashable]
    group: object
    future: asyncio.Future[R] = field(repr=False)


class Coalescer(Generic[T, R]):
    """Gather concurrent calls into batches for ``run`` (one batch in flight at a time).

    Args:
        run: called in a worker thread with the items of one batch (all of one group);
            returns one result per item, in order, where a result that is an
            ``Exception`` is raised to that item's caller only.
        max_items: most items in one batch (a lone larger item still runs, alone).
        size: an item's size counted against ``max_items`` (default 1 each).
        linger: seconds to wait before the next batch while under load (the last batch
            held several items and more callers wait): the event loop then reads the
            requests already on their way, so batches grow and the fixed cost of a
            batch is paid less often. A caller that finds no batch running never waits.
    """

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R | Exception]],
        *,
        max_items: int = 256,
        size: Callable[[T], int] = lambda _: 1,
        linger: float = 0.0,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        if not linger >= 0:
            raise ValueError("linger must be >= 0 seconds")
        self.linger = linger
        self.run = run
        self.max_items = max_items
        self.size = size
        self._waiting: list[_Waiting[T, R]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches run so far (for metrics)."""
        self.items = 0
        """Items run in those batches."""

    async def submit(self, item: T, *, keys: Sequence[Hashable] = (), group: object = None) -> R:
        """Run ``item`` in the next batch of its ``group`` and return its result.

        Args:
            keys: identities that must not appear twice in one batch (lead ids).
            group: items of different groups (identity) never share a batch.

        Raises:
            Exception: whatever ``run`` answered for this item, or raised for the batch.
        """
        loop = asyncio.get_running_loop()
        waiting: _Waiting[T, R] = _Waiting(item, frozenset(keys), group, loop.create_future())
        self._waiting.append(waiting)
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())  # held: tasks are weakly kept
        return await waiting.future

    def _take(self) -> list[_Waiting[T, R]]:
        """Remove and return the next batch: the oldest item plus what fits beside it."""
        first = self._waiting[0]
        batch, keys, total, rest = [first], set(first.keys), self.size(first.item), []
        blocked: set[Hashable] = set()  # keys of items left for later keep their turn
        for w in self._waiting[1:]:
            fits = total + self.size(w.item) <= self.max_items
            free = keys.isdisjoint(w.keys) and blocked.isdisjoint(w.keys)
            if fits and free and w.group is first.group:
                batch.append(w)
                keys |= w.keys
                total += self.size(w.item)
            else:
                rest.append(w)
                blocked |= w.keys
        self._waiting = rest
        return batch

    async def _drain(self) -> None:
        """Run batches until nobody waits."""
        try:
            last = 0
            while self._waiting:
                if last > 1 and self.linger > 0:
                    await asyncio.sleep(self.linger)
                batch = self._take()
                live = [w for w in batch if not w.future.cancelled()]
                if not live:
                    continue
                self.batches += 1
                self.items += len(live)
                last = len(live)
                try:
                    results: Sequence[Any] = await run_in_threadpool(
                        self.run, [w.item for w in live]
                    )
                    if len(results) != len(live):
                        raise RuntimeError(
                            f"batch function answered {len(results)} of {len(live)} items"
                        )
                except Exception as exc:  # the whole batch failed: tell every caller
                    results = [exc] * len(live)
                except BaseException:  # cancelled mid-batch (shutdown): nobody may hang
                    for w in live:
                        if not w.future.done():
                            w.future.set_exception(RuntimeError("request batching stopped"))
                    raise
                for w, result in zip(live, results, strict=True):
                    if w.future.cancelled():
                        continue
                    if isinstance(result, Exception):
                        w.future.set_exception(result)
                    else:
                        w.future.set_result(result)
        finally:
            self._draining = False
            for w in self._waiting:  # only if cancelled mid-drain: never leave callers hanging
                if not w.future.done():
                    w.future.set_exception(RuntimeError("request batching stopped"))
            self._waiting = []


__all__ = ["Coalescer"]
