"""Helpers of the service tests (imported by conftest and the test modules)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


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
