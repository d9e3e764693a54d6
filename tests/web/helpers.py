"""Signing in to the web app from tests: a user in a team, and an httpx client with its own
cookie jar that signs in through the real /login form (CSRF cookie and all)."""

from __future__ import annotations

import re
import uuid
from typing import Any, Self

import httpx

from callfleet.teams import users
from tests.conftest import DbHandle, TeamCtx

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_user(database: DbHandle, team: TeamCtx, role: str = "owner",
                    email: str | None = None, password: str = PASSWORD) -> str:
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    async with database.db.session() as s:
        user = await users.create_user(s, email, password, role.title())
        await users.add_member(s, team.id, user.id, role)
        await s.commit()
    return email


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:2000]
    return m[1]


class WebClient:
    """One browser: its own cookies; ``csrf`` is the token of the last page read."""

    def __init__(self, app: Any, base_url: str = "http://test") -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.http = httpx.AsyncClient(transport=transport, base_url=base_url)
        self.csrf = ""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        r = await self.http.get(url, **kw)
        m = CSRF.search(r.text)
        if m:
            self.csrf = m[1]
        return r

    async def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
                   **kw: Any) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.csrf)
        r = await self.http.post(url, data=body, **kw)
        m = CSRF.search(r.text)
        if m:
            self.csrf = m[1]
        return r

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/login")
        r = await self.post("/login", {"email": email, "password": password})
        assert r.status_code == 303, r.text
        await self.get("/settings/account")  # the session's CSRF token
        return r
