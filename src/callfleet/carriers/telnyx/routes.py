"""Telnyx's Call Control webhooks (``/carriers/telnyx/webhook``).

Each is checked against ``telnyx-signature-ed25519`` over ``telnyx-timestamp|body`` with the
account's public key and a five-minute tolerance (``carriers.signatures``) before anything
changes: a missing, bad or stale signature gets 401. callfleet's call id comes from the
webhook's ``client_state``; the events are applied by ``dialer.outcomes.CallEvents``, which
ignores what a call's state has already passed (duplicates, late and out-of-order webhooks).
A call *to* a callfleet number is verified with the account that owns the number and answered
with its audio streaming to the number's assistant (``dialer.inbound``); a number without one
declines politely (answer, a short message, hang-up).
"""

from __future__ import annotations

import binascii
import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from callfleet.api.responses import JSON
from callfleet.carriers.accounts import TelnyxAccount
from callfleet.carriers.callbacks import MAX_CALLBACK_BYTES, number_target, target
from callfleet.carriers.metrics import CALLBACKS
from callfleet.carriers.signatures import telnyx_valid
from callfleet.carriers.telnyx.adapter import UNANSWERABLE
from callfleet.carriers.telnyx.events import client_state_of, translate
from callfleet.dialer.inbound import open_inbound

log = structlog.get_logger("callfleet.carriers.telnyx")
router = APIRouter(tags=["carrier callbacks"], include_in_schema=False)


def unauthorized() -> JSON:
    return JSON({"success": False, "error": "Unauthorized: bad or missing carrier signature"},
                status_code=401)


def _payload(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the parsed webhook, the call id in its client_state) — untrusted until verified."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("data"), dict):
        return None, None
    payload = parsed["data"].get("payload")
    if not isinstance(payload, dict):
        return parsed, None
    try:
        return parsed, client_state_of(payload)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return parsed, None


@router.post("/carriers/telnyx/webhook")
async def telnyx_webhook(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        return JSON({"success": False, "error": "Request body too large"}, status_code=413)
    parsed, call_ref = _payload(body)
    router = request.app.state.carrier
    payload = ((parsed or {}).get("data") or {}).get("payload") or {}
    inbound = isinstance(payload, dict) and payload.get("direction") == "incoming" and (
        call_ref is None or call_ref == UNANSWERABLE)
    found = (await number_target(router, "telnyx", payload.get("to")) if inbound
             else await target(router, "telnyx", call_ref))
    key = found.account.public_key if isinstance(found.account, TelnyxAccount) else None
    if not telnyx_valid(key, body, request.headers.get("telnyx-signature-ed25519"),
                        request.headers.get("telnyx-timestamp"), time.time()):
        log.warning("callback_refused", carrier="telnyx")
        CALLBACKS.labels("telnyx", "refused").inc()
        return unauthorized()
    if parsed is None:
        return JSON({"success": False, "error": "body must be a Telnyx webhook (JSON with "
                     "data.event_type and data.payload)"}, status_code=400)
    if inbound and found.account is not None:
        adapter = router.adapter(found.account)
        kind = str(parsed["data"].get("event_type"))
        ccid = str(payload.get("call_control_id") or "")
        if kind == "call.initiated" and call_ref is None \
                and getattr(request.app.state, "voice", None) is not None:
            settings = request.app.state.settings
            call = await open_inbound(router.db, "telnyx", payload.get("to"),
                                      payload.get("from"), ccid,
                                      request.app.state.clock.now(),
                                      region=settings.default_region)
            if call is not None:
                await adapter.answer_inbound(ccid, call.call_id)
                return Response(status_code=204)
        await adapter.decline_inbound(kind, ccid)
        return Response(status_code=204)
    if found.call_id is None:
        CALLBACKS.labels("telnyx", "ignored").inc()
        return Response(status_code=204)  # signed, but not about a call of ours
    CALLBACKS.labels("telnyx", "applied").inc()
    events = translate(parsed, found.call_id, request.app.state.clock.now())
    if found.carrier_call_id is not None:
        events = [e for e in events if e.carrier_call_id == found.carrier_call_id]
    if events:
        # (an AMD verdict reaches the call's live media session from there)
        await request.app.state.dialer.events.handle_many(events)
    ccid = str(payload.get("call_control_id") or "")
    if parsed["data"].get("event_type") == "call.streaming.failed" and ccid and (
            found.carrier_call_id in (None, ccid)):
        # The call's audio cannot reach the assistant; unlike Twilio, Telnyx keeps the call
        # up without its stream (silence until the time limit): hang up.
        log.warning("media_stream_failed", call_id=found.call_id,
                    reason=str(payload.get("failure_reason") or "")[:200])
        await router.hangup_many([(ccid, 0.0)])
    return Response(status_code=204)
