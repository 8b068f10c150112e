"""No Prefect API configured -> a local Prefect API server for this process, whose output goes to a log file.

Prefect's own ephemeral server (what a client starts when PREFECT_API_URL is unset) writes to the terminal of
the command that started it: when the command exits, the server is stopped mid-flush and uvicorn prints
`ERROR: Exception in 'lifespan' protocol` with a CancelledError traceback on a successful run (seen on a
busy 2-core machine about one run in five). camp starts the same server (Prefect's SubprocessASGIServer:
same app, same health wait) with its stdout and stderr in `$PREFECT_HOME/camp-local-api.log`, waits up to
PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (camp sets 180 s), tries a second time on a fresh port
if the first start fails, and stops it when the process exits (after Prefect's own exit handlers have
flushed their events to it: atexit runs last-registered first).

    local_api() -> str | None   # the API URL of the started server; None when a Prefect API is configured
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, get_current_settings

LOG_NAME = "camp-local-api.log"


class LocalAPIError(RuntimeError):
    """The local Prefect API server did not start (the message names its log)."""


class _LoggedServer(SubprocessASGIServer):
    """Prefect's subprocess server with its output in a file instead of the caller's terminal."""

    log: TextIO | None = None

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # the command and environment of SubprocessASGIServer._run_uvicorn_command (Prefect 3), plus the log
        assert self.log is not None
        return subprocess.Popen(
            args=[sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                  "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                  "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)},
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def local_api(attempts: int = 2) -> str | None:
    """Start a local Prefect API server unless one is configured (PREFECT_API_URL, in the environment or the
    Prefect profile); return its API URL, which the caller puts in Prefect's settings. Raises LocalAPIError
    when every attempt failed."""
    if PREFECT_API_URL.value():
        return None
    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOG_NAME
    log = path.open("a", encoding="utf-8")
    atexit.register(log.close)
    last: Exception | None = None
    for _ in range(attempts):
        server = _LoggedServer(_free_port())
        server.log = log
        try:
            server.start()  # registers its own stop with atexit, before any flow run's event workers register
        except Exception as exc:  # noqa: BLE001 (a timeout or a failed health check: try once more, then say)
            last = exc
            server.stop()
            continue
        return server.api_url
    raise LocalAPIError(f"the local Prefect API server did not start ({str(last).splitlines()[0] if last else ''}); "
                        f"its log: {path}")


def _free_port() -> int:
    """A port the OS says is free now (Prefect retries on a fresh port if another process takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
