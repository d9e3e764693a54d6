"""Shared fixtures.

Every API test runs against SQLite, and again against PostgreSQL when
``CALLFLEET_TEST_POSTGRES_URL`` is set (a fresh database is created on that server for the
session and dropped afterwards). Tests isolate by team: each creates its own teams, so no
table is truncated between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from callfleet import outbound
from callfleet.app import create_app
from callfleet.clock import FixedClock
from callfleet.config import Settings
from callfleet.db.migrate import migrate
from callfleet.db.session import Database, open_database
from callfleet.teams.service import create_team

PG_URL = os.environ.get("CALLFLEET_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]


def asyncpg_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
        password=u.password, database=u.database or "postgres",
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class DbHandle:
    backend: str
    url: str
    db: Database


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("callfleet")


@asynccontextmanager
async def fresh_database(backend: str, directory: Path, pool_size: int
                         ) -> AsyncIterator[DbHandle]:
    """A migrated database of its own: a file in ``directory``, or a PostgreSQL database
    created on ``CALLFLEET_TEST_POSTGRES_URL``'s server and dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'test.db'}"
        db = open_database(url)
        await migrate(db)
        yield DbHandle("sqlite", url, db)
        await db.dispose()
        return
    assert PG_URL
    name = f"callfleet_test_{uuid.uuid4().hex[:10]}"
    await _admin(PG_URL, f'CREATE DATABASE "{name}"')
    url = make_url(asyncpg_url(PG_URL)).set(database=name).render_as_string(hide_password=False)
    db = open_database(url, pool_size=pool_size)
    try:
        await migrate(db)
        yield DbHandle("postgres", url, db)
    finally:
        await db.dispose()
        await _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_root: Path) -> AsyncIterator[DbHandle]:
    async with fresh_database(request.param, tmp_root, pool_size=10) as handle:
        yield handle


@pytest.fixture(params=BACKENDS)
async def own_database(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[DbHandle]:
    """A fresh database for one test, for code that works across every team (a background
    loop, a due-time query) and must not see other tests' rows."""
    async with fresh_database(request.param, tmp_path, pool_size=5) as handle:
        yield handle


def make_settings(url: str, **overrides: Any) -> Settings:
    # Voice slots off: these apps move a fixed clock by weeks, past any voice process's
    # lease (tests/dialer/test_voice_slots.py turns them on).
    base: dict[str, Any] = {"database_url": url, "rate_limit_per_minute": 0,
                            "voice_slots": False}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session")
async def app(database: DbHandle) -> AsyncIterator[Any]:
    """The app with no background dialer and a clock that moves only when a test says so
    (``app.state.clock.advance(...)``); tests drive the dialer with ``app.state.dialer.tick()``.
    """
    application = create_app(make_settings(database.url), db=database.db, run_worker=False,
                             clock=FixedClock(datetime.now(UTC)))
    async with application.router.lifespan_context(application):
        yield application


LOOPBACK = "127.0.0.1/32"


@pytest.fixture
def allow_loopback(app: Any) -> Iterator[None]:
    """Tenant-set URLs may reach 127.0.0.1 during this test (fake LLMs and receivers listen
    there). The default policy refuses loopback; this says so explicitly, per test, the way an
    operator would with ``CALLFLEET_OUTBOUND_ALLOWED_NETWORKS``."""
    before = app.state.settings
    app.state.settings = before.model_copy(update={"outbound_allowed_networks": LOOPBACK})
    try:
        yield
    finally:
        app.state.settings = before


REBIND = "rebind.example.test"  # a public-looking name: accepted when a URL is written


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: ``rebind.example.test`` resolves to 127.0.0.1 when callfleet connects
    (``callfleet.outbound.resolve_host`` is the resolver of every tenant-set URL)."""
    real = outbound.resolve_host

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == REBIND else await real(host, port)

    monkeypatch.setattr(outbound, "resolve_host", resolve)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class TeamCtx:
    id: str
    slug: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def new_team(database: DbHandle, name: str = "Acme") -> TeamCtx:
    async with database.db.session() as s:
        team, token = await create_team(s, name)
        await s.commit()
    return TeamCtx(team.id, team.slug, token)


@pytest.fixture
async def team(database: DbHandle) -> TeamCtx:
    return await new_team(database, "Acme")


@pytest.fixture
async def other_team(database: DbHandle) -> TeamCtx:
    return await new_team(database, "Globex")


async def make_company(client: httpx.AsyncClient, t: TeamCtx, name: str = "Initech") -> str:
    r = await client.post("/api/crm/companies", json={"teamId": t.id, "name": name},
                          headers=t.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["company"]["id"])


async def make_contact(
    client: httpx.AsyncClient, t: TeamCtx, company_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"teamId": t.id, "companyId": company_id, "firstName": "Sarah", "lastName": "Chen"}
    body.update(fields)
    r = await client.post("/api/crm/contacts", json=body, headers=t.headers)
    assert r.status_code == 201, r.text
    return dict(r.json()["contact"])


@pytest.fixture
async def company(client: httpx.AsyncClient, team: TeamCtx) -> str:
    return await make_company(client, team)


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent
