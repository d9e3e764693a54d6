"""``callfleet user …`` and the owner's link from ``callfleet team create``, as subprocesses
against a temporary SQLite data directory; then the printed links and passwords sign in to
the app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from callfleet.app import create_app
from callfleet.config import Settings
from tests.test_cli import cli_env, one_json
from tests.web.helpers import csrf_of


def cli(cwd: Path, env: dict[str, str], *args: str, stdin: str = "",
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "callfleet.cli", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "data", CALLFLEET_PUBLIC_URL="https://calls.example.com/")


async def sign_in_status(data_dir: Path, email: str, *passwords: str) -> list[int]:
    """The status of a /login with each password, in the app on ``data_dir``."""
    app = create_app(Settings(data_dir=data_dir, rate_limit_per_minute=0), run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            token = csrf_of((await c.get("/login")).text)
            return [(await c.post("/login", data={"email": email, "password": pw,
                                                  "csrf_token": token})).status_code
                    for pw in passwords]


async def sign_in_with_link(data_dir: Path, url: str, form: dict[str, str]) -> httpx.Response:
    path = "/" + url.split("/", 3)[3]
    app = create_app(Settings(data_dir=data_dir, rate_limit_per_minute=0), run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            page = await c.get(path)
            assert page.status_code == 200, page.text
            r = await c.post(path, data={**form, "csrf_token": csrf_of(page.text)})
            assert r.status_code == 303, r.text
            return await c.get("/settings/account")


async def test_team_create_prints_a_working_owner_link(tmp_path: Path,
                                                       env: dict[str, str]) -> None:
    out = one_json(cli(tmp_path, env, "team", "create", "--name", "Acme", "--json").stdout)
    assert out["sign_in_url"].startswith("https://calls.example.com/signin/")
    plain = cli(tmp_path, env, "team", "create", "--name", "Other")
    assert "https://calls.example.com/signin/" in plain.stdout + plain.stderr
    account = await sign_in_with_link(tmp_path / "data", out["sign_in_url"], {
        "email": "founder@example.com", "password": "founder passphrase"})
    assert "founder@example.com" in account.text and "Acme (owner)" in account.text


async def test_user_create_reads_the_password_from_stdin(tmp_path: Path,
                                                         env: dict[str, str]) -> None:
    cli(tmp_path, env, "team", "create", "--name", "Acme", "--json")
    made = one_json(cli(tmp_path, env, "user", "create", "--team", "acme", "--email",
                        "Ana@Example.com", "--role", "owner", "--json",
                        stdin="ana's passphrase\n").stdout)
    assert made["email"] == "ana@example.com" and made["role"] == "owner"
    assert made["user_id"].startswith("user_")
    # No password on the command line: there is no such option.
    refused = cli(tmp_path, env, "user", "create", "--team", "acme", "--email", "b@example.com",
                  "--password", "x", check=False)
    assert refused.returncode != 0 and "password" in refused.stderr.lower()
    short = cli(tmp_path, env, "user", "create", "--team", "acme", "--email", "c@example.com",
                stdin="short\n", check=False)
    assert short.returncode != 0 and "at least 8" in short.stderr
    dup = cli(tmp_path, env, "user", "create", "--team", "acme", "--email", "ana@example.com",
              stdin="another passphrase\n", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    no_team = cli(tmp_path, env, "user", "create", "--team", "nope", "--email",
                  "e@example.com", "--role", "boss", stdin="long enough\n", check=False)
    assert no_team.returncode != 0 and "No team" in no_team.stderr

    # The password works in the app, and a login link signs the same person in.
    assert await sign_in_status(tmp_path / "data", "ana@example.com",
                                "ana's passphrase") == [303]
    link = json.loads(cli(tmp_path, env, "user", "link", "--team", "acme", "--email",
                          "ana@example.com", "--json").stdout)["sign_in_url"]
    account = await sign_in_with_link(tmp_path / "data", link, {})
    assert "ana@example.com" in account.text
    missing = cli(tmp_path, env, "user", "link", "--team", "acme", "--email",
                  "zed@example.com", check=False)
    assert missing.returncode != 0 and "not a member" in missing.stderr

    # A reset password signs in; the old one no longer does.
    cli(tmp_path, env, "user", "password", "--email", "ana@example.com",
        stdin="a brand new passphrase\n")
    assert await sign_in_status(tmp_path / "data", "ana@example.com", "ana's passphrase",
                                "a brand new passphrase") == [400, 303]
