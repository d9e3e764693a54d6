from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime, utcnow


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Calls in progress across the team's campaigns (see Campaign.active_calls).
    active_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Pacing (calls started per second): token bucket state, see dialer.rules.pacing_tokens.
    pacing_tokens: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    pacing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped with every change to the team's custom field definitions, so a process that
    # remembers them can check, inside its own write, that they did not change
    # (crm.service.create_contact; migration 0010).
    custom_fields_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """A team's bearer token. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_keys"
    id_prefix: ClassVar[str] = "key"
    label: ClassVar[str] = "API key"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(20))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    """The first response to a create sent with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_keys"

    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)


# ---------------------------------------------------------------- web app sign-in
# Tables of the people who sign in to the web app: users, their team memberships, their
# browser sessions, one-time sign-in links and failed sign-in attempts (migration 0018).
#
# Secrets are never stored in clear: passwords as argon2 hashes, session and link tokens as
# SHA-256 digests (they are 256-bit random values, so a plain digest is a safe at-rest form,
# as for API keys).

ROLES = ("owner", "admin", "member")


class User(Base):
    """A person. The email is stored lower-cased and is unique across the deployment; one
    user may belong to several teams."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Membership(Base):
    """A user's role in a team: ``owner``, ``admin`` or ``member`` (a member cannot manage
    API keys, webhooks, carriers or members)."""

    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_team_members_user_id", "user_id"),)


class WebSession(Base):
    """A signed-in browser. ``id`` is the SHA-256 of the cookie's token; the CSRF token is
    sent in every form and htmx request of this session."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        Index("ix_web_sessions_user_id", "user_id"),
        Index("ix_web_sessions_expires_at", "expires_at"),
    )


class SignInLink(Base):
    """A one-time link: an invitation to a team (``invite``, with the role it grants), or a
    sign-in for an existing user (``login``). Used once, then ``used_at`` is set."""

    __tablename__ = "sign_in_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str | None] = mapped_column(String(320))
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sign_in_links_team_id", "team_id"),)


class SignInFailure(Base):
    """One failed sign-in, by the SHA-256 of what it is counted against (the email, and the
    client address): the sign-in rate limit counts these across every process."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sign_in_failures_key_at", "key", "at"),)
