import os
from pathlib import Path

import pytest

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
