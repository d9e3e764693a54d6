"""Users of the web app and their roles in teams.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults: 64 MiB, 3 passes); hashing
runs in a worker thread so a sign-in never stalls the event loop. A team always keeps at
least one owner.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.db.base import iso, utcnow
from callfleet.errors import ApiError, bad_request, conflict, not_found
from callfleet.teams.models import ROLES, Membership, User, WebSession
from callfleet.teams.principal import Principal

MIN_PASSWORD = 8
MAX_PASSWORD = 200
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\x00-\x1f\x7f]{1,64}@[A-Za-z0-9-]{1,63}"
                    r"(?:\.[A-Za-z0-9-]{1,63})+$")
_HASHER = PasswordHasher()
# Verified against when the email is unknown, so a wrong email takes as long as a wrong
# password (no user enumeration by timing).
_DUMMY_HASH = _HASHER.hash("callfleet-no-such-user")

# What each role may do beyond the CRM, campaigns and calls, which every member may use.
MANAGE = {
    "owner": frozenset({"api_keys", "webhooks", "carriers", "members", "team", "owners"}),
    "admin": frozenset({"api_keys", "webhooks", "carriers", "members", "team"}),
    "member": frozenset(),
}


def can(role: str, what: str) -> bool:
    """Whether ``role`` may manage ``what`` (``api_keys``, ``webhooks``, ``carriers``,
    ``members``, ``team`` settings, or ``owners``: grant or take the owner role)."""
    return what in MANAGE.get(role, frozenset())


def normalize_email(raw: str | None) -> str:
    email = (raw or "").strip().lower()
    if not email:
        raise bad_request("Email is required", "email")
    if len(email) > 320 or not _EMAIL.match(email):
        raise bad_request("Email is not a valid email address", "email")
    return email


def check_password(password: str | None) -> str:
    if password is None or not password.strip():
        raise bad_request("Password is required", "password")
    if len(password) < MIN_PASSWORD:
        raise bad_request(f"Password must be at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise bad_request(f"Password must be at most {MAX_PASSWORD} characters", "password")
    if "\x00" in password:
        raise bad_request("Password must not contain NUL characters", "password")
    return password


def check_role(role: str | None) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise bad_request("Role must be owner, admin or member", "role")
    return role


def clean_name(name: str | None) -> str | None:
    name = (name or "").replace("\x00", "").strip()
    if len(name) > 200:
        raise bad_request("Name must be at most 200 characters", "name")
    return name or None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def password_matches(stored: str | None, password: str) -> bool:
    """Verifies in a worker thread; an unknown user is checked against a dummy hash."""
    def verify() -> bool:
        try:
            return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.scalars(select(User).where(User.email == email))).first()


async def create_user(
    session: AsyncSession, email: str | None, password: str | None, name: str | None = None,
) -> User:
    email = normalize_email(email)
    password = check_password(password)
    if await user_by_email(session, email) is not None:
        raise conflict("A user with this email already exists")
    now = utcnow()
    user = User(id=ids.new_id("user"), email=email, name=clean_name(name),
                password_hash=await hash_password(password), created_at=now, updated_at=now)
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: User, password: str | None,
                       keep_session: str | None = None) -> None:
    """A new password ends every other session of the user (``keep_session`` stays)."""
    user.password_hash = await hash_password(check_password(password))
    user.updated_at = utcnow()
    stmt = delete(WebSession).where(WebSession.user_id == user.id)
    if keep_session is not None:
        stmt = stmt.where(WebSession.id != keep_session)
    await session.execute(stmt)
    await session.flush()


async def add_member(session: AsyncSession, team_id: str, user_id: str, role: str) -> Membership:
    role = check_role(role)
    existing = await session.get(Membership, (team_id, user_id))
    if existing is not None:
        raise conflict("This user is already a member of the team")
    m = Membership(team_id=team_id, user_id=user_id, role=role, created_at=utcnow())
    session.add(m)
    await session.flush()
    return m


async def first_membership(session: AsyncSession, user_id: str) -> Membership | None:
    """The team a user signs in to: their oldest membership."""
    return (await session.scalars(
        select(Membership).where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Membership.team_id).limit(1))).first()


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str
    name: str | None
    role: str
    joined_at: str | None


async def list_members(session: AsyncSession, p: Principal) -> list[Member]:
    rows = await session.execute(
        p.scope.select(Membership, User.email, User.name)
        .join(User, User.id == Membership.user_id).order_by(Membership.created_at, User.email))
    return [Member(m.user_id, email, name, m.role, iso(m.created_at))
            for m, email, name in rows]


async def _membership(session: AsyncSession, p: Principal, user_id: str) -> Membership:
    if not ids.is_valid("user", user_id):
        raise not_found("Member")
    m = (await session.scalars(p.scope.select(Membership).where(Membership.user_id == user_id)
                               .with_for_update())).first()
    if m is None:
        raise not_found("Member")
    return m


async def _owners(session: AsyncSession, p: Principal) -> int:
    stmt = p.scope.count(Membership).where(Membership.role == "owner")
    return int(await session.scalar(stmt) or 0)


def _may_touch(actor_role: str, target_role: str, new_role: str | None = None) -> None:
    if not can(actor_role, "members"):
        raise ApiError(403, "Only owners and admins manage members")
    if "owner" in (target_role, new_role) and not can(actor_role, "owners"):
        raise ApiError(403, "Only an owner can grant or take the owner role", {
            "role": "Only an owner can grant or take the owner role"})


async def change_role(session: AsyncSession, p: Principal, actor_role: str, user_id: str,
                      role: str | None) -> Membership:
    new_role = check_role(role)
    m = await _membership(session, p, user_id)
    _may_touch(actor_role, m.role, new_role)
    if m.role == "owner" and new_role != "owner" and await _owners(session, p) <= 1:
        raise conflict("A team needs at least one owner; make someone else owner first")
    m.role = new_role
    await session.flush()
    return m


async def remove_member(session: AsyncSession, p: Principal, actor_role: str,
                        user_id: str) -> None:
    """Removes the membership and ends the user's sessions in this team."""
    m = await _membership(session, p, user_id)
    _may_touch(actor_role, m.role)
    if m.role == "owner" and await _owners(session, p) <= 1:
        raise conflict("A team needs at least one owner; make someone else owner first")
    await session.execute(p.scope.delete(WebSession).where(WebSession.user_id == user_id))
    await session.delete(m)
    await session.flush()


def member_out(m: Member) -> dict[str, Any]:
    return {"user_id": m.user_id, "email": m.email, "name": m.name, "role": m.role,
            "joined_at": m.joined_at}
