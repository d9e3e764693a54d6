"""Browser sessions, one-time sign-in links and the sign-in rate limit.

A session cookie carries a 256-bit random token; the database keeps only its SHA-256, so a
database dump signs no one in. Sessions live in the database so that signing out, removing
a member or changing a password takes effect in every process at once. A session expires
after ``SESSION_IDLE`` without use and at ``SESSION_MAX`` after sign-in in any case.
(docs/decisions/0031-web-sign-in.md)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.db.base import utcnow
from callfleet.errors import not_found
from callfleet.teams.models import Membership, SignInFailure, SignInLink, Team, User, WebSession
from callfleet.teams.principal import Principal
from callfleet.teams.users import check_role

SESSION_IDLE = timedelta(days=7)
SESSION_MAX = timedelta(days=30)
TOUCH_EVERY = timedelta(minutes=5)  # how stale last_seen_at may get (one write per 5 min)
LINK_TTL = timedelta(days=7)
LOGIN_LINK_TTL = timedelta(hours=24)
LINK_PURPOSES = ("invite", "login")

# Sign-in rate limit: failures counted per email and per client address over a window.
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 10
MAX_FAILURES_PER_ADDRESS = 100


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SignedIn:
    """The user of a request, in the team their session acts for."""

    session_id: str
    user_id: str
    email: str
    name: str | None
    role: str
    team_id: str
    team_slug: str
    team_name: str
    csrf_token: str
    stale: bool = False  # last seen over TOUCH_EVERY ago: touch_session slides its expiry

    @property
    def principal(self) -> Principal:
        """The same Principal an API key gives, so pages call the API's service functions."""
        return Principal(self.team_id, self.team_slug, self.user_id)

    @property
    def display_name(self) -> str:
        return self.name or self.email


async def create_session(
    session: AsyncSession, user_id: str, team_id: str, *, ip: str | None = None,
    user_agent: str | None = None, now: datetime | None = None,
) -> str:
    """A new session; returns the cookie's token (shown to nobody else, stored hashed)."""
    now = now or utcnow()
    token = new_token()
    session.add(WebSession(
        id=digest(token), user_id=user_id, team_id=team_id, csrf_token=secrets.token_hex(32),
        created_at=now, last_seen_at=now, expires_at=now + SESSION_IDLE,
        ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:300] or None))
    await session.flush()
    return token


async def load_session(session: AsyncSession, token: str | None,
                       now: datetime | None = None) -> SignedIn | None:
    """The signed-in user of a cookie token, in one statement; None when the token is
    unknown, expired, or its user is no longer a member of the session's team."""
    if not token or len(token) > 100:
        return None
    now = now or utcnow()
    row = (await session.execute(
        select(WebSession, User.email, User.name, Membership.role, Team.slug, Team.name)
        .join(User, User.id == WebSession.user_id)
        .join(Membership, (Membership.user_id == WebSession.user_id)
              & (Membership.team_id == WebSession.team_id))  # tenancy: system
        .join(Team, Team.id == WebSession.team_id)  # tenancy: system
        .where(WebSession.id == digest(token)))).first()
    if row is None:
        return None
    ws, email, name, role, slug, team_name = row
    if ws.expires_at <= now or ws.created_at + SESSION_MAX <= now:
        return None
    return SignedIn(ws.id, ws.user_id, email, name, role, ws.team_id, slug, team_name,
                    ws.csrf_token, stale=ws.last_seen_at < now - TOUCH_EVERY)


async def touch_session(session: AsyncSession, session_id: str,
                        now: datetime | None = None) -> None:
    """Slide the idle expiry, at most once per ``TOUCH_EVERY`` (a conditional UPDATE, so a
    page view usually writes nothing)."""
    now = now or utcnow()
    await session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.last_seen_at < now - TOUCH_EVERY)
        .values(last_seen_at=now, expires_at=now + SESSION_IDLE))


async def end_session(session: AsyncSession, token: str | None) -> None:
    if token and len(token) <= 100:
        await session.execute(delete(WebSession).where(WebSession.id == digest(token)))


async def end_user_sessions(session: AsyncSession, user_id: str) -> int:
    """Sign a user out everywhere (every team, every browser)."""
    result = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def purge_expired(session: AsyncSession, now: datetime | None = None) -> None:
    """Forget expired sessions, used or expired links and old failures."""
    now = now or utcnow()
    await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    await session.execute(delete(SignInLink).where(SignInLink.expires_at <= now))
    await session.execute(delete(SignInFailure).where(SignInFailure.at <= now - FAILURE_WINDOW))


# ---------------------------------------------------------------- one-time links


