"""Teams and API keys (SPEC 1: a key is shown once; only its SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.db.base import iso, utcnow
from callfleet.dialer import rules
from callfleet.errors import bad_request, conflict
from callfleet.outbound import Network, check_url
from callfleet.secrets import secret_box
from callfleet.teams.models import ApiKey, Team
from callfleet.teams.principal import Principal

SCOPES = ("read", "write", "owner")
_ALPHABET = string.ascii_letters + string.digits
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


TEAM_SETTINGS = ("legal_hours_start", "legal_hours_end", "max_concurrent_calls",
                 "calls_per_second", "llm_base_url", "llm_model", "speech_base_url",
                 "recording_retention_days")
# Write-only keys, encrypted at rest: the response says only whether each is set.
SECRET_SETTINGS = ("llm_api_key", "speech_api_key", "deepgram_api_key", "cartesia_api_key",
                   "elevenlabs_api_key")


def team_out(t: Team) -> dict[str, Any]:
    settings = t.settings or {}
    return {
        "id": t.id,
        "slug": t.slug,
        "account_slug": t.slug,
        "name": t.name,
        "settings": {**{k: settings.get(k) for k in TEAM_SETTINGS},
                     # The team's keys are write-only: never returned, never logged.
                     **{f"{k}_set": bool(settings.get(k)) for k in SECRET_SETTINGS}},
        "active_calls": t.active_calls,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


async def update_team(
    session: AsyncSession, team_id: str, name: str | None, changes: dict[str, Any],
    legal_floor: tuple[str, str], allowed_networks: Sequence[Network] = (),
) -> Team:
    """Rename the team or change its dialing settings. Legal hours may only narrow the
    operator's legal hours (``CALLFLEET_LEGAL_HOURS_START/END``), never widen them; ``null``
    returns a setting to the default."""
    team = await session.get(Team, team_id)
    assert team is not None
    if name is not None:
        name = name.replace("\x00", "").strip()  # PostgreSQL stores no NUL
        if not name or len(name) > 200:
            raise bad_request("name must be 1-200 characters", "name")
        team.name = name
    settings = dict(team.settings or {})
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    floor_start, floor_end = (rules.parse_hhmm(v) for v in legal_floor)
    try:
        start = rules.parse_hhmm(settings.get("legal_hours_start", legal_floor[0]))
    except (ValueError, TypeError):
        raise bad_request("legalHoursStart must be HH:MM", "settings.legalHoursStart") from None
    try:
        end = rules.parse_hhmm(settings.get("legal_hours_end", legal_floor[1]))
    except (ValueError, TypeError):
        raise bad_request("legalHoursEnd must be HH:MM", "settings.legalHoursEnd") from None
    if start < floor_start or end > floor_end or start >= end:
        raise bad_request(
            f"legal hours must lie within {rules.format_hhmm(floor_start)}-"
            f"{rules.format_hhmm(floor_end)} (they can narrow, never widen, the legal hours)",
            "settings.legalHoursStart")
    for key, name in (("llm_base_url", "llmBaseUrl"), ("speech_base_url", "speechBaseUrl")):
        if key in changes and isinstance(changes[key], str) and changes[key].strip():
            # A URL callfleet will call: checked against the outbound policy
            # (callfleet.outbound).
            settings[key] = check_url(changes[key], allowed=allowed_networks,
                                      field=f"settings.{name}")
    for key in ("llm_base_url", "llm_model", "speech_base_url", *SECRET_SETTINGS):
        if isinstance(settings.get(key), str):
            settings[key] = settings[key].strip()
            if not settings[key]:
                settings.pop(key)
    for key in SECRET_SETTINGS:
        if key in changes and settings.get(key):
            # Kept encrypted at rest (callfleet.secrets); only the client using it decrypts.
            settings[key] = secret_box().encrypt(settings[key])
    for key in ("legal_hours_start", "legal_hours_end"):
        if key in settings:
            settings[key] = rules.format_hhmm(rules.parse_hhmm(settings[key]))
    team.settings = settings
    team.updated_at = utcnow()
    await session.flush()
    return team


def hash_key(token: str) -> str:
    """API keys are 190-bit random tokens, so a plain SHA-256 is a safe at-rest form."""
    return hashlib.sha256(token.encode()).hexdigest()


def key_out(k: ApiKey, token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": k.id,
        "team_id": k.team_id,
        "name": k.name,
        "prefix": k.key_prefix,
        "scopes": list(k.scopes or []),
        "expires_at": iso(k.expires_at),
        "revoked_at": iso(k.revoked_at),
        "created_at": iso(k.created_at),
    }
    if token is not None:
        out["key"] = token
    return out


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-")
    return slug or "team"


def new_token() -> str:
    return "tk_live_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))


async def create_team(
    session: AsyncSession, name: str, slug: str | None = None
) -> tuple[Team, str]:
    """A team and its first API key; returns the key's token (the only time it is seen)."""
    name = name.replace("\x00", "").strip()  # PostgreSQL stores no NUL
    if not name or len(name) > 200:
        raise bad_request("name must be 1-200 characters", "name")
    if slug is not None:
        slug = slug.strip().lower()
        if not _SLUG.match(slug):
            raise bad_request("slug must be lower-case letters, digits and dashes", "slug")
        if await session.scalar(select(Team.id).where(Team.slug == slug)):
            raise conflict(f"A team with slug {slug!r} already exists")
    else:
        base = slugify(name)
        taken = set(
            await session.scalars(
                select(Team.slug).where((Team.slug == base) | Team.slug.like(f"{base}-%"))
            )
        )
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
    team = Team(id=ids.new_id("team"), slug=slug, name=name, settings={})
    session.add(team)
    await session.flush()
    _, token = await create_key(session, team.id, name="default")
    return team, token


async def create_key(
    session: AsyncSession,
    team_id: str,
    *,
    name: str | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    name = (name or "").replace("\x00", "").strip() or None  # PostgreSQL stores no NUL
    scopes = sorted(set(scopes or []))
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise bad_request("scopes may contain only " + ", ".join(SCOPES), "scopes")
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at is not None:
        try:
            expires_at = expires_at.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
            raise bad_request("expiresAt is out of range", "expiresAt") from None
    if expires_at is not None and expires_at <= utcnow():
        raise bad_request("expiresAt must be in the future", "expiresAt")
    token = new_token()
    key = ApiKey(
        id=ids.new_id("key"), team_id=team_id, name=name, key_hash=hash_key(token),
        key_prefix=token[:12], scopes=scopes, expires_at=expires_at, created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    return key, token


async def list_keys(
    session: AsyncSession, p: Principal, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(ApiKey)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(ApiKey.id).limit(limit).offset(offset))
    return [key_out(k) for k in rows], total


async def revoke_key(session: AsyncSession, p: Principal, key_id: str) -> dict[str, Any]:
    key = await p.scope.get(session, ApiKey, key_id, for_update=True)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    await session.flush()
    return key_out(key)


async def get_team(session: AsyncSession, team_id: str) -> Team | None:
    return await session.get(Team, team_id)
