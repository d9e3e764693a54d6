"""End to end: the real ``callfleet serve`` in a subprocess, driven over real HTTP.

Runs on SQLite in an empty temporary data directory, and again on a fresh PostgreSQL
database when ``CALLFLEET_TEST_POSTGRES_URL`` is set. The server is bootstrapped the way a
user would: ``callfleet team create --json`` for the first key, then the seed page's example
requests (contacts, SPEC section 2 and 3) with the key.

Readiness is a bounded poll of ``/health``; nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from callfleet.db.migrate import MIGRATIONS
from tests.conftest import BACKENDS, PG_URL, _admin, asyncpg_url
from tests.test_cli import TEAM_ID, TOKEN, cli_env, one_json, run_cli

ID_BODY = r"[0-7][0-9a-hjkmnp-tv-z]{25}"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# The seed page's "Create a contact" example body (teamId/companyId filled in per test).
SEED_CREATE_BODY: dict[str, Any] = {
    "firstName": "Sarah",
    "lastName": "Chen",
    "email": "sarah.chen@example.com",
    "phone": "+14155551234",
    "jobTitle": "VP of Engineering",
    "leadStatus": "new",
    "source": "trade-show",
    "timezone": "America/Los_Angeles",
    "doNotCall": False,
    "tags": ["enterprise", "warm-lead"],
    "customFields": {"company_size": "500-1000", "interest": "outbound-automation"},
}
# The seed page's response: every key, with the type each value has there.
SEED_CONTACT_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "team_id": (str,), "company_id": (str,), "first_name": (str,),
    "last_name": (str,), "email": (str,), "phone": (str,), "phone_secondary": (type(None),),
    "job_title": (str,), "lead_status": (str,), "source": (str,), "timezone": (str,),
    "do_not_call": (bool,), "notes": (type(None),), "custom_fields": (dict,), "tags": (list,),
    "created_at": (str,), "updated_at": (str,),
}
# Keys a contact may carry beyond the seed's: the seed's own request field that its example
# response happens not to show. Anything else (internal columns) must not leak.
# Additions to the seed page's contact: address and consent (issue 16, docs/compliance.md).
EXTRA_CONTACT_KEYS = {"preferred_contact_method", "address_line1", "city", "state", "postal_code",
                      "country", "consent"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Server:
    """One ``callfleet serve`` subprocess; output goes to a log file shown on failure."""

    def __init__(self, env: dict[str, str], cwd: Path, host: str, port: int) -> None:
        self.env, self.cwd, self.host, self.port = env, cwd, host, port
        self.log_path = cwd / f"serve-{port}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Server:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callfleet.cli", "serve",
                 "--host", self.host, "--port", str(self.port), "--log-level", "info"],
                cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Poll ``/health`` until it answers 200, the process dies, or ``timeout`` passes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last: str = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(f"{self.base_url}/health", timeout=2.0)
                if r.status_code == 200:
                    return dict(r.json())
                last = f"{r.status_code} {r.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            try:  # the poll interval, which also notices the process exiting
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        pytest.fail(f"serve not ready after {timeout}s ({last}):\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, and check the server shut down gracefully and promptly.

        uvicorn finishes its shutdown (lifespan included) and then re-raises the signal, so
        the exit status is "terminated by SIGTERM" (a clean stop for systemd and Docker) or 0.
        """
        assert self.proc is not None and self.proc.poll() is None, self.log()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"serve ignored SIGTERM for {timeout}s:\n{self.log()}")
        log = self.log()
        assert self.proc.returncode in (0, -signal.SIGTERM), (self.proc.returncode, log)
        assert "Application shutdown complete" in log, log
        assert "Traceback" not in log, log

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)


@dataclass
class Deployment:
    """Where a server keeps its data: an empty data dir, and maybe a fresh PG database."""

    backend: str
    workdir: Path
    data_dir: Path
    env: dict[str, str]
    pg_admin_url: str | None = None
    pg_database: str | None = None

    async def migrated_version(self) -> str | None:
        if self.backend == "sqlite":
            db_file = self.data_dir / "callfleet.db"
            if not db_file.exists():
                return None
            with sqlite3.connect(db_file) as conn:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return str(row[0]) if row else None
        import asyncpg

        assert self.pg_admin_url and self.pg_database
        u = make_url(self.pg_admin_url)
        conn = await asyncpg.connect(
            host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
            password=u.password, database=self.pg_database,
        )
        try:
            exists = await conn.fetchval("SELECT to_regclass('public.alembic_version')")
            if exists is None:
                return None
            return str(await conn.fetchval("SELECT version_num FROM alembic_version"))
        finally:
            await conn.close()


