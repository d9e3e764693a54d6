"""HTTP for calls: list, one call with its timeline, and placing one call now."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from callfleet.api.deps import (
    Auth,
    Paging,
    Q,
    ReadSession,
    WriteSession,
    get_principal,
    get_settings_dep,
)
from callfleet.api.idempotency import respond_created
from callfleet.api.responses import JSON
from callfleet.api.schemas import errors
from callfleet.calls import service as svc
from callfleet.calls.schemas import CallCreated, CallEnvelope, CallIn, CallList, RecordingLink
from callfleet.calls.views import call_out
from callfleet.errors import not_found
from callfleet.secrets import secret_box

router = APIRouter(tags=["calls"])


@router.get("/api/calls", response_model=None, responses={200: {"model": CallList},
                                                           **errors(403)})
@router.get("/api/crm/calls", response_model=None, responses={200: {"model": CallList},
                                                               **errors(403)},
            summary="List call logs (Talkturo's path; the same as GET /api/calls)")
async def list_calls(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, campaignId: Q = None,
    contactId: Q = None, assistantId: Q = None, status: Q = None, outcome: Q = None,
    direction: Q = None, from_: Annotated[str | None, Query(alias="from")] = None,
    to: Q = None, startedAfter: Q = None, startedBefore: Q = None,
) -> JSON:
    p.check_team(teamId, required=False)
    filters = {"campaignId": campaignId, "contactId": contactId, "assistantId": assistantId,
               "status": status, "outcome": outcome, "direction": direction, "from": from_,
               "to": to, "startedAfter": startedAfter, "startedBefore": startedBefore}
    items, total = await svc.list_calls(s, p, filters, page.limit, page.offset)
    return page.respond("calls", items, total)


@router.get("/api/calls/{call_id}", response_model=None,
            responses={200: {"model": CallEnvelope}, **errors(403, 404)})
async def get_call(call_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "call": await svc.get_call(s, p, call_id)})


@router.get("/api/calls/{call_id}/recording-url", response_model=None,
            responses={200: {"model": RecordingLink}, **errors(403, 404)})
async def recording_url(call_id: str, p: Auth, s: ReadSession, request: Request) -> JSON:
    """A signed link to the call's recording, usable without an API key (e.g. in an audio
    player) until it expires: ``{url, expiresIn}`` (seconds). 404 while the call has no
    recording."""
    out = await svc.recording_link(s, p, call_id, str(request.base_url), time.time(),
                                   secret_box())
    return JSON(out)


@router.get("/api/calls/{call_id}/recording", response_model=None,
            responses={200: {"content": {"audio/wav": {}}}, **errors(401, 403, 404)})
async def recording(call_id: str, request: Request, expires: Q = None,
                    signature: Q = None) -> Response:
    """The call's recording (WAV, 8 kHz stereo: the callee left, the assistant right). With
    the team's API key, or with the ``expires`` and ``signature`` of a link from
    ``GET /api/calls/{id}/recording-url`` (no key needed until it expires)."""
    if signature is None or not svc.recording_link_valid(call_id, expires, signature,
                                                         time.time(), secret_box()):
        p = await get_principal(request)
        async with request.app.state.db.session(write=False) as s:
            await svc.recording_link(s, p, call_id, "", time.time(), secret_box())  # 404s
    chunks = await request.app.state.recordings.open(call_id)
    if chunks is None:
        raise not_found("Recording")
    return StreamingResponse(chunks, media_type="audio/wav", headers={
        "Content-Disposition": f'attachment; filename="{call_id}.wav"'})


@router.post("/api/crm/calls", status_code=201, response_model=None,
             responses={201: {"model": CallCreated}, **errors(403, 404, 409)})
async def place_call(body: CallIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Place one call now (outside any campaign), after the do-not-call and legal-hours
    checks every dial gets."""
    p.check_team(body.team_id, required=False)
    settings = get_settings_dep(request)
    dialer = request.app.state.dialer
    data = body.model_dump(exclude_unset=True)
    placed: list[Any] = []

    async def make() -> dict[str, Any]:
        call = await svc.create_single_call(
            s, p, data, now=dialer.clock.now(), region=settings.default_region,
            legal_start=settings.legal_hours_start, legal_end=settings.legal_hours_end,
            carrier_name=dialer.carrier.name,
            lease=dialer.clock.sim_delta(settings.lease_seconds), worker_id=dialer.worker_id,
        )
        placed.append(call)
        return {"success": True, "call": call_out(call)}

    response = await respond_created(request, s, p, make)
    if placed:
        call = placed[0]
        await dialer.place_single(call.id, call.from_number, call.to_number)
    return response
