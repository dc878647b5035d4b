"""``leadrank serve`` and ``leadrank keys create`` read the ``LEADRANK_*`` settings.

The README and ``serve --help`` say the model folder may come from
``LEADRANK_MODEL_PATH`` and the store from ``LEADRANK_DATABASE_URL``; a deployment that
sets only the environment must get the model and the store it names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from svc_helpers import free_port


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def _env(**values: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEADRANK_")}
    return {**clean, **{f"LEADRANK_{k}": v for k, v in values.items()}}


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(_cli("serve"), env={**env, "LEADRANK_PORT": str(port)}, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("serve did not start")


def test_serve_and_keys_take_model_and_store_from_the_environment(
    model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "env.db"
    env = _env(MODEL_PATH=str(model_dir), DATABASE_URL=f"sqlite:///{db}")
    made = subprocess.run(
        _cli("keys", "create", "--role", "admin"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert db.exists()  # the key went to the store the environment names
    key = made.stdout.strip().splitlines()[-1]
    proc, url = _serve(env, tmp_path / "serve.log")
    try:
        ready = httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {key}"})
        assert ready.status_code == 200, ready.text  # the key is known, the model loaded
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "without a model" not in (tmp_path / "serve.log").read_text()


def test_serve_without_a_model_says_so(tmp_path: Path) -> None:
    env = _env(DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}")
    log = tmp_path / "serve.log"
    proc, url = _serve(env, log)
    try:
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "serving without a model" in log.read_text()
