"""The real browser the dashboard tests drive, defined once: Debian's /usr/bin/chromium
(no browser download) through Playwright, a module-scoped ``browser`` fixture, and the
simulated fleet on SQLite that the page tests serve.

A test module imports what it uses (``from browser_harness import browser, ...``) and
marks itself ``pytestmark = needs_chromium``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = Path(os.environ.get("AUDITAGENT_TEST_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: apt-get install chromium "
                                                                  "(.ci/apt-packages.txt installs it in CI)")


# Playwright's own bounds (30 s to launch, to load a page, to click) are hang guards that a
# loaded 2-core machine, Chromium and a collector subprocess sharing it, can reach in a sound
# test; generous ones instead (a page that never comes still fails, with Playwright's message).
TIMEOUT_MS = 180_000


class _Browser:
    """The launched browser; each context it makes waits up to TIMEOUT_MS."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_context(self, **options: Any) -> Any:
        context = self._browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        return context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (.ci/apt-packages.txt installs chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra has it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True, timeout=TIMEOUT_MS)
        try:
            yield _Browser(b)
        finally:
            b.close()


def simulated_store(work: Path, *, devices: int, days: int, seed: int) -> tuple[str, Any]:
    """A migrated SQLite collector database in ``work`` holding a simulated fleet
    (server.simulate): its URL and a Store on it (the caller disposes its engine)."""
    from server import migrate
    from server.db import make_engine
    from server.simulate import FleetSpec, simulate_fleet
    from server.store import Store

    db_url = f"sqlite:///{work / 'collector.db'}"
    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    store = Store(engine)
    simulate_fleet(store, FleetSpec(devices=devices, days=days, seed=seed))
    return db_url, store
