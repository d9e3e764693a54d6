"""HTTP for campaigns (seed page 003): parse, call the service, wrap."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from callfleet.api.deps import Auth, Paging, Q, ReadSession, WriteSession, get_db
from callfleet.api.idempotency import respond_created
from callfleet.api.responses import JSON
from callfleet.api.schemas import OkOut, errors
from callfleet.campaigns import lifecycle
from callfleet.campaigns import service as svc
from callfleet.campaigns.run import run_campaign
from callfleet.campaigns.schemas import (
    AddContactsIn,
    AddContactsOut,
    CampaignEnvelope,
    CampaignIn,
    CampaignList,
    DashboardOut,
    EnrollmentList,
    RunIn,
    RunOut,
)

router = APIRouter(prefix="/api/crm/campaigns", tags=["campaigns"])


def _now(request: Request) -> Any:
    return request.app.state.clock.now()


@router.get("", response_model=None, responses={200: {"model": CampaignList}, **errors(403)})
async def list_campaigns(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, status: Q = None,
    assistantId: Q = None, deleted: Q = None,
) -> JSON:
    p.check_team(teamId)
    items, total = await svc.list_campaigns(
        s, p, status=status, assistant_id=assistantId, deleted=deleted, limit=page.limit,
        offset=page.offset)
    return page.respond("campaigns", items, total)


@router.post("", status_code=201, response_model=None,
             responses={201: {"model": CampaignEnvelope}, **errors(403, 404, 409)})
async def create_campaign(body: CampaignIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    p.check_team(body.team_id)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        return {"success": True,
                "campaign": await svc.create_campaign(s, p, data, _now(request))}

    return await respond_created(request, s, p, make)


@router.get("/{campaign_id}", response_model=None,
            responses={200: {"model": CampaignEnvelope}, **errors(403, 404)})
async def get_campaign(campaign_id: str, p: Auth, s: ReadSession) -> JSON:
    c = await svc.owned(s, p, campaign_id, include_deleted=True)
    return JSON({"success": True, "campaign": await svc.render(s, c)})


async def _update(campaign_id: str, body: CampaignIn, p: Any, s: Any, request: Request) -> JSON:
    p.check_team(body.team_id, required=False)
    out = await svc.update_campaign(s, p, campaign_id, body.model_dump(exclude_unset=True),
                                    _now(request))
    await s.commit()
    return JSON({"success": True, "campaign": out})


@router.patch("/{campaign_id}", response_model=None,
              responses={200: {"model": CampaignEnvelope}, **errors(403, 404, 409)})
async def patch_campaign(campaign_id: str, body: CampaignIn, p: Auth, s: WriteSession,
                         request: Request) -> JSON:
    return await _update(campaign_id, body, p, s, request)


@router.put("/{campaign_id}", response_model=None,
            responses={200: {"model": CampaignEnvelope}, **errors(403, 404, 409)})
async def put_campaign(campaign_id: str, body: CampaignIn, p: Auth, s: WriteSession,
                       request: Request) -> JSON:
    return await _update(campaign_id, body, p, s, request)


@router.delete("/{campaign_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404, 409)})
async def delete_campaign(campaign_id: str, p: Auth, s: WriteSession) -> JSON:
    await svc.delete_campaign(s, p, campaign_id)
    await s.commit()
    return JSON({"success": True})


async def _action(campaign_id: str, target: str, p: Any, s: Any, request: Request) -> JSON:
    c = await svc.owned(s, p, campaign_id, for_update=True)
    await lifecycle.transition(s, c, target, _now(request), reason=f"{target} through the API")
    await s.commit()
    return JSON({"success": True, "campaign": await svc.render(s, c)})


@router.post("/{campaign_id}/pause", response_model=None,
             responses={200: {"model": CampaignEnvelope}, **errors(403, 404, 409)})
async def pause(campaign_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    return await _action(campaign_id, "paused", p, s, request)


@router.post("/{campaign_id}/resume", response_model=None,
             responses={200: {"model": CampaignEnvelope}, **errors(403, 404, 409)})
async def resume(campaign_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    return await _action(campaign_id, "running", p, s, request)


@router.post("/{campaign_id}/cancel", response_model=None,
             responses={200: {"model": CampaignEnvelope}, **errors(403, 404, 409)})
async def cancel(campaign_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    return await _action(campaign_id, "cancelled", p, s, request)


@router.post("/{campaign_id}/contacts", response_model=None,
             responses={200: {"model": AddContactsOut}, **errors(403, 404, 409)})
async def add_contacts(campaign_id: str, body: AddContactsIn, p: Auth, s: WriteSession) -> JSON:
    out = await svc.add_contacts(s, p, campaign_id, body.contact_ids, body.priority)
    await s.commit()
    return JSON(out)


@router.get("/{campaign_id}/contacts", response_model=None,
            responses={200: {"model": EnrollmentList}, **errors(403, 404)})
async def list_enrollments(campaign_id: str, p: Auth, s: ReadSession, page: Paging,
                           status: Q = None) -> JSON:
    items, total = await svc.list_enrollments(s, p, campaign_id, status, page.limit,
                                              page.offset)
    return page.respond("contacts", items, total)


@router.post("/{campaign_id}/run", response_model=None,
             responses={200: {"model": RunOut}, **errors(403, 404, 409)})
async def run(campaign_id: str, p: Auth, request: Request, body: RunIn | None = None) -> JSON:
    body = body or RunIn()
    p.check_team(body.team_id, body.account_slug, required=False)
    out = await run_campaign(get_db(request), request.app.state.dialer, p, campaign_id,
                             body.max_calls, body.dry_run)
    return JSON(out)


@router.get("/{campaign_id}/dashboard", response_model=None,
            responses={200: {"model": DashboardOut}, **errors(403, 404)})
async def dashboard(campaign_id: str, p: Auth, s: ReadSession, request: Request) -> JSON:
    return JSON({"success": True,
                 "dashboard": await svc.dashboard(s, p, campaign_id, _now(request))})
