"""The ``callfleet`` command line: teams and keys against a temporary SQLite data directory.

Every command runs as a real subprocess (``python -m callfleet.cli``) with a clean
``CALLFLEET_*`` environment and its working directory in the temp dir, so no ``.env`` file or
developer setting leaks in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callfleet.app import create_app
from callfleet.config import Settings

TEAM_ID = re.compile(r"^team_[0-7][0-9a-hjkmnp-tv-z]{25}$")
KEY_ID = re.compile(r"^key_[0-7][0-9a-hjkmnp-tv-z]{25}$")
TOKEN = re.compile(r"^tk_live_[A-Za-z0-9]{20,}$")


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without any ``CALLFLEET_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
    env["CALLFLEET_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    cwd: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "callfleet.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if check:
        assert proc.returncode == 0, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def one_json(stdout: str) -> dict[str, Any]:
    """stdout must be exactly one JSON object (one line), nothing else."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict), stdout
    return obj


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    # Not created up front: the CLI must create it and apply migrations itself.
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return cli_env(data_dir)


def team_create(workdir: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    proc = run_cli(workdir, env, "team", "create", *extra, "--json")
    return one_json(proc.stdout)


def test_team_create_json(workdir: Path, env: dict[str, str], data_dir: Path) -> None:
    assert not data_dir.exists()
    out = team_create(workdir, env, "--name", "Acme")
    assert set(out) == {"team_id", "account_slug", "api_key", "sign_in_url"}
    assert TEAM_ID.match(out["team_id"]), out
    assert out["account_slug"] == "acme"
    assert TOKEN.match(out["api_key"]), out
    assert (data_dir / "callfleet.db").is_file()

    # Same name again: a distinct team, slug de-duplicated, a different key.
    again = team_create(workdir, env, "--name", "Acme")
    assert again["team_id"] != out["team_id"]
    assert again["account_slug"] == "acme-2"
    assert again["api_key"] != out["api_key"]

    explicit = team_create(workdir, env, "--name", "Globex Corp", "--slug", "globex")
    assert explicit["account_slug"] == "globex"

    dup = run_cli(workdir, env, "team", "create", "--name", "X", "--slug", "globex", "--json",
                  check=False)
    assert dup.returncode != 0
    assert dup.stdout == ""
    assert "already exists" in dup.stderr

    bad = run_cli(workdir, env, "team", "create", "--name", "X", "--slug", "Not A Slug!",
                  "--json", check=False)
    assert bad.returncode != 0 and bad.stdout == ""


def test_team_create_without_json_shows_key_once(workdir: Path, env: dict[str, str]) -> None:
    proc = run_cli(workdir, env, "team", "create", "--name", "Plain")
    text = proc.stdout + proc.stderr
    assert re.search(r"team_[0-7][0-9a-hjkmnp-tv-z]{25}", text), text
    assert re.search(r"tk_live_[A-Za-z0-9]{20,}", text), text


def test_team_list_json(workdir: Path, env: dict[str, str]) -> None:
    empty = one_json(run_cli(workdir, env, "team", "list", "--json").stdout)
    assert empty == {"teams": []}
    a = team_create(workdir, env, "--name", "Acme")
    b = team_create(workdir, env, "--name", "Globex")
    listed = one_json(run_cli(workdir, env, "team", "list", "--json").stdout)
    assert listed == {
        "teams": [
            {"team_id": a["team_id"], "account_slug": "acme", "name": "Acme", "contacts": 0},
            {"team_id": b["team_id"], "account_slug": "globex", "name": "Globex", "contacts": 0},
        ]
    }
    # API keys are never part of a listing.
    assert a["api_key"] not in listed and "tk_live_" not in json.dumps(listed)


def test_key_create_list_revoke(workdir: Path, env: dict[str, str]) -> None:
    team = team_create(workdir, env, "--name", "Acme")

    made = one_json(run_cli(workdir, env, "key", "create", "--team", "acme", "--name", "ci",
                            "--json").stdout)
    assert set(made) == {"team_id", "key_id", "api_key"}
    assert made["team_id"] == team["team_id"]
    assert KEY_ID.match(made["key_id"]) and TOKEN.match(made["api_key"])
    # --team also takes the id; --read-only makes a ["read"] key.
    ro = one_json(run_cli(workdir, env, "key", "create", "--team", team["team_id"],
                          "--read-only", "--json").stdout)
    assert ro["team_id"] == team["team_id"]

    proc = run_cli(workdir, env, "key", "list", "--team", "acme", "--json")
    keys = one_json(proc.stdout)["api_keys"]
    # Tokens are shown once and never stored: the listing carries only prefixes.
    for token in (team["api_key"], made["api_key"], ro["api_key"]):
        assert token not in proc.stdout
    by_id = {k["id"]: k for k in keys}
    assert len(keys) == 3 and made["key_id"] in by_id and ro["key_id"] in by_id
    assert by_id[made["key_id"]]["name"] == "ci"
    assert by_id[made["key_id"]]["prefix"] == made["api_key"][:12]
    assert by_id[made["key_id"]]["scopes"] == []
    assert by_id[ro["key_id"]]["scopes"] == ["read"]
    assert all(k["revoked_at"] is None and k["team_id"] == team["team_id"] for k in keys)

    run_cli(workdir, env, "key", "revoke", made["key_id"])
    keys = one_json(run_cli(workdir, env, "key", "list", "--team", "acme", "--json").stdout)
    revoked = {k["id"]: k["revoked_at"] for k in keys["api_keys"]}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", revoked[made["key_id"]])
    assert revoked[ro["key_id"]] is None
    # Revoking twice is harmless; unknown keys and teams are errors with a non-zero exit.
    run_cli(workdir, env, "key", "revoke", made["key_id"])
    unknown = run_cli(workdir, env, "key", "revoke", "key_01jzzzzzzzzzzzzzzzzzzzzzzz",
                      check=False)
    assert unknown.returncode != 0 and "No API key" in unknown.stderr
    no_team = run_cli(workdir, env, "key", "create", "--team", "nope", "--json", check=False)
    assert no_team.returncode != 0 and no_team.stdout == ""


@pytest.fixture
async def api(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process over the CLI's data directory. ``auth_cache_seconds=0`` plays the
    part of another process whose key cache has expired (revocation is seen on the next
    request, no waiting)."""
    settings = Settings(data_dir=data_dir, database_url=None, rate_limit_per_minute=0,
                        auth_cache_seconds=0)
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_cli_keys_work_against_the_api_until_revoked(
    workdir: Path, env: dict[str, str], api: httpx.AsyncClient
) -> None:
    team = team_create(workdir, env, "--name", "Acme")
    made = one_json(run_cli(workdir, env, "key", "create", "--team", "acme", "--json").stdout)
    ro = one_json(run_cli(workdir, env, "key", "create", "--team", "acme", "--read-only",
                          "--json").stdout)

    def h(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    for token in (team["api_key"], made["api_key"], ro["api_key"]):
        r = await api.get("/api/team", headers=h(token))
        assert r.status_code == 200, r.text
        assert r.json()["team"]["id"] == team["team_id"]
        assert r.json()["team"]["account_slug"] == "acme"

    body = {"teamId": team["team_id"], "name": "Initech"}
    r = await api.post("/api/crm/companies", json=body, headers=h(ro["api_key"]))
    assert r.status_code == 403 and r.json()["success"] is False
    r = await api.post("/api/crm/companies", json=body, headers=h(made["api_key"]))
    assert r.status_code == 201, r.text

    # `team list` counts contacts per team.
    company = r.json()["company"]["id"]
    r = await api.post("/api/crm/contacts", headers=h(made["api_key"]), json={
        "teamId": team["team_id"], "companyId": company, "firstName": "A", "lastName": "B"})
    assert r.status_code == 201, r.text
    listed = one_json(run_cli(workdir, env, "team", "list", "--json").stdout)
    assert listed["teams"][0]["contacts"] == 1

    run_cli(workdir, env, "key", "revoke", made["key_id"])
    r = await api.get("/api/team", headers=h(made["api_key"]))
    assert r.status_code == 401
    assert r.json() == {"success": False, "error": "Unauthorized"}
    r = await api.get("/api/crm/contacts", params={"teamId": team["team_id"]},
                      headers=h(made["api_key"]))
    assert r.status_code == 401
    # Other keys of the team are unaffected.
    r = await api.get("/api/team", headers=h(team["api_key"]))
    assert r.status_code == 200


def test_worker_serves_prometheus_metrics_when_asked(workdir: Path, env: dict[str, str]) -> None:
    import signal
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "callfleet.cli", "worker", "--metrics-port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "callfleet_webhook_backlog" not in body:
            assert proc.poll() is None, proc.communicate()
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.2)
        assert "callfleet_webhook_backlog" in body
        assert "process_cpu_seconds_total" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
