"""Request dependencies: database sessions, the authenticated principal, paging, rate limits."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.api.responses import JSON
from callfleet.config import Settings
from callfleet.db.base import utcnow
from callfleet.db.session import Database
from callfleet.errors import UNAUTHORIZED, ApiError, bad_request
from callfleet.teams.models import ApiKey, Team
from callfleet.teams.principal import Principal
from callfleet.teams.service import hash_key


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_db(request).session(write=True) as s:
        yield s


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_db(request).session(write=False) as s:
        yield s


WriteSession = Annotated[AsyncSession, Depends(write_session)]
ReadSession = Annotated[AsyncSession, Depends(read_session)]


class AuthCache:
    """Verified keys, trusted for ``ttl`` seconds so a request costs no extra key lookup.

    Revocation through this process drops the entry at once; other processes see it within
    ``ttl`` seconds (docs/decisions/0002-auth-and-rate-limits.md).
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal, float | None]] = {}

    def get(self, key_hash: str) -> Principal | None:
        hit = self._entries.get(key_hash)
        if hit is None:
            return None
        stamp, principal, expires = hit
        now = time.monotonic()
        if now - stamp > self.ttl or (expires is not None and time.time() >= expires):
            self._entries.pop(key_hash, None)
            return None
        return principal

    def put(self, key_hash: str, principal: Principal, expires: float | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic(), principal, expires)

    def drop_key(self, key_id: str) -> None:
        for h, (_, p, _) in list(self._entries.items()):
            if p.key_id == key_id:
                self._entries.pop(h, None)


class RateLimiter:
    """Token bucket per API key, per process: ``per_minute`` sustained, ``burst`` at once."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str) -> float:
        """Returns 0 when allowed, else the seconds until a request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate


async def _load_principal(db: Database, key_hash: str) -> tuple[Principal, float | None] | None:
    async with db.session(write=False) as s:
        row = (
            await s.execute(
                select(ApiKey, Team.slug)
                .join(Team, Team.id == ApiKey.team_id)  # tenancy: system (finds the key's team)
                .where(ApiKey.key_hash == key_hash)
            )
        ).first()
    if row is None:
        return None
    key, slug = row
    if key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= utcnow():
        return None
    principal = Principal(key.team_id, slug, key.id, tuple(key.scopes or ()))
    return principal, key.expires_at.timestamp() if key.expires_at else None


async def get_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise UNAUTHORIZED
    state = request.app.state
    key_hash = hash_key(token)
    principal = state.auth_cache.get(key_hash)
    if principal is None:
        loaded = await _load_principal(state.db, key_hash)
        if loaded is None:
            raise UNAUTHORIZED
        principal, expires = loaded
        state.auth_cache.put(key_hash, principal, expires)
    if principal.scopes and "write" not in principal.scopes and request.method not in (
        "GET", "HEAD", "OPTIONS"
    ):
        raise ApiError(403, "Forbidden: this API key is read-only")
    wait = state.rate_limiter.take(principal.key_id)
    if wait > 0:
        raise ApiError(
            429,
            "Too many requests: this API key exceeded its rate limit",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    request.state.principal = principal
    return principal


Auth = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    def respond(self, name: str, items: list[Any], total: int) -> JSON:
        """The list envelope: ``{success, <name>: [...], count, limit, offset}``."""
        return JSON({"success": True, name: items, "count": total, "limit": self.limit,
                     "offset": self.offset})


def get_page(
    request: Request,
    limit: Annotated[str | None, Query(description="Page size, default 50, at most 1000.")] = None,
    offset: Annotated[str | None, Query(description="Rows to skip, default 0.")] = None,
) -> Page:
    settings: Settings = request.app.state.settings
    lim = _int_param(limit, "limit", settings.default_page_size, minimum=1)
    off = _int_param(offset, "offset", 0, minimum=0)
    return Page(min(lim, settings.max_page_size), off)


def _int_param(raw: str | None, name: str, default: int, *, minimum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer", name) from None
    if value < minimum:
        raise bad_request(f"{name} must be at least {minimum}", name)
    if value > 2**62:
        raise bad_request(f"{name} is too large", name)
    return value


Paging = Annotated[Page, Depends(get_page)]
# An optional query-string parameter, named as in the API (camelCase).
Q = Annotated[str | None, Query()]


def parse_bool(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    low = raw.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise bad_request(f'{name} must be "true" or "false"', name)