async def create_link(
    session: AsyncSession, team_id: str, *, purpose: str, role: str = "member",
    user_id: str | None = None, email: str | None = None, created_by: str | None = None,
    ttl: timedelta = LINK_TTL, now: datetime | None = None,
) -> str:
    """A one-time link's token: ``invite`` makes whoever opens it a member of the team with
    ``role`` (the invitee chooses email and password unless ``email`` is set); ``login``
    signs ``user_id`` in to the team."""
    assert purpose in LINK_PURPOSES, purpose
    if purpose == "login" and user_id is None:
        raise ValueError("a login link names its user")
    now = now or utcnow()
    token = new_token()
    session.add(SignInLink(
        id=ids.new_id("link"), token_hash=digest(token), team_id=team_id, purpose=purpose,
        role=check_role(role), user_id=user_id, email=email, created_by=created_by,
        created_at=now, expires_at=now + ttl))
    await session.flush()
    return token


@dataclass(frozen=True)
class OpenLink:
    id: str
    team_id: str
    team_name: str
    purpose: str
    role: str
    user_id: str | None
    email: str | None
    user_email: str | None


async def find_link(session: AsyncSession, token: str | None,
                    now: datetime | None = None) -> OpenLink | None:
    """An unused, unexpired link, or None."""
    if not token or len(token) > 100:
        return None
    now = now or utcnow()
    row = (await session.execute(
        select(SignInLink, Team.name, User.email)
        .join(Team, Team.id == SignInLink.team_id)  # tenancy: system
        .outerjoin(User, User.id == SignInLink.user_id)
        .where(SignInLink.token_hash == digest(token)))).first()
    if row is None:
        return None
    link, team_name, user_email = row
    if link.used_at is not None or link.expires_at <= now:
        return None
    return OpenLink(link.id, link.team_id, team_name, link.purpose, link.role, link.user_id,
                    link.email, user_email)


async def use_link(session: AsyncSession, link_id: str, now: datetime | None = None) -> bool:
    """Marks the link used; False when another request used it first (a conditional UPDATE,
    so two clicks cannot both sign in)."""
    now = now or utcnow()
    result = await session.execute(
        update(SignInLink).where(SignInLink.id == link_id, SignInLink.used_at.is_(None),
                                 SignInLink.expires_at > now)
        .values(used_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def pending_invites(session: AsyncSession, p: Principal,
                          now: datetime | None = None) -> list[SignInLink]:
    now = now or utcnow()
    rows = await session.scalars(
        p.scope.select(SignInLink).where(SignInLink.purpose == "invite", SignInLink.used_at.is_(None),
                                    SignInLink.expires_at > now)
        .order_by(SignInLink.created_at.desc()).limit(100))
    return list(rows)


async def revoke_invite(session: AsyncSession, p: Principal, link_id: str) -> None:
    if not ids.is_valid("link", link_id):
        raise not_found("Invitation")
    link = (await session.scalars(p.scope.select(SignInLink).where(SignInLink.id == link_id))
            ).first()
    if link is None:
        raise not_found("Invitation")
    await session.delete(link)
    await session.flush()


# ---------------------------------------------------------------- rate limit


def _keys(email: str | None, address: str | None) -> list[tuple[str, int]]:
    keys = []
    if email:
        keys.append((digest("email:" + email.strip().lower()), MAX_FAILURES_PER_EMAIL))
    if address:
        keys.append((digest("ip:" + address), MAX_FAILURES_PER_ADDRESS))
    return keys


async def retry_after(session: AsyncSession, email: str | None, address: str | None,
                      now: datetime | None = None) -> int:
    """Seconds until this email and address may try again (0: now)."""
    now = now or utcnow()
    wait = 0.0
    for key, limit in _keys(email, address):
        row = (await session.execute(
            select(func.count(), func.min(SignInFailure.at))
            .where(SignInFailure.key == key, SignInFailure.at > now - FAILURE_WINDOW))).first()
        if row is not None and row[0] >= limit:
            # Counting from the oldest failure in the window is approximate (it frees one
            # slot, not all), which errs on the side of letting a person retry soon.
            wait = max(wait, (row[1] + FAILURE_WINDOW - now).total_seconds())
    return max(1, int(wait) + 1) if wait > 0 else 0


async def record_failure(session: AsyncSession, email: str | None, address: str | None,
                         now: datetime | None = None) -> None:
    now = now or utcnow()
    for key, _ in _keys(email, address):
        session.add(SignInFailure(key=key, at=now))
    await session.flush()


async def clear_failures(session: AsyncSession, email: str) -> None:
    keys = [k for k, _ in _keys(email, None)]
    await session.execute(delete(SignInFailure).where(SignInFailure.key.in_(keys)))
