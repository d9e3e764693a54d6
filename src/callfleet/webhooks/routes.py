"""HTTP for webhooks (SPEC 7): parse, call webhooks.service, wrap in the envelope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from callfleet.api.deps import Auth, Paging, Q, ReadSession, WriteSession, get_settings_dep
from callfleet.api.idempotency import respond_created
from callfleet.api.responses import JSON
from callfleet.api.schemas import OkOut, errors
from callfleet.outbound import allowed_networks
from callfleet.webhooks import service as svc
from callfleet.webhooks.schemas import (
    DeliveryEnvelope,
    DeliveryList,
    WebhookEnvelope,
    WebhookIn,
    WebhookList,
)
from callfleet.webhooks.secrets import SecretBox, secret_box

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


def _box(request: Request) -> SecretBox:
    return secret_box(get_settings_dep(request))


@router.post("", status_code=201, response_model=None,
             responses={201: {"model": WebhookEnvelope}, **errors(403, 409)})
async def create_webhook(body: WebhookIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Create an endpoint. The response is the only one that shows ``secret`` in full (and
    its replay for the same ``Idempotency-Key``, kept encrypted like the secret itself)."""
    p.check_team(body.team_id, body.account_slug, required=False)
    box = _box(request)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        return {"success": True, "webhook": await svc.create_endpoint(
            s, p, data, box, allowed_networks(get_settings_dep(request)))}

    return await respond_created(request, s, p, make, seal=box)


@router.get("", response_model=None, responses={200: {"model": WebhookList}, **errors(403)})
async def list_webhooks(p: Auth, s: ReadSession, page: Paging, teamId: Q = None,
                        accountSlug: Q = None) -> JSON:
    p.check_team(teamId, accountSlug, required=False)
    items, total = await svc.list_endpoints(s, p, page.limit, page.offset)
    return page.respond("webhooks", items, total)


@router.get("/{webhook_id}", response_model=None,
            responses={200: {"model": WebhookEnvelope}, **errors(403, 404)})
async def get_webhook(webhook_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "webhook": await svc.get_endpoint(s, p, webhook_id)})


@router.patch("/{webhook_id}", response_model=None,
              responses={200: {"model": WebhookEnvelope}, **errors(403, 404)})
async def update_webhook(webhook_id: str, body: WebhookIn, p: Auth, s: WriteSession,
                         request: Request) -> JSON:
    p.check_team(body.team_id, body.account_slug, required=False)
    out = await svc.update_endpoint(s, p, webhook_id, body.model_dump(exclude_unset=True),
                                    _box(request), allowed_networks(get_settings_dep(request)))
    await s.commit()
    return JSON({"success": True, "webhook": out})


@router.delete("/{webhook_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404)})
async def delete_webhook(webhook_id: str, p: Auth, s: WriteSession) -> JSON:
    await svc.delete_endpoint(s, p, webhook_id)
    await s.commit()
    return JSON({"success": True})


@router.get("/{webhook_id}/deliveries", response_model=None,
            responses={200: {"model": DeliveryList}, **errors(403, 404)})
async def list_deliveries(webhook_id: str, p: Auth, s: ReadSession, page: Paging,
                          status: Q = None, eventType: Q = None) -> JSON:
    """The delivery log, newest first; ``status`` = pending|sending|delivered|failed."""
    items, total = await svc.list_deliveries(s, p, webhook_id, status=status,
                                             event_type=eventType, limit=page.limit,
                                             offset=page.offset)
    return page.respond("deliveries", items, total)


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", response_model=None,
             responses={200: {"model": DeliveryEnvelope}, **errors(403, 404, 409)})
async def retry_delivery(webhook_id: str, delivery_id: str, p: Auth, s: WriteSession,
                         request: Request) -> JSON:
    """Queue the delivery for another attempt now (same body, same event id)."""
    out = await svc.retry_delivery(s, p, webhook_id, delivery_id, request.app.state.clock.now())
    await s.commit()
    return JSON({"success": True, "delivery": out})


@router.post("/{webhook_id}/test", response_model=None,
             responses={200: {"model": DeliveryEnvelope}, **errors(403, 404)})
async def test_webhook(webhook_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Queue a ``webhook.test`` event to this endpoint only; returns its delivery (watch it
    in the delivery log)."""
    out = await svc.test_delivery(s, p, webhook_id, request.app.state.clock.now())
    await s.commit()
    return JSON({"success": True, "delivery": out})
