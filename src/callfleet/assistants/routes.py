"""HTTP for assistants: parse, call assistants.service, wrap in the envelope. No SQL here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from callfleet.api.deps import Auth, Paging, Q, ReadSession, WriteSession, get_settings_dep
from callfleet.api.idempotency import respond_created
from callfleet.api.responses import JSON
from callfleet.api.schemas import OkOut, errors
from callfleet.assistants import service as svc
from callfleet.assistants.schemas import (
    AssistantEnvelope,
    AssistantIn,
    AssistantList,
    OutboundAssistantList,
    PhoneNumberIdsIn,
)
from callfleet.numbers.schemas import AssistantNumbers

router = APIRouter(prefix="/api", tags=["assistants"])


def _region(request: Request) -> str:
    return get_settings_dep(request).default_region


def _numbers(items: list[dict[str, Any]]) -> JSON:
    return JSON({"success": True, "phone_numbers": items, "count": len(items)})


@router.post("/assistants", status_code=201, response_model=None,
             responses={201: {"model": AssistantEnvelope}, **errors(403, 409)})
async def create_assistant(
    body: AssistantIn, p: Auth, s: WriteSession, request: Request
) -> JSON:
    """Create an assistant; ``templateId`` pre-fills the prompt, first message and tools,
    and every other field sent overrides the template."""
    p.check_team(body.team_id, body.account_slug)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        out = await svc.create_assistant(s, p, data, _region(request))
        return {"success": True, "assistant": out}

    return await respond_created(request, s, p, make)


@router.get("/assistants", response_model=None,
            responses={200: {"model": AssistantList}, **errors(403)})
async def list_assistants(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, accountSlug: Q = None
) -> JSON:
    p.check_team(teamId, accountSlug)
    items, total = await svc.list_assistants(s, p, page.limit, page.offset)
    return page.respond("assistants", items, total)


@router.get("/crm/outbound-assistants", response_model=None,
            responses={200: {"model": OutboundAssistantList}, **errors(403)})
async def list_outbound_assistants(
    p: Auth, s: ReadSession, teamId: Q = None, accountSlug: Q = None
) -> JSON:
    """The assistants that can place campaign calls now: outbound enabled, with at least one
    active phone number (listed with each, for a campaign's ``fromNumberIds``)."""
    p.check_team(teamId, accountSlug, required=False)
    items = await svc.outbound_assistants(s, p)
    return JSON({"success": True, "assistants": items, "count": len(items)})


@router.get("/assistants/{assistant_id}", response_model=None,
            responses={200: {"model": AssistantEnvelope}, **errors(403, 404)})
async def get_assistant(assistant_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "assistant": await svc.get_assistant(s, p, assistant_id)})


@router.patch("/assistants/{assistant_id}", response_model=None,
              responses={200: {"model": AssistantEnvelope}, **errors(403, 404)})
async def update_assistant(
    assistant_id: str, body: AssistantIn, p: Auth, s: WriteSession, request: Request
) -> JSON:
    p.check_team(body.team_id, body.account_slug, required=False)
    data = body.model_dump(exclude_unset=True)
    out = await svc.update_assistant(s, p, assistant_id, data, _region(request))
    await s.commit()
    return JSON({"success": True, "assistant": out})


@router.delete("/assistants/{assistant_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404, 409)})
async def delete_assistant(assistant_id: str, p: Auth, s: WriteSession) -> JSON:
    await svc.delete_assistant(s, p, assistant_id)
    await s.commit()
    return JSON({"success": True})


@router.get("/assistants/{assistant_id}/phone-numbers", response_model=None,
            responses={200: {"model": AssistantNumbers}, **errors(403, 404)})
async def list_assistant_numbers(assistant_id: str, p: Auth, s: ReadSession) -> JSON:
    return _numbers(await svc.assistant_numbers(s, p, assistant_id))


@router.put("/assistants/{assistant_id}/phone-numbers", response_model=None,
            responses={200: {"model": AssistantNumbers}, **errors(403, 404, 409)})
async def replace_assistant_numbers(
    assistant_id: str, body: PhoneNumberIdsIn, p: Auth, s: WriteSession
) -> JSON:
    """The assistant's numbers become exactly ``phoneNumberIds`` (``[]`` unassigns all)."""
    items = await svc.assign_numbers(s, p, assistant_id, body.phone_number_ids, replace=True)
    await s.commit()
    return _numbers(items)


@router.post("/assistants/{assistant_id}/phone-numbers", response_model=None,
             responses={200: {"model": AssistantNumbers}, **errors(403, 404, 409)})
async def add_assistant_numbers(
    assistant_id: str, body: PhoneNumberIdsIn, p: Auth, s: WriteSession
) -> JSON:
    """Assign ``phoneNumberIds`` to the assistant in addition to the numbers it has."""
    items = await svc.assign_numbers(s, p, assistant_id, body.phone_number_ids, replace=False)
    await s.commit()
    return _numbers(items)
