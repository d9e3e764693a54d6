"""Fixtures of tests/web. Browser tests: Playwright for Python driving Debian's Chromium against a real
``callfleet serve`` process.

``./scripts/test`` installs the ``chromium`` package when ``/usr/bin/chromium`` is missing
(Playwright's own browser download cannot run here); ``CALLFLEET_CHROMIUM`` points at
another binary. Each test gets a fresh browser context (its own cookies); the browser and
the server are shared by a module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.test_server import Server, free_port
from tests.test_cli import cli_env, one_json
from tests.web.helpers import PASSWORD

CHROMIUM = os.environ.get("CALLFLEET_CHROMIUM", "/usr/bin/chromium")
# Flags that work in a container as root, with no network beyond loopback.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 800}  # a laptop screen


def launch_browser(playwright: object) -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs Debian's chromium "
                    "(or set CALLFLEET_CHROMIUM)")
    # Playwright starts it with a fresh temporary profile (--user-data-dir) every time.
    return playwright.chromium.launch(  # type: ignore[attr-defined,no-any-return]
        executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@dataclass
class Site:
    """A running server with its data directory, and the CLI to set it up."""

    server: Server
    workdir: Path
    env: dict[str, str]
    teams: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base_url

    def cli(self, *args: str, stdin: str = "") -> str:
        proc = subprocess.run([sys.executable, "-m", "callfleet.cli", *args], cwd=self.workdir,
                              env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    def team(self, name: str) -> dict[str, str]:
        if name not in self.teams:
            self.teams[name] = one_json(self.cli("team", "create", "--name", name, "--json"))
        return self.teams[name]

    def user(self, team: str, role: str, email: str | None = None) -> str:
        slug = self.team(team)["account_slug"]
        email = email or f"{role}@{slug}.example.com"
        self.cli("user", "create", "--team", slug, "--email", email, "--role", role,
                 stdin=PASSWORD + "\n")
        return email


def start_site(tmp: Path, **env: str) -> Iterator[Site]:
    data = tmp / "data"
    port = free_port()
    environment = cli_env(data, CALLFLEET_PUBLIC_URL=f"http://127.0.0.1:{port}",
                          CALLFLEET_RATE_LIMIT_PER_MINUTE="0", **env)
    server = Server(environment, tmp, "127.0.0.1", port).start()
    try:
        server.wait_ready()
        yield Site(server, tmp, environment)
    finally:
        server.kill()


def sign_in(page: Page, site: Site, email: str, password: str = PASSWORD) -> None:
    page.goto(site.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/login" not in u)


def new_context(browser: Browser) -> BrowserContext:
    ctx = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    ctx.set_default_timeout(15_000)
    return ctx


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch_browser(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from start_site(tmp_path_factory.mktemp("web-site"))


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = new_context(browser)
    try:
        yield ctx
    finally:
        ctx.close()