@pytest.fixture(params=BACKENDS)
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    data_dir = tmp_path / "data"  # deliberately absent: serve must create and migrate it
    if request.param == "sqlite":
        yield Deployment("sqlite", tmp_path, data_dir, cli_env(data_dir))
        return
    assert PG_URL
    name = f"callfleet_e2e_{uuid.uuid4().hex[:10]}"
    await _admin(PG_URL, f'CREATE DATABASE "{name}"')
    url = make_url(asyncpg_url(PG_URL)).set(database=name).render_as_string(hide_password=False)
    try:
        yield Deployment("postgres", tmp_path, data_dir,
                         cli_env(data_dir, CALLFLEET_DATABASE_URL=url), PG_URL, name)
    finally:
        await _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts is registered here and killed at teardown, whatever happens."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def launch(servers: list[Server], dep: Deployment, host: str = "127.0.0.1",
           port: int | None = None) -> Server:
    server = Server(dep.env, dep.workdir, host, port or free_port(host))
    servers.append(server)
    server.start()
    return server


def head_revision() -> str:
    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()
    assert len(heads) == 1, heads
    return heads[0]


def check_seed_contact(c: dict[str, Any]) -> None:
    """The contact object as the seed page shows it: keys, value types, id and time formats."""
    missing = set(SEED_CONTACT_TYPES) - set(c)
    assert not missing, missing
    assert set(c) - set(SEED_CONTACT_TYPES) <= EXTRA_CONTACT_KEYS, set(c)
    for key, types in SEED_CONTACT_TYPES.items():
        assert isinstance(c[key], types), (key, c[key])
    assert all(isinstance(t, str) for t in c["tags"])
    assert re.match(rf"^cont_{ID_BODY}$", c["id"]), c["id"]
    assert re.match(rf"^team_{ID_BODY}$", c["team_id"])
    assert re.match(rf"^comp_{ID_BODY}$", c["company_id"])
    assert TS.match(c["created_at"]) and TS.match(c["updated_at"])


