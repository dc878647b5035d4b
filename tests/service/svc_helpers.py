"""Helpers of the service tests (imported by conftest and the test modules)."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

_lead_ids = itertools.count()


def new_lead(prefix: str, day: str, **extra: Any) -> dict[str, Any]:
    """A new lead created on ``day`` with a unique id starting with ``prefix``."""
    return {
        "lead_id": f"{prefix}{next(_lead_ids):06d}",
        "created_at": f"{day}T10:00:00",
        "source": "partner",
        "country": "DE",
        "pages_first_visit": 2,
        **extra,
    }


@contextmanager
def running(app: Any, port: int, **config: Any) -> Iterator[None]:
    """uvicorn serving ``app`` on loopback ``port`` in a thread, until the block ends.

    Raises:
        RuntimeError: the server did not start within 60 s.
    """
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server started with ``Popen``: terminate, then kill if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_serving(url: str, proc: subprocess.Popen[Any], log: Path, seconds: float = 120) -> None:
    """Return once ``url/healthz`` answers 200; fail the test (with ``log``, the process'
    output) if the process exits first, or stop it and fail if it never gets there."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(proc)
    pytest.fail(f"server did not start serving within {seconds:g} s")


def clean_env(**values: str) -> dict[str, str]:
    """This process' environment without any ``LEADRANK_*``, plus ``LEADRANK_<K>=V``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("LEADRANK_")}
    return {**kept, **{f"LEADRANK_{k}": v for k, v in values.items()}}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its URL, database, model folder and one key per role."""

    url: str
    db_url: str
    model_dir: Path
    keys: dict[str, str]
    reps: list[str]

    def client(self, role: str | None = None, **kw: Any) -> httpx.Client:
        """An httpx client for ``role`` (no Authorization header when ``None``)."""
        headers = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)
