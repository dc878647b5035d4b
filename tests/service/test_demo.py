"""``leadrank demo`` as a new user runs it: the printed curl lines work as printed.

The README's main job is ``leadrank demo``; its three example lines are copied into a
shell by people. This runs the real command (its own uvicorn on SQLite), pastes each
line into ``sh`` and checks the answers, so a stale example fails here. ``sh`` leaves an
unmatched ``?`` as typed where zsh refuses it, so the quoting of the rep-list URL is
checked on its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from svc_helpers import clean_env, free_port, stop, wait_serving

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl on PATH")


def test_demo_prints_keys_and_curl_lines_that_work_when_pasted(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "stdout.txt"
    cmd = [sys.executable, "-m", "service.cli", "demo", "--folder", str(tmp_path / "d")]
    cmd += ["--leads", "3000", "--reps", "6", "--port", str(port)]
    with out.open("w") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, text=True, env=clean_env()
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_serving(url, proc, out, seconds=240)
            lines = out.read_text().splitlines()
            curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
            assert len(curls) == 3, lines
            keys = dict(line[4:].split(": ", 1) for line in lines if line.startswith("key "))
            assert {"admin", "router", "marketer"} <= set(keys), lines
            ready = httpx.get(f"{url}/readyz", headers={"Authorization": f"Bearer {keys['admin']}"})
            assert ready.status_code == 200, ready.text
            answers = []
            for line in curls:
                done = subprocess.run(
                    ["sh", "-c", line + " -w '\\n%{http_code}'"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                body, _, status = done.stdout.rpartition("\n")
                assert status == "200", (line, done.stdout, done.stderr)
                answers.append(json.loads(body))
        finally:
            stop(proc)
    scored, routed, listed = answers
    assert 0 <= scored["scores"][0]["score"] <= 100
    rep = routed["assignments"][0]["rep_id"]
    # quoted, so zsh (macOS's shell) does not read "?" as a glob and stop with "no matches"
    assert f"'http://127.0.0.1:{port}/v1/reps/{rep}/leads?limit=10'" in curls[2]
    assert any(item["lead_id"] == routed["assignments"][0]["lead_id"] for item in listed["leads"])
