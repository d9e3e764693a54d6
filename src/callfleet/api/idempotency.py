"""``Idempotency-Key`` on creates: a repeat with the same key and body replays the first
response and creates nothing.

The stored response is written in the same transaction as the resource it describes, so a
crash can never leave one without the other. A repeat with the same key but a different
request is a 409, as is a repeat that races the first (the loser sees the unique key).

A response that carries a secret (a webhook's signing secret) is stored sealed: encrypted with
the deployment's secret key (``callfleet.secrets``), like the secret itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.api.responses import JSON
from callfleet.errors import bad_request, conflict
from callfleet.secrets import SecretBox, secret_box
from callfleet.teams.models import IdempotencyRecord
from callfleet.teams.principal import Principal, TeamScope

SEALED = "sealed:"  # prefix of a stored body encrypted with the secret box


async def respond_created(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    create: Callable[[], Awaitable[dict[str, Any]]],
    status_code: int = 201,
    seal: SecretBox | None = None,
) -> JSON:
    """Run ``create`` (which returns the response body), commit, and answer ``status_code``.
    With ``seal``, the body kept for replays is encrypted with it."""
    key = request.headers.get("idempotency-key")
    if key is None:
        body = await create()
        await session.commit()
        return JSON(body, status_code=status_code)
    key = key.strip()
    if not key or len(key) > 255:
        raise bad_request("Idempotency-Key must be 1-255 characters", "Idempotency-Key")
    raw = await request.body()
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"?"
        + request.url.query.encode() + b"\n" + raw
    ).hexdigest()
    replay = await _replay(session, principal.team_id, key, digest, seal)
    if replay is not None:
        return replay
    body = await create()
    stored = orjson.dumps(body).decode()
    if seal is not None:
        stored = SEALED + seal.encrypt(stored)
    session.add(
        IdempotencyRecord(
            team_id=principal.team_id, key=key, request_hash=digest,
            status_code=status_code, response_body=stored,
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        replay = await _replay(session, principal.team_id, key, digest, seal)
        if replay is not None:
            return replay
        raise
    return JSON(body, status_code=status_code)


async def _replay(session: AsyncSession, team_id: str, key: str, digest: str,
                  seal: SecretBox | None) -> JSON | None:
    rec = await session.scalar(
        TeamScope(team_id).select(IdempotencyRecord).where(IdempotencyRecord.key == key)
    )
    if rec is None:
        return None
    if rec.request_hash != digest:
        raise conflict("Idempotency-Key was already used with a different request")
    stored = rec.response_body or "{}"
    if stored.startswith(SEALED):
        stored = (seal or secret_box()).decrypt(stored.removeprefix(SEALED))
    return JSON(
        orjson.loads(stored),
        status_code=rec.status_code or 201,
        headers={"Idempotent-Replayed": "true"},
    )
