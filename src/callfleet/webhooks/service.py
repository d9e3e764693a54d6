"""Webhook endpoints, their delivery log, manual retries and test events.

Services never commit; the route owns the transaction. Every read goes through the team
scope (teams/principal.py), so another team's endpoint or delivery is a 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.db.base import iso, utcnow
from callfleet.errors import bad_request, conflict, not_found
from callfleet.outbound import Network, check_url
from callfleet.teams.principal import Principal
from callfleet.wakeup import notify
from callfleet.webhooks import secrets as sec
from callfleet.webhooks.models import DELIVERY_STATUSES, WebhookDelivery, WebhookEndpoint
from callfleet.webhooks.outbox import TEST_EVENT
from callfleet.webhooks.signing import event_body

MAX_ENDPOINTS_PER_TEAM = 100


def endpoint_out(ep: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": ep.id, "team_id": ep.team_id, "url": ep.url, "description": ep.description,
        "events": list(ep.events or []), "enabled": ep.enabled,
        "secret": secret if secret is not None else sec.mask(ep.secret_hint),
        "created_at": iso(ep.created_at), "updated_at": iso(ep.updated_at),
    }


def delivery_out(d: WebhookDelivery) -> dict[str, Any]:
    try:
        payload = orjson.loads(d.payload)
    except orjson.JSONDecodeError:
        payload = {}
    return {
        "id": d.id, "webhook_id": d.endpoint_id, "team_id": d.team_id, "event_id": d.event_id,
        "event_type": d.event_type, "subject_id": d.subject_id, "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at) if d.status in ("pending", "sending")
        else None,
        "last_status_code": d.last_status_code, "last_error": d.last_error,
        "created_at": iso(d.created_at), "updated_at": iso(d.updated_at),
        "delivered_at": iso(d.delivered_at), "attempt_log": list(d.attempt_log or []),
        "payload": payload,
    }


def matches(events: list[str] | None, event_type: str) -> bool:
    return bool(events) and ("*" in events or event_type in events)  # type: ignore[operator]


async def _get(s: AsyncSession, p: Principal, endpoint_id: str,
               for_update: bool = False) -> WebhookEndpoint:
    return await p.scope.get(s, WebhookEndpoint, endpoint_id, for_update=for_update)


async def create_endpoint(s: AsyncSession, p: Principal, data: dict[str, Any],
                          box: sec.SecretBox,
                          allowed_networks: Sequence[Network] = ()) -> dict[str, Any]:
    if not data.get("url"):
        raise bad_request("url is required", "url")
    url = check_url(data["url"], allowed=allowed_networks, field="url")
    for name in ("events", "enabled"):
        if name in data and data[name] is None:
            raise bad_request(f"{name} must not be null", name)
    count = await s.scalar(p.scope.count(WebhookEndpoint))
    if int(count or 0) >= MAX_ENDPOINTS_PER_TEAM:
        raise conflict(f"A team may have at most {MAX_ENDPOINTS_PER_TEAM} webhook endpoints")
    secret = data.get("secret") or sec.generate_secret()
    now = utcnow()
    ep = WebhookEndpoint(
        id=ids.new_id("wh"), team_id=p.team_id, url=url,
        description=data.get("description"), events=data.get("events") or ["*"],
        secret_encrypted=box.encrypt(secret), secret_hint=sec.hint_of(secret),
        enabled=True if data.get("enabled") is None else bool(data["enabled"]),
        created_at=now, updated_at=now,
    )
    s.add(ep)
    await s.flush()
    return endpoint_out(ep, secret)


async def list_endpoints(s: AsyncSession, p: Principal, limit: int,
                         offset: int) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(WebhookEndpoint)
    total = int(await s.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await s.scalars(stmt.order_by(WebhookEndpoint.id).limit(limit).offset(offset))
    return [endpoint_out(e) for e in rows], total


async def get_endpoint(s: AsyncSession, p: Principal, endpoint_id: str) -> dict[str, Any]:
    return endpoint_out(await _get(s, p, endpoint_id))


async def update_endpoint(s: AsyncSession, p: Principal, endpoint_id: str,
                          data: dict[str, Any], box: sec.SecretBox,
                          allowed_networks: Sequence[Network] = ()) -> dict[str, Any]:
    ep = await _get(s, p, endpoint_id, for_update=True)
    for name in ("url", "events", "enabled", "secret"):
        if name in data and data[name] is None:
            raise bad_request(f"{name} must not be null", name)
    if "url" in data:
        ep.url = check_url(data["url"], allowed=allowed_networks, field="url")
    if "events" in data:
        ep.events = data["events"]
    if "enabled" in data:
        ep.enabled = bool(data["enabled"])
        if ep.enabled:
            notify(s, "webhooks")  # its waiting deliveries are due again
    if "description" in data:
        ep.description = data["description"]
    if "secret" in data:
        ep.secret_encrypted = box.encrypt(data["secret"])
        ep.secret_hint = sec.hint_of(data["secret"])
    ep.updated_at = utcnow()
    await s.flush()
    return endpoint_out(ep)


async def delete_endpoint(s: AsyncSession, p: Principal, endpoint_id: str) -> None:
    """The endpoint and its delivery log; deliveries not yet sent are dropped with it."""
    ep = await _get(s, p, endpoint_id, for_update=True)
    await s.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep.id))
    await s.delete(ep)


async def list_deliveries(
    s: AsyncSession, p: Principal, endpoint_id: str, *, status: str | None,
    event_type: str | None, limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    ep = await _get(s, p, endpoint_id)
    stmt = p.scope.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep.id)
    if status:
        if status not in DELIVERY_STATUSES:
            raise bad_request("status must be one of " + ", ".join(DELIVERY_STATUSES),
                              "status")
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_type:
        stmt = stmt.where(WebhookDelivery.event_type == event_type[:60])
    total = int(await s.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await s.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit)
                           .offset(offset))
    return [delivery_out(d) for d in rows], total


async def retry_delivery(s: AsyncSession, p: Principal, endpoint_id: str, delivery_id: str,
                         now: datetime) -> dict[str, Any]:
    """Send this delivery again as soon as possible (its body and event id unchanged).

    A failed or delivered delivery gets one more attempt now; when that fails it follows the
    normal schedule only while the 24 h window since the event is still open. A pending one
    is moved forward to now; one being sent right now is a 409."""
    ep = await _get(s, p, endpoint_id)
    d = await p.scope.get(s, WebhookDelivery, delivery_id, for_update=True)
    if d.endpoint_id != ep.id:
        raise not_found("Delivery")
    if d.status == "sending" and d.next_attempt_at is not None and d.next_attempt_at > now:
        raise conflict("This delivery is being sent right now")
    d.status = "pending"
    d.next_attempt_at = now
    d.lease_owner = None
    d.updated_at = now
    notify(s, "webhooks")
    await s.flush()
    return delivery_out(d)


async def test_delivery(s: AsyncSession, p: Principal, endpoint_id: str,
                        now: datetime) -> dict[str, Any]:
    """A ``webhook.test`` event to this endpoint only (also when it is disabled, and whatever
    its ``events`` filter), signed and retried like any other."""
    ep = await _get(s, p, endpoint_id)
    event_id = ids.new_id("evt")
    data = {"webhook_id": ep.id, "message": "This is a test event from callfleet."}
    d = WebhookDelivery(
        id=ids.new_id("whd"), team_id=ep.team_id, endpoint_id=ep.id, event_id=event_id,
        event_type=TEST_EVENT, subject_id=None, event_seq=0, event_created_at=now,
        payload=event_body(event_id, TEST_EVENT, now, data), status="pending", attempts=0,
        next_attempt_at=now, attempt_log=[], created_at=now, updated_at=now,
    )
    s.add(d)
    notify(s, "webhooks")
    await s.flush()
    return delivery_out(d)
