"""``leadrank serve`` and ``leadrank keys create`` read the ``LEADRANK_*`` settings.

The README and ``serve --help`` say the model folder may come from
``LEADRANK_MODEL_PATH`` and the store from ``LEADRANK_DATABASE_URL``; a deployment that
sets only the environment must get the model and the store it names.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from svc_helpers import clean_env, free_port, stop, wait_serving


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``leadrank ARGS`` run to its end with ``env``."""
    return subprocess.run(_cli(*args), env=env, capture_output=True, text=True, timeout=120)


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(_cli("serve"), env={**env, "LEADRANK_PORT": str(port)}, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    wait_serving(url, proc, log)
    return proc, url


def test_serve_and_keys_take_model_and_store_from_the_environment(
    model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "env.db"
    env = clean_env(MODEL_PATH=str(model_dir), DATABASE_URL=f"sqlite:///{db}")
    made = _run("keys", "create", "--role", "admin", env=env)
    assert made.returncode == 0, made.stderr
    assert db.exists()  # the key went to the store the environment names
    key = made.stdout.strip().splitlines()[-1]
    proc, url = _serve(env, tmp_path / "serve.log")
    try:
        ready = httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {key}"})
        assert ready.status_code == 200, ready.text  # the key is known, the model loaded
    finally:
        stop(proc)
    assert "without a model" not in (tmp_path / "serve.log").read_text()


def test_serve_without_a_model_says_so(tmp_path: Path) -> None:
    # an empty variable is unset (it used to mean the current folder)
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}", MODEL_PATH="")
    log = tmp_path / "serve.log"
    proc, url = _serve(env, log)
    try:
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        stop(proc)
    assert "serving without a model" in log.read_text()


def test_bad_setting_is_one_line_and_exit_2_and_keys_read_only_the_store(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    env = clean_env(WORKERS="0", THREADS="abc", DATABASE_URL=f"sqlite:///{db}")
    served = _run("serve", env=env)
    assert served.returncode == 2
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and "LEADRANK_WORKERS='0'" in lines[0] and "LEADRANK_THREADS" in lines[0]
    bad_port = _run("serve", "--port", "70000", env=env)
    assert bad_port.returncode == 2 and "--port=70000" in bad_port.stderr
    # keys create reads only where the store is: the bad server settings do not stop it
    made = _run("keys", "create", "--role", "marketer", env=env)
    assert made.returncode == 0, made.stderr
    assert db.exists()


def test_bad_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # it was exit 1, "unexpected error", for an unknown kind or no URL at all
    for url, said in (
        ("justtext", "not a URL"),
        ("notaurl://x", "notaurl"),
        ("mysql://u:secret@h/db", "SQLite or PostgreSQL"),
    ):
        made = _run("keys", "create", "--role", "admin", "--db", url, env=clean_env())
        assert made.returncode == 2 and said in made.stderr, made.stderr
        assert made.stderr.count("\n") == 1 and "secret" not in made.stderr, made.stderr
        served = _run("serve", env=clean_env(DATABASE_URL=url))
        assert served.returncode == 2 and said in served.stderr, served.stderr