async def test_serve_bootstrap_seed_requests_and_restart(
    deployment: Deployment, servers: list[Server]
) -> None:
    dep = deployment
    assert not dep.data_dir.exists()
    assert await dep.migrated_version() is None

    # --- start on an empty data dir: migrations are applied at start.
    server = launch(servers, dep)
    health = server.wait_ready()
    assert health["success"] is True and health["status"] == "ok"
    assert health["database"] == "ok"
    assert await dep.migrated_version() == head_revision()
    if dep.backend == "sqlite":
        assert (dep.data_dir / "callfleet.db").is_file()

    # --- bootstrap the first team and key from the CLI, next to the running server.
    out = one_json(run_cli(dep.workdir, dep.env, "team", "create", "--name", "Acme",
                           "--json").stdout)
    assert set(out) == {"team_id", "account_slug", "api_key", "sign_in_url"}
    assert TEAM_ID.match(out["team_id"]) and TOKEN.match(out["api_key"])
    assert out["account_slug"] == "acme"
    team_id = out["team_id"]
    auth = {"Authorization": f"Bearer {out['api_key']}"}

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as http:
        # --- docs and the OpenAPI document are served (no key needed).
        r = await http.get("/docs")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "swagger" in r.text.lower()
        r = await http.get("/openapi.json")
        assert r.status_code == 200
        spec = r.json()
        paths = spec["paths"]
        assert {"get", "post"} <= set(paths["/api/crm/contacts"])
        assert "post" in paths["/api/crm/contacts/import"]
        assert {"get", "post"} <= set(paths["/api/crm/companies"])
        create_responses = paths["/api/crm/contacts"]["post"]["responses"]
        assert {"201", "400", "401", "403"} <= set(create_responses)
        assert "422" not in create_responses

        # --- no key, a wrong key: 401 with the error envelope.
        for headers in ({}, {"Authorization": "Bearer tk_live_wrong"}):
            r = await http.get("/api/crm/contacts", params={"teamId": team_id}, headers=headers)
            assert r.status_code == 401
            assert r.json() == {"success": False, "error": "Unauthorized"}
            r = await http.post("/api/crm/contacts", json={"teamId": team_id}, headers=headers)
            assert r.status_code == 401

        r = await http.get("/api/team", headers=auth)
        assert r.status_code == 200
        assert r.json()["team"]["id"] == team_id

        r = await http.post("/api/crm/companies", json={"teamId": team_id, "name": "Initech"},
                            headers=auth)
        assert r.status_code == 201, r.text
        company_id = r.json()["company"]["id"]

        # --- the seed's create example, verbatim.
        body = {"teamId": team_id, "companyId": company_id, **SEED_CREATE_BODY}
        r = await http.post("/api/crm/contacts", json=body, headers=auth)
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith("application/json")
        created = r.json()
        assert set(created) == {"success", "contact"}
        assert created["success"] is True
        contact = created["contact"]
        check_seed_contact(contact)
        assert {k: v for k, v in contact.items()
                if k not in ("id", "created_at", "updated_at")} == {
            "team_id": team_id,
            "company_id": company_id,
            "first_name": "Sarah",
            "last_name": "Chen",
            "email": "sarah.chen@example.com",
            "phone": "+14155551234",
            "phone_secondary": None,
            "job_title": "VP of Engineering",
            "lead_status": "new",
            "source": "trade-show",
            "timezone": "America/Los_Angeles",
            "do_not_call": False,
            "notes": None,
            "custom_fields": {"company_size": "500-1000", "interest": "outbound-automation"},
            "tags": ["enterprise", "warm-lead"],
            **{k: None for k in EXTRA_CONTACT_KEYS},
        }
        assert contact["created_at"] == contact["updated_at"]

        # Contacts the seed's list query must leave out: no phone; another lead status.
        for extra in ({"firstName": "No", "lastName": "Phone"},
                      {"firstName": "Q", "lastName": "Ualified", "phone": "+12025550123",
                       "leadStatus": "qualified"}):
            r = await http.post("/api/crm/contacts", headers=auth,
                                json={"teamId": team_id, "companyId": company_id, **extra})
            assert r.status_code == 201, r.text

        # --- the seed's list example: ?teamId=…&leadStatus=new&hasPhone=true&limit=25
        seed_query = f"/api/crm/contacts?teamId={team_id}&leadStatus=new&hasPhone=true&limit=25"
        r = await http.get(seed_query, headers=auth)
        assert r.status_code == 200, r.text
        listed = r.json()
        assert set(listed) == {"success", "contacts", "count", "limit", "offset"}
        assert listed["success"] is True
        assert listed["count"] == 1 and listed["limit"] == 25 and listed["offset"] == 0
        assert all(isinstance(listed[k], int) and not isinstance(listed[k], bool)
                   for k in ("count", "limit", "offset"))
        assert isinstance(listed["contacts"], list) and len(listed["contacts"]) == 1
        check_seed_contact(listed["contacts"][0])
        assert listed["contacts"][0] == contact

        r = await http.get("/api/crm/contacts", params={"teamId": team_id}, headers=auth)
        assert r.json()["count"] == 3 and r.json()["limit"] == 50

    # --- stop with SIGTERM: a clean exit.
    server.stop()

    # --- start again (another port): everything is still there.
    again = launch(servers, dep)
    again.wait_ready()
    async with httpx.AsyncClient(base_url=again.base_url, timeout=30.0) as http:
        r = await http.get(f"/api/crm/contacts/{contact['id']}", headers=auth)
        assert r.status_code == 200, r.text
        got = r.json()["contact"]
        assert {k: got[k] for k in contact} == contact
        r = await http.get(seed_query, headers=auth)
        assert r.json()["count"] == 1 and r.json()["contacts"][0] == contact
        r = await http.get("/api/crm/contacts", params={"teamId": team_id}, headers=auth)
        assert r.json()["count"] == 3
        r = await http.get(f"/api/crm/companies/{company_id}", headers=auth)
        assert r.status_code == 200 and r.json()["company"]["contact_count"] == 3
    again.stop()
    assert await dep.migrated_version() == head_revision()


def test_serve_honours_host_and_port(tmp_path: Path, servers: list[Server]) -> None:
    data_dir = tmp_path / "data"
    dep = Deployment("sqlite", tmp_path, data_dir, cli_env(data_dir))
    host = "127.0.0.2"  # another loopback address: proves --host is used, not a default
    port = free_port(host)
    server = launch(servers, dep, host=host, port=port)
    server.wait_ready()
    r = httpx.get(f"http://{host}:{port}/health", timeout=5.0)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5.0)
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/health", timeout=5.0)
