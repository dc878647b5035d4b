"""The request batcher: concurrent calls share batches, and one caller's error stays its own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from service.batching import Coalescer


class Recorder:
    """A batch function that sleeps (so callers pile up) and records every batch."""

    def __init__(self, seconds: float = 0.05, fail: set[str] | None = None) -> None:
        self.seconds = seconds
        self.fail = fail or set()
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()

    def __call__(self, items: list[str]) -> Sequence[str | Exception]:
        self.batches.append(list(items))
        self.threads.add(threading.get_ident())
        time.sleep(self.seconds)
        return [ValueError(f"bad {i}") if i in self.fail else i.upper() for i in items]


async def _submit_all(c: Coalescer[str, str], calls: list[dict[str, Any]]) -> list[Any]:
    async def one(call: dict[str, Any]) -> Any:
        try:
            return await c.submit(call["item"], keys=call.get("keys", ()), group=call.get("g"))
        except Exception as exc:
            return exc

    tasks = []
    for call in calls:
        tasks.append(asyncio.create_task(one(call)))
        await asyncio.sleep(0.001)  # arrive one after another, as requests do
    return await asyncio.gather(*tasks)


def test_concurrent_calls_share_batches_and_get_their_own_answers() -> None:
    run = Recorder()
    c: Coalescer[str, str] = Coalescer(run)
    out = asyncio.run(_submit_all(c, [{"item": f"x{i}"} for i in range(12)]))
    assert out == [f"X{i}" for i in range(12)]
    assert sorted(i for b in run.batches for i in b) == sorted(f"x{i}" for i in range(12))
    assert len(run.batches) < 12  # callers that came during a batch went together
    assert run.batches[0] == ["x0"]  # the first caller does not wait for company
    assert (c.batches, c.items) == (len(run.batches), 12)
    assert threading.get_ident() not in run.threads  # the work runs off the event loop


def test_a_lone_call_runs_at_once() -> None:
    run = Recorder(seconds=0.0)
    c: Coalescer[str, str] = Coalescer(run)
    assert asyncio.run(c.submit("a")) == "A"
    assert run.batches == [["a"]]


def test_colliding_keys_and_other_groups_never_share_a_batch() -> None:
    run = Recorder()
    c: Coalescer[str, str] = Coalescer(run)
    calls = [
        {"item": "first", "keys": ["L0"]},
        {"item": "a", "keys": ["L1", "L2"], "g": None},
        {"item": "b", "keys": ["L2"]},  # collides with a
        {"item": "c", "keys": ["L3"], "g": "other"},  # another model
        {"item": "d", "keys": ["L4"]},
    ]
    out = asyncio.run(_submit_all(c, calls))
    assert out == ["FIRST", "A", "B", "C", "D"]
    where = {i: k for k, b in enumerate(run.batches) for i in b}
    assert where["a"] != where["b"]
    assert where["c"] not in {where["a"], where["b"], where["d"]}
    assert where["a"] == where["d"]  # the rest do share


def test_max_items_bounds_a_batch() -> None:
    run = Recorder()
    c: Coalescer[str, str] = Coalescer(run, max_items=3)
    asyncio.run(_submit_all(c, [{"item": f"x{i}"} for i in range(10)]))
    assert max(len(b) for b in run.batches) <= 3


def test_one_callers_error_is_raised_to_that_caller_only() -> None:
    run = Recorder(fail={"x3"})
    c: Coalescer[str, str] = Coalescer(run)
    out = asyncio.run(_submit_all(c, [{"item": f"x{i}"} for i in range(6)]))
    assert isinstance(out[3], ValueError) and str(out[3]) == "bad x3"
    assert [o for k, o in enumerate(out) if k != 3] == ["X0", "X1", "X2", "X4", "X5"]


def test_a_failing_batch_reaches_every_caller_and_the_next_batch_still_runs() -> None:
    calls = {"n": 0}

    def run(items: list[str]) -> list[str]:
        calls["n"] += 1
        time.sleep(0.03)
        if calls["n"] == 2:
            raise RuntimeError("database down")
        return [i.upper() for i in items]

    c: Coalescer[str, str] = Coalescer(run)

    async def go() -> list[Any]:
        first = await _submit_all(c, [{"item": f"x{i}"} for i in range(5)])
        return [*first, await c.submit("later")]

    out = asyncio.run(go())
    assert out[0] == "X0"
    assert any(isinstance(o, RuntimeError) for o in out[1:5])
    assert out[-1] == "LATER"


def test_a_wrong_number_of_answers_is_an_error_not_a_hang() -> None:
    c: Coalescer[str, str] = Coalescer(lambda items: [])
    with pytest.raises(RuntimeError, match="answered 0 of 1"):
        asyncio.run(c.submit("a"))


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_items"):
        Coalescer(lambda items: items, max_items=0)


def _staggered(linger: float) -> list[list[str]]:
    """Batches seen when a, b, c come at once, d during their batch, e just after it."""
    run = Recorder(seconds=0.1)
    c: Coalescer[str, str] = Coalescer(run, linger=linger)

    async def go() -> None:
        first = [asyncio.create_task(c.submit(x)) for x in "abc"]
        await asyncio.sleep(0.02)
        d = asyncio.create_task(c.submit("d"))  # while a, b, c run
        await asyncio.sleep(0.13)
        e = asyncio.create_task(c.submit("e"))  # after they finished, during any linger
        await asyncio.gather(*first, d, e)

    asyncio.run(go())
    return run.batches


def test_linger_gathers_the_requests_still_arriving_under_load() -> None:
    assert _staggered(0.0) == [["a", "b", "c"], ["d"], ["e"]]
    assert _staggered(0.2) == [["a", "b", "c"], ["d", "e"]]


def test_linger_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="linger"):
        Coalescer(lambda items: items, linger=-1.0)


def test_an_item_left_for_later_keeps_its_turn_on_its_keys() -> None:
    """A(L5), B(L5, L1), C(L1): C must not overtake B on L1."""
    run = Recorder()
    c: Coalescer[str, str] = Coalescer(run)
    calls = [
        {"item": "first", "keys": ["L0"]},
        {"item": "A", "keys": ["L5"]},
        {"item": "B", "keys": ["L5", "L1"]},
        {"item": "C", "keys": ["L1"]},
    ]
    asyncio.run(_submit_all(c, calls))
    where = {i: k for k, b in enumerate(run.batches) for i in b}
    assert where["A"] < where["B"] < where["C"]


def test_callers_of_a_batch_cancelled_midway_do_not_hang() -> None:
    run = Recorder(seconds=0.3)
    c: Coalescer[str, str] = Coalescer(run)

    async def go() -> Any:
        caller = asyncio.create_task(c.submit("a"))
        await asyncio.sleep(0.05)  # the batch is running in its thread
        assert c._task is not None
        c._task.cancel()
        return await asyncio.wait_for(caller, timeout=2.0)

    with pytest.raises(RuntimeError, match="batching stopped"):
        asyncio.run(go())
