"""The dashboard in a real browser (Playwright driving Debian's chromium), served by the real
manager of a real cluster this test boots: the page reads the documents the manager really
sends (daemon states as the supervisor names them, Slurm's node and job states), and a node
added from the CLI and a job submitted with sbatch reach it over the live stream.

Screenshots go to pytest's tmp_path; to regenerate the picture in the docs on purpose, run
`make dashboard-png` (it sets VHPC_DASHBOARD_PNG to docs/dashboard.png).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import CHROMIUM, launch_chromium, leftovers, status, vhpc

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} missing: apt-get install chromium"),
]

CLUSTER = "hcdash"
COMPUTES = ["compute0", "compute1", "compute2"]
ADDED = "compute3"
SCREENSHOT_ENV = "VHPC_DASHBOARD_PNG"
# chromium's console line for any HTTP error: the response handler records it with its URL
LOAD_FAILED = "Failed to load resource"
# Requests that failed without an answer and are not a problem of the page: a navigation's
# abort, and chromium's abort of requests in flight when the host's network interfaces
# change (every node made or removed on the host does that), which app.js's getJSON tries
# again; a request that fails every time still shows as the console warning it logs.
TRIED_AGAIN = ("net::ERR_ABORTED", "net::ERR_NETWORK_CHANGED")


@dataclass(frozen=True)
class Booted:
    """The cluster under test and the dashboard URL `vhpc up` printed (token included)."""

    name: str
    url: str


@pytest.fixture(scope="module")
def cluster() -> Iterator[Booted]:
    vhpc("-c", CLUSTER, "down", check=False)
    try:
        up = json.loads(vhpc("-c", CLUSTER, "up", "-n", str(len(COMPUTES)),
                             "--sample-interval", "1", "--json").stdout)
        yield Booted(CLUSTER, str(up["dashboard"]))
    finally:
        vhpc("-c", CLUSTER, "down", check=False)
        assert leftovers(CLUSTER) == []


@dataclass
class Tab:
    """A chromium page and what went wrong in it: script errors, console errors and
    warnings, HTTP errors (but the browser's own /favicon.ico request, which the page
    does not serve) and requests that got no answer at all."""

    page: Any
    problems: list[str]


@pytest.fixture
def tab(cluster: Booted) -> Iterator[Tab]:
    """A fresh browser (no cookie) per test; fails the test on any problem left in it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            seen = Tab(page, [])
            page.on("pageerror", lambda e: seen.problems.append(f"page error: {e}"))
            page.on("console", lambda m: seen.problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") and not m.text.startswith(LOAD_FAILED)
                    else None)
            page.on("response", lambda r: seen.problems.append(f"HTTP {r.status} {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
            page.on("requestfailed", lambda r: seen.problems.append(
                f"request failed: {r.method} {r.url}: {r.failure}")
                if r.failure not in TRIED_AGAIN else None)
            yield seen
            assert not seen.problems, seen.problems
        finally:
            browser.close()


def _services_shown(page: Any, node: str) -> list[str]:
    """The daemon titles of a node card, e.g. ['munged: RUNNING pid 12', ...]."""
    titles: list[str] = page.locator(f'[data-node="{node}"] .svc').evaluate_all(
        "spans => spans.map(s => s.title)")
    return titles


def test_dashboard_shows_the_real_cluster_live(cluster: Booted, tab: Tab,
                                               tmp_path: Path) -> None:
    page = tab.page
    assert "token=" in cluster.url, "the dashboard URL up prints carries the token"
    page.goto(cluster.url)
    for name in COMPUTES:
        page.wait_for_selector(f'[data-node="{name}"]', timeout=15_000)
    page.wait_for_selector('#live[data-mode="sse"]', timeout=15_000)
    assert page.locator("#cluster").inner_text() == cluster.name
    assert page.locator("#phase").inner_text() == "ready"

    # Daemon states as the manager's supervisor reports them, for every node on the page.
    doc = status(cluster.name)
    assert page.locator("#nodes .node").count() == len(doc["nodes"])
    for node in doc["nodes"]:
        shown = [t.split(" pid ")[0].split(",")[0] for t in _services_shown(page, node["name"])]
        assert shown == [f"{s['name']}: {s['state']}" for s in node["services"]], node["name"]
    assert "slurmd: RUNNING" in [t.split(" pid ")[0] for t in _services_shown(page, "compute0")]

    # A node added from the CLI and a job from sbatch arrive by the stream, not by polling.
    status_fetches: list[str] = []
    page.on("request", lambda r: status_fetches.append(r.url)
            if "/api/v1/status" in r.url else None)
    vhpc("-c", cluster.name, "node", "add", ADDED)
    page.wait_for_selector(f'[data-node="{ADDED}"]', timeout=20_000)
    page.wait_for_selector(f'#events li:has-text("{ADDED}")', timeout=20_000)
    job = vhpc("-c", cluster.name, "exec", "slurm", "--user", "cluser", "--", "sbatch",
               "--parsable", "-N2", "-J", "dash-demo", "--wrap", "srun sleep 120").stdout.strip()
    row = page.locator(f'#jobs tr[data-job="{job}"]')
    row.wait_for(timeout=20_000)
    page.wait_for_function(
        f"""() => {{
            const cells = document.querySelectorAll('#jobs tr[data-job="{job}"] td');
            return cells.length === 6 && cells[3].textContent === "RUNNING";
        }}""", timeout=20_000)
    assert row.locator("td").nth(1).inner_text() == "dash-demo"
    assert row.locator("td").nth(2).inner_text() == "cluser"
    assert status_fetches == [], "node and job came by the SSE stream, not by polling"
    assert re.search(r"\b[1-9]\d* running\b", page.locator("#summary").inner_text())

    # Charts from the sampler's store, and a search of the central log.
    page.wait_for_selector("#chart-nodes polyline", timeout=30_000)
    assert page.locator("#chart-total polyline").count() == 1
    page.fill("#q", "slurmd started")
    page.click("#log-form button[type=submit]")
    page.wait_for_selector('#logs tr:has-text("slurmd started")', timeout=15_000)
    page.fill("#q", "")
    page.click("#log-form button[type=submit]")

    for_docs = os.environ.get(SCREENSHOT_ENV)
    shot = Path(for_docs or tmp_path / "dashboard.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    # The picture for the docs waits for half a minute of samples, so the charts have lines.
    time.sleep(30.0 if for_docs else 1.0)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header where it belongs: on top
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    vhpc("-c", cluster.name, "exec", "slurm", "--", "scancel", job)


def test_a_reload_without_the_token_works_by_its_cookie(cluster: Booted, tab: Tab) -> None:
    tab.page.goto(cluster.url)
    tab.page.wait_for_selector('[data-node="compute0"]', timeout=15_000)
    tab.page.goto(cluster.url.split("?", 1)[0])
    tab.page.wait_for_selector('#live[data-mode="sse"]', timeout=15_000)
    tab.page.wait_for_selector('[data-node="compute0"]', timeout=15_000)
    assert tab.page.locator("#cluster").inner_text() == cluster.name


def test_without_the_token_the_page_gets_no_data(cluster: Booted, tab: Tab) -> None:
    refused: list[str] = []
    tab.page.on("response", lambda r: refused.append(r.url.split("?")[0])
                if "/api/v1/" in r.url and r.status == 401 else None)
    tab.page.goto(cluster.url.split("?", 1)[0])
    tab.page.wait_for_selector('#live[data-mode="off"], #live[data-mode="poll"]',
                               timeout=15_000)
    assert tab.page.locator("#nodes .node").count() == 0
    assert any(u.endswith("/api/v1/status") for u in refused), refused
    assert tab.problems and all("401" in p or "AuthError" in p
                                for p in tab.problems), tab.problems
    tab.problems.clear()  # the refusals above are what this test expects
