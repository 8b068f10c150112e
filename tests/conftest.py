import inspect
import os
from pathlib import Path

import pytest

import tests.profiles  # noqa: F401 (loads the hypothesis profile: HYPOTHESIS_PROFILE=dev for the inner loop)

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "campaigns"
CODES_DIR = ROOT / "tests" / "codes"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from the current output")


@pytest.fixture
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden") or os.environ.get("CAMP_UPDATE_GOLDEN"))


PG_URL = os.environ.get("CAMP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def require_postgres():
    """A connection to the test PostgreSQL. Under CI=true an unreachable server fails the test
    (never skips it); on a laptop without PostgreSQL the test is skipped."""
    from runtime.warehouse import connect

    try:
        return connect(PG_URL)
    except Exception as exc:  # noqa: BLE001 - any driver error means unreachable
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true and is unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {exc}")


def require_spark():
    """pyspark and a Java runtime (scripts/setup-java) for a Spark warehouse's tests. Under CI=true a missing one
    fails the test (never skips it); elsewhere it is skipped."""
    import shutil

    missing = None
    if shutil.which("java") is None:
        missing = "no `java` on PATH (scripts/setup-java installs Debian's openjdk-17-jre-headless)"
    else:
        try:
            import pyspark  # noqa: F401
        except ImportError as exc:
            missing = f"pyspark is not installed ({exc}; scripts/setup installs .[dev])"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Spark is required under CI=true: {missing}")
        pytest.skip(missing)


# Tests over 15 s in a full run on a busy 2-core machine (`pytest --durations=40`), by node id prefix.
SLOW = (
    "tests/runtime/test_deploy.py", "tests/runtime/test_serve.py", "tests/runtime/test_serve_releases.py",
    "tests/runtime/test_arbitration_serve.py", "tests/runtime/test_race.py", "tests/runtime/test_crash.py",
    "tests/runtime/test_promises_machine.py", "tests/test_fuzz.py", "tests/runtime/test_online_retail.py",
    "tests/runtime/test_workers.py", "tests/runtime/test_deploy_source.py",
    "tests/compiler/test_sql_differential.py::test_sql_matches_the_reference",
    # the heaviest of the rest (about 55% of the inner loop's time before): whole-catalogue sweeps
    "tests/compiler/test_sql_differential.py::test_every_window_at_every_boundary",
    "tests/compiler/test_limits.py::test_sixteen_chained_segments_compile_small_and_fast",
    "tests/test_hints.py::test_at_least_90_percent_of_diagnostics_have_a_hint",
    "tests/dsl/test_fullwidth.py::test_any_module_typed_with_full_width_punctuation_parses_the_same",
)


def _source(obj) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def pytest_collection_modifyitems(config, items):
    """Markers from what a test uses, so none is forgotten: `prefect` (a module that runs flows or a server),
    `pg` (the test, one of its fixtures, or its parameter reaches PostgreSQL), `slow` (SLOW)."""
    modules: dict[str, str] = {}
    for item in items:
        module = getattr(item, "module", None)
        text = modules.setdefault(item.nodeid.split("::")[0], _source(module) if module else "")
        if "prefect" in text or "flows" in text or "tests.runtime.steps import" in text and "run," in text:
            item.add_marker(pytest.mark.prefect)
        fixtures = getattr(item, "_fixtureinfo", None)
        defs = [d for ds in (fixtures.name2fixturedefs.values() if fixtures else []) for d in ds]
        sources = [_source(getattr(item, "function", None))] + [_source(d.func) for d in defs]
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any("require_postgres" in t or "PG_URL" in t or "pg_schema(" in t for t in sources) or "postgres" in map(str, params.values()):
            item.add_marker(pytest.mark.pg)
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    """A flow run in a test process without PREFECT_API_URL starts Prefect's temporary API server, which Prefect
    stops at interpreter exit, logging to a console stream pytest has closed by then: a `--- Logging error ---`
    traceback at the end of the run. Stop it here, while the streams are open."""
    import sys

    server = sys.modules.get("prefect.server.api.server")
    if server is None or not server.SubprocessASGIServer._instances:
        return
    from prefect._internal.concurrency.services import QueueService

    def services(cls):  # what still sends to the server (logs, events): drained first, as at exit
        for sub in cls.__subclasses__():
            yield sub
            yield from services(sub)

    for service in set(services(QueueService)):
        service.drain_all(timeout=10)
    for temporary in list(server.SubprocessASGIServer._instances.values()):
        temporary.stop()
