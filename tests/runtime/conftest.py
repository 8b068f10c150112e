"""Fixtures for the runtime: a real Prefect server process, small workspaces, demo shops."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import CAMPAIGNS

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> dict[str, str]:
    """A real `prefect server start` process for the session; the environment that points clients at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # deployments' runs appear within seconds
           "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "50"}  # and a whole month of them, to check the range
    env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    log = open(home / "server.log", "w")  # noqa: SIM115 (kept open for the server's lifetime)
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("prefect server did not start:\n" + (home / "server.log").read_text()[-3000:])
        time.sleep(0.3)
    yield env
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def prefect_api(prefect_env, monkeypatch):
    """In-process flows talk to the session's server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_LOGGING_LEVEL"):
        monkeypatch.setenv(key, prefect_env[key])
    with temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"],
                                     PREFECT_HOME: prefect_env["PREFECT_HOME"]}):
        yield prefect_env


def make_workspace(root: Path, files: dict[str, str], toml: str = "", policy: str | None = None,
                   templates: dict[str, str] | None = None) -> Path:
    """A workspace with the bundled schema and segments, the given campaign files and templates."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "camp.toml").write_text(
        '[workspace]\nname = "test"\ntimezone = "Asia/Shanghai"\ncurrency = "CNY"\n'
        '[data]\nurl = "duckdb:///shop.duckdb"\n[ledger]\nurl = "duckdb:///ledger.duckdb"\n' + toml,
        encoding="utf-8")
    shutil.copy(CAMPAIGNS / "schema.camp", root / "schema.camp")
    shutil.copy(CAMPAIGNS / "segments.camp", root / "segments.camp")
    if policy is not None:
        (root / "policy.camp").write_text(policy, encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    for name, text in (templates or {}).items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def camp(*args: str, cwd: Path, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "camp"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def hook():
    from tests.runtime.servers import start_hook

    h, server, url = start_hook()
    yield h, url
    server.shutdown()


@pytest.fixture(params=["duckdb", "postgres"])
def ledger(request, tmp_path):
    """The ledger URL: a DuckDB file, or a fresh schema of the test PostgreSQL."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'ledger.duckdb'}"
        return
    with pg_schema(f"camp_promises_{os.getpid()}_{request.node.name.split('[')[0][-20:]}") as url:
        yield url


@contextmanager
def pg_schema(name: str) -> Iterator[str]:
    """A fresh schema of the test PostgreSQL (fails under CI=true when the server is missing), dropped after:
    the URL whose search_path is that schema."""
    from tests.conftest import PG_URL, require_postgres

    pg = require_postgres()
    schema = name.lower()
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pg.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg.close()


def workspace_name(root: Path) -> str:
    """[workspace] name of the workspace at `root`."""
    import tomllib

    return tomllib.loads((root / "camp.toml").read_text(encoding="utf-8"))["workspace"]["name"]


def deployment_of(root: Path, campaign: str) -> str:
    """The campaign's deployment as `run_deployment` names it: `camp-campaign/CAMPAIGN@WORKSPACE`."""
    return f"camp-campaign/{campaign}@{workspace_name(root)}"


def two_databases(engine: str, tmp_path: Path, names: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """Two fresh, separate databases of one engine (a fixture's body: `yield from`): DuckDB files named after
    `names` in tmp_path, or two PostgreSQL schemas (camp_NAME_pid) dropped after."""
    if engine == "duckdb":
        yield f"duckdb:///{tmp_path / (names[0] + '.duckdb')}", f"duckdb:///{tmp_path / (names[1] + '.duckdb')}"
        return
    with pg_schema(f"camp_{names[0]}_{os.getpid()}") as a, pg_schema(f"camp_{names[1]}_{os.getpid()}") as b:
        yield a, b
