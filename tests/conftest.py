"""Shared test plumbing: where the captured fixtures live, and replaying hosts."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis's default 200 ms per-example deadline is a wall-clock assertion: on a loaded 2-core
# CI machine it fails property tests whose property holds. Tests assert behaviour, never speed.
# The too_slow health check is the same kind of assertion (on the time spent generating
# examples), so it goes too; the health checks on what is generated stay.
settings.register_profile("auditagent", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("auditagent")

# A real collector (subprocess on 127.0.0.1, SQLite and PostgreSQL, HTTP and HTTPS) for any test,
# and the readiness tests' stored fleet (``fleet``).
pytest_plugins = ["collector_fixtures", "readiness_fleet"]

REPO = Path(__file__).resolve().parents[1]
# ../shared/fixtures beside the clone (as in CI); AUDITAGENT_SHARED_FIXTURES overrides.
SHARED_FIXTURES = Path(os.environ.get("AUDITAGENT_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))
# Our own captures (taken on this project's machines) and fixture trees of /sys, /proc, C:\ …
OWN_FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _structlog_defaults():
    """A CLI run in-process configures structlog for the whole process (JSON, warning level and
    up); reset after each test so that one test's logging set-up never hides another's events."""
    yield
    import structlog

    structlog.reset_defaults()


def shared(rel: str) -> Path:
    """Path of a capture under ../shared/fixtures; the test fails loudly if it is missing."""
    path = SHARED_FIXTURES / rel
    if not path.exists():
        raise FileNotFoundError(f"shared fixture missing: {path} (is ../shared beside the clone?)")
    return path


@pytest.fixture
def shared_fixtures() -> Path:
    assert SHARED_FIXTURES.is_dir(), f"{SHARED_FIXTURES} not found: clone beside ../shared"
    return SHARED_FIXTURES


@pytest.fixture
def own_fixtures() -> Path:
    return OWN_FIXTURES
