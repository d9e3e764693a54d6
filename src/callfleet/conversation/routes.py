"""HTTP for the conversation layer: undoing a call's post-call analysis."""

from __future__ import annotations

from fastapi import APIRouter, Request

from callfleet.api.deps import Auth, WriteSession
from callfleet.api.responses import JSON
from callfleet.api.schemas import errors
from callfleet.calls.schemas import CallEnvelope
from callfleet.conversation.analysis.revert import revert_analysis as revert

router = APIRouter(tags=["calls"])


@router.post("/api/calls/{call_id}/analysis/revert", response_model=None,
             responses={200: {"model": CallEnvelope}, **errors(403, 404, 409)})
async def revert_analysis(call_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Undo what the call's post-call analysis wrote into the contact: every value it changed
    goes back to its previous value, unless it was changed again since (then it is left as
    is and listed in ``analysis.revert_skipped``). 409 when there is nothing to revert."""
    call = await revert(s, p, call_id, request.app.state.dialer.clock.now())
    await s.commit()
    return JSON({"success": True, "call": call})
