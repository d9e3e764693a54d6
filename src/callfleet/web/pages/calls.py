"""Calls: the list with filters, and the call page (timeline, transcript as a conversation,
recording, analysis with undo of what it wrote into the contact, per-turn latency)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from callfleet.calls import service as calls
from callfleet.calls.service import CALL_STATUSES
from callfleet.conversation.analysis.revert import revert_analysis
from callfleet.crm import service as crm
from callfleet.dialer import rules
from callfleet.errors import ApiError
from callfleet.web.auth import Editor, Viewer
from callfleet.web.forms import query_text
from callfleet.web.listing import list_page
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
FILTERS = ("campaignId", "contactId", "assistantId", "status", "outcome", "direction", "to",
           "startedAfter", "startedBefore")


@router.get("/calls")
async def calls_page(ctx: Viewer) -> Response:
    async def fetch(f: dict[str, str | None], offset: int) -> tuple[list[dict[str, Any]], int]:
        return await calls.list_calls(ctx.s, ctx.p, f, PAGE_SIZE, offset)

    return await list_page(ctx, path="/calls", name="calls", filters=FILTERS, fetch=fetch,
                           page_size=PAGE_SIZE,
                           extra={"statuses": CALL_STATUSES, "outcomes": rules.OUTCOMES})


def latencies(messages: list[dict[str, Any]]) -> bool:
    """Whether the transcript carries per-turn latency (live voice calls record it)."""
    return any("latency_ms" in m for m in messages)


@router.get("/calls/{call_id}")
async def call_page(call_id: str, ctx: Viewer) -> Response:
    return await _call_page(ctx, call_id)


async def _call_page(ctx: Any, call_id: str, *, status: int = 200,
                     errors: dict[str, str] | None = None) -> Response:
    call = await calls.get_call(ctx.s, ctx.p, call_id)
    contact = None
    if call["contact_id"]:
        try:
            contact = await crm.get_contact(ctx.s, ctx.p, call["contact_id"])
        except ApiError:
            contact = None
    params = ctx.request.query_params
    flash = ("Test call placed." if "test" in params
             else "The analysis' changes to the contact were undone." if "reverted" in params
             else None)
    recording = call.get("recording_url")
    return page(ctx.request, "calls/detail.html", user=ctx.user, status=status, call=call,
                contact=contact, has_latency=latencies(call["messages"]), flash=flash,
                recording=recording, recording_local=bool(recording)
                and str(recording).startswith("/"), errors=errors or {})


@router.post("/calls/{call_id}/undo")
async def undo(call_id: str, ctx: Editor) -> Response:
    """Undo what the call's analysis wrote into the contact (values changed since are kept)."""
    back = query_text(ctx.request.query_params, "back")
    try:
        await revert_analysis(ctx.s, ctx.p, call_id, ctx.request.app.state.clock.now())
    except ApiError as exc:
        if exc.status != 409:
            raise
        await ctx.s.rollback()
        return await _call_page(ctx, call_id, status=409, errors={"_form": exc.error})
    await ctx.s.commit()
    if back and back.startswith("/contacts/cont_") and "/" not in back[len("/contacts/"):]:
        return RedirectResponse(f"{back}?reverted=1", status_code=303)
    return RedirectResponse(f"/calls/{call_id}?reverted=1", status_code=303)
