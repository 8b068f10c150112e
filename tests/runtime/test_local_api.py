"""`camp run` with no Prefect API configured starts a local one (runtime.local_api) whose output goes to
`$PREFECT_HOME/camp-local-api.log`, not to the user's terminal (issue 12: a successful run printed uvicorn's
`ERROR: Exception in 'lifespan' protocol` and a CancelledError traceback when the server was stopped), stops
it when camp exits, and says so in one line, with the log, when it cannot start."""

from __future__ import annotations

import os
import shutil
import subprocess

from runtime.demo_data import make_shop
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import BIN


def _workspace(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb*"))
    make_shop(f"duckdb:///{ws / 'shop.duckdb'}", 800, seed=5)
    home = tmp_path / "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CAMP_"))}
    return ws, home, {**env, "PREFECT_HOME": str(home)}


def _servers_of(home) -> list[str]:
    """The uvicorn processes serving Prefect with this PREFECT_HOME (read from /proc: their environment)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"uvicorn" in cmd and f"PREFECT_HOME={home}".encode() in env:
            out.append(pid)
    return out


def test_a_run_without_a_prefect_api_keeps_the_servers_output_in_a_log_and_stops_it(tmp_path):
    ws, home, env = _workspace(tmp_path)
    r = subprocess.run([str(BIN / "camp"), "run", "winback.camp", "--as-of", "2026-12-01T10:00:00+08:00",
                        "--no-progress"], cwd=ws, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sent" in r.stdout
    assert "Traceback" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    assert (home / "camp-local-api.log").is_file()
    assert _servers_of(home) == []  # stopped with camp


def test_a_server_that_cannot_start_is_one_line_naming_its_log(tmp_path):
    ws, home, env = _workspace(tmp_path)
    env |= {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "4",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://nobody:x@127.0.0.1:1/none"}
    r = subprocess.run([str(BIN / "camp"), "run", "winback.camp", "--as-of", "2026-12-01T10:00:00+08:00",
                        "--no-progress"], cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the local Prefect API server did not start" in r.stderr
    assert str(home / "camp-local-api.log") in r.stderr
    assert "Traceback" not in r.stderr
    assert _servers_of(home) == []


def test_a_configured_api_is_used_as_it_is():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from runtime.local_api import local_api

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert local_api() is None
