"""Twilio's callbacks: call status (``/carriers/twilio/status``), the asynchronous
answering-machine verdict (``/carriers/twilio/amd``, also handed to the call's live media
session) and calls to a callfleet number (``/carriers/twilio/inbound``, answered by the
number's assistant over a media stream).

Each is checked against ``X-Twilio-Signature`` (``carriers.signatures``) over the URL Twilio
requested, rebuilt from ``CALLFLEET_PUBLIC_URL``, before anything changes: a missing or bad
signature gets 401. Then the callback becomes ``CarrierEvent``s applied by
``dialer.outcomes.CallEvents``, which ignores what a call's state has already passed, so
duplicate, late and out-of-order callbacks change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from callfleet.api.responses import JSON
from callfleet.carriers.accounts import TwilioAccount
from callfleet.carriers.base import CarrierEvent
from callfleet.carriers.callbacks import (
    MAX_CALLBACK_BYTES,
    carrier_call_target,
    number_target,
    target,
)
from callfleet.carriers.calling import PublicUrlError, public_base
from callfleet.carriers.metrics import CALLBACKS
from callfleet.carriers.signatures import twilio_valid
from callfleet.carriers.twilio.adapter import MAX_BRIEFING, STATUS_PATH, twiml_stream
from callfleet.carriers.twilio.events import events_from_amd, events_from_status
from callfleet.dialer.inbound import open_inbound

log = structlog.get_logger("callfleet.carriers.twilio")
router = APIRouter(tags=["carrier callbacks"], include_in_schema=False)

Translate = Callable[[str, dict[str, str], datetime], list[CarrierEvent]]
TWIML = "application/xml"
NO_ASSISTANT = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Sorry, this number "
                "cannot take calls right now. Goodbye.</Say><Hangup/></Response>")


def unauthorized() -> JSON:
    return JSON({"success": False, "error": "Unauthorized: bad or missing carrier signature"},
                status_code=401)


async def _verified(request: Request) -> tuple[dict[str, str], str | None] | JSON:
    """The posted form and the call id, once Twilio's signature holds (else a 401)."""
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        return JSON({"success": False, "error": "Request body too large"}, status_code=413)
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    call_ref = request.query_params.get("call")
    try:
        base = public_base(request.app.state.settings.public_url)
    except PublicUrlError:
        return unauthorized()  # no public URL: nothing can have been signed for it
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    router = request.app.state.carrier
    found = (await target(router, "twilio", call_ref) if call_ref is not None
             else await carrier_call_target(router, "twilio", params.get("CallSid"))
             if request.url.path == STATUS_PATH and params.get("Direction") == "inbound"
             else None) or await number_target(router, "twilio", params.get("To"))
    account = found.account
    token = account.auth_token if isinstance(account, TwilioAccount) else ""
    if not twilio_valid(token, url, params, request.headers.get("x-twilio-signature")):
        log.warning("callback_refused", carrier="twilio", path=request.url.path)
        CALLBACKS.labels("twilio", "refused").inc()
        return unauthorized()
    if found.call_id is None or (found.carrier_call_id is not None
                                 and params.get("CallSid") != found.carrier_call_id):
        CALLBACKS.labels("twilio", "ignored").inc()
        return params, None  # signed, but not about a call of ours: nothing to do
    CALLBACKS.labels("twilio", "applied").inc()
    return params, found.call_id


async def _apply(request: Request, translate: Translate) -> Response:
    checked = await _verified(request)
    if isinstance(checked, JSON):
        return checked
    params, call_id = checked
    if call_id is not None:
        now = request.app.state.clock.now()
        events = translate(call_id, params, now)
        # (an AMD verdict reaches the call's live media session from there)
        await request.app.state.dialer.events.handle_many(events)
    return Response(status_code=204)


@router.post("/carriers/twilio/status")
async def twilio_status(request: Request) -> Response:
    return await _apply(request, events_from_status)


@router.post("/carriers/twilio/amd")
async def twilio_amd(request: Request) -> Response:
    return await _apply(request, events_from_amd)


@router.post("/carriers/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    """A call to one of the deployment's Twilio numbers: the number's assistant answers over
    a media stream (``<Connect><Stream>`` to ``/voice/twilio/{call id}/{token}``); a number
    without an assistant taking inbound calls (or a deployment without live voice) gets a
    short message and a hang-up."""
    checked = await _verified(request)
    if isinstance(checked, JSON):
        return checked
    params, _ = checked
    if getattr(request.app.state, "voice", None) is None:
        return Response(NO_ASSISTANT, media_type=TWIML)
    settings = request.app.state.settings
    call = await open_inbound(request.app.state.carrier.db, "twilio", params.get("To"),
                              params.get("From"), params.get("CallSid", ""),
                              request.app.state.clock.now(), region=settings.default_region)
    if call is None:
        return Response(NO_ASSISTANT, media_type=TWIML)
    return Response(twiml_stream(public_base(settings.public_url), call.call_id),
                    media_type=TWIML)


@router.post("/carriers/twilio/whisper")
async def twilio_whisper(request: Request) -> Response:
    """A warm transfer's briefing, said to the transferee before the call is connected
    (the text is in the URL Twilio requests, which its signature covers)."""
    checked = await _verified(request)
    if isinstance(checked, JSON):
        return checked
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(request.query_params.get("text", "")[:MAX_BRIEFING])
    return Response(str(response), media_type=TWIML)
