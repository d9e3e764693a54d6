"""Twilio through its official SDK (``twilio``, the ``carriers`` extra), one instance per
account (the deployment's or a team's own).

Dial: ``Calls.create`` with inline TwiML that connects the call's audio to the voice
runtime's media WebSocket (``<Connect><Stream>``, callfleet's call id as a ``<Parameter>``;
no verb after it, so the call ends when the stream does), status callbacks for
initiated/ringing/answered/completed at ``/carriers/twilio/status?call=<id>``, the ring
timeout, the time limit and, when the assistant wants it, asynchronous answering-machine
detection (``DetectMessageEnd`` when a message is to be left, so the verdict comes at the
beep). Every REST call goes to ``CALLFLEET_TWILIO_API_BASE_URL`` (all Twilio domains used
here: ``api`` and ``pricing``), which is how the tests reach a local fake.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog

from callfleet.carriers.accounts import TwilioAccount
from callfleet.carriers.base import (
    AvailableNumber,
    CarrierCallStatus,
    CarrierError,
    CarrierRejected,
)
from callfleet.carriers.calling import (
    CallRecord,
    DialRequest,
    ErrorCodes,
    LaterHangups,
    callback_url,
    classify,
    number_error,
    number_kind,
    require_sdk,
    stream_url,
)
from callfleet.carriers.twilio.events import events_from_status

try:  # the ``carriers`` extra
    from twilio.base.exceptions import TwilioRestException
except ImportError:  # pragma: no cover - checked by require_sdk at construction
    TwilioRestException = None  # type: ignore[assignment,misc]

log = structlog.get_logger("callfleet.carriers.twilio")

STATUS_PATH = "/carriers/twilio/status"
AMD_PATH = "/carriers/twilio/amd"
INBOUND_PATH = "/carriers/twilio/inbound"
WHISPER_PATH = "/carriers/twilio/whisper"
TRANSFER_RING_SECONDS = 30
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
PRICE_TTL = 3600.0
MAX_BRIEFING = 500  # characters of a warm transfer's briefing

# Twilio error codes (twilio.com/docs/api/errors) by what they mean for a dial.
CODES = ErrorCodes(
    "Twilio", auth=frozenset({"http:401", "20003", "20008"}),
    account=frozenset({"10001", "20005"}), account_reason="account not active",
    invalid_number=frozenset({"13223", "13224", "21211", "21214", "21217", "21401", "21407"}),
    rate_limit=frozenset({"http:429", "20429", "21611"}))
NOT_FOUND = 20404
FINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
ENDED_REASON = {"completed": "completed", "busy": "busy", "no-answer": "no_answer",
                "failed": "failed", "canceled": "failed"}


def twiml_stream(public_url: str, call_ref: str) -> str:
    """``<Response><Connect><Stream url=…><Parameter name="call_id" …/></Stream></Connect>
    </Response>``: the call's audio goes to the voice runtime, and nothing follows the
    stream (a trailing verb would keep the call up after the assistant hung up)."""
    from twilio.twiml.voice_response import Connect, VoiceResponse

    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url(public_url, "twilio", call_ref),
                            status_callback=callback_url(public_url, STATUS_PATH, call_ref))
    stream.parameter(name="call_id", value=call_ref)
    response.append(connect)
    return str(response)


def _parts(exc: Any) -> tuple[int | None, set[str], str]:
    code = getattr(exc, "code", None)
    message = f"Twilio error {code}: {getattr(exc, 'msg', exc)}"
    return getattr(exc, "status", None), {str(code)} if code is not None else set(), message


def rejection(exc: Any) -> CarrierRejected:
    status, codes, message = _parts(exc)
    return classify(CODES, status, codes, message, ",".join(sorted(codes)) or str(status))


def _number_error(exc: Any, action: str) -> CarrierError:
    return number_error(CODES, *_parts(exc), action)


class TwilioCarrier(LaterHangups):
    name = "twilio"

    def __init__(self, account: TwilioAccount, public_url: str, *, timeout: float = 10.0
                 ) -> None:
        require_sdk("twilio", "twilio")
        super().__init__()
        self.account = account
        self.public_url = public_url
        self.timeout = timeout
        self._client: Any = None
        self._prices: dict[str, tuple[float, dict[str, float]]] = {}

    @property
    def client(self) -> Any:
        """The SDK client, created in the running event loop (its aiohttp session)."""
        if self._client is None:
            from twilio.http.async_http_client import AsyncTwilioHttpClient
            from twilio.rest import Client

            http = AsyncTwilioHttpClient(timeout=self.timeout)
            client = Client(self.account.account_sid, self.account.auth_token,
                            http_client=http)
            base = self.account.api_base_url.rstrip("/")
            client.api.base_url = base
            client.pricing.base_url = base
            self._client = client
        return self._client

    async def aclose(self) -> None:
        self.cancel_hangups()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.http_client.close()
            self._client = None

    # ------------------------------------------------------------ calls

    async def dial(self, req: DialRequest) -> str:
        """Place the call; its Twilio SID. CarrierRejected when Twilio refuses it; any other
        exception leaves the call to reconciliation (the dial may have reached Twilio)."""
        params: dict[str, Any] = {
            "to": req.to_number, "from_": req.from_number,
            "twiml": twiml_stream(self.public_url, req.call_ref),
            "status_callback": callback_url(self.public_url, STATUS_PATH, req.call_ref),
            "status_callback_event": STATUS_EVENTS, "status_callback_method": "POST",
            "timeout": req.ring_timeout, "time_limit": req.time_limit,
        }
        if req.detect_machine:
            params.update(
                machine_detection="DetectMessageEnd" if req.leave_message else "Enable",
                async_amd="true",
                async_amd_status_callback=callback_url(self.public_url, AMD_PATH,
                                                       req.call_ref),
                async_amd_status_callback_method="POST")
        try:
            call = await self.client.calls.create_async(**params)
        except TwilioRestException as exc:
            raise rejection(exc) from None
        return str(call.sid)

    async def hangup(self, carrier_call_id: str, after_seconds: float = 0.0) -> None:
        if after_seconds > 0:
            self.hang_up_later(after_seconds, lambda: self.hangup(carrier_call_id),
                               carrier_call_id)
            return
        try:
            await self.client.calls(carrier_call_id).update_async(status="completed")
        except TwilioRestException as exc:
            if exc.code != NOT_FOUND and exc.status != 404:
                raise
            # 20404: the call is already over.

    async def transfer(self, carrier_call_id: str, to_number: str, *, caller_id: str,
                       briefing: str | None = None, call_ref: str | None = None) -> None:
        """Hand the live call to ``to_number``: its TwiML is replaced by a ``<Dial>`` (which
        ends the media stream). Warm, with ``briefing``: the transferee hears it first
        (Twilio's whisper, ``<Number url>``), then the two are connected."""
        from twilio.twiml.voice_response import Dial, VoiceResponse

        response = VoiceResponse()
        dial = Dial(caller_id=caller_id, timeout=TRANSFER_RING_SECONDS)
        if briefing:
            url = callback_url(self.public_url, WHISPER_PATH, call_ref) + (
                "&" if call_ref else "?") + urlencode({"text": briefing[:MAX_BRIEFING]})
            dial.number(to_number, url=url, method="POST")
        else:
            dial.number(to_number)
        response.append(dial)
        try:
            await self.client.calls(carrier_call_id).update_async(twiml=str(response))
        except TwilioRestException as exc:
            raise _number_error(exc, f"transfer the call to {to_number}") from None

    async def status(self, rec: CallRecord) -> CarrierCallStatus | None:
        """Twilio's record of the call; None when Twilio never got the dial."""
        call = None
        try:
            if rec.carrier_call_id:
                call = await self.client.calls(rec.carrier_call_id).fetch_async()
            else:
                since = (rec.started_at or datetime.now(UTC)) - timedelta(minutes=2)
                found = await self.client.calls.list_async(
                    to=rec.to_number, from_=rec.from_number,
                    start_time_after=since.replace(tzinfo=None), limit=20)
                found = [c for c in found if c.date_created is None
                         or c.date_created >= since]
                call = found[-1] if len(found) == 1 else None
                if len(found) > 1:
                    log.warning("reconcile_ambiguous", carrier="twilio", call_id=rec.call_ref,
                                candidates=len(found))
                    return CarrierCallStatus("", "ringing", None, None, None)
        except TwilioRestException as exc:
            if exc.status != 404:
                raise
        if call is None:
            return None
        return self._status_of(rec.call_ref, call)

    def _status_of(self, call_ref: str, call: Any) -> CarrierCallStatus:
        status = str(call.status)
        end = call.end_time or datetime.now(UTC)
        if status not in FINAL:
            state = "answered" if status == "in-progress" else "ringing"
            return CarrierCallStatus(call.sid, state, None, call.start_time, None)
        duration = int(call.duration or 0)
        events = events_from_status(
            call_ref, {"CallSid": call.sid, "CallStatus": status, "CallDuration": str(duration),
                       "AnsweredBy": call.answered_by or ""}, end)
        answered = end - timedelta(seconds=duration) if status == "completed" else None
        return CarrierCallStatus(call.sid, "ended", ENDED_REASON[status], answered, end,
                                 tuple(events))

    # ------------------------------------------------------------ numbers

    async def _price(self, country: str, number_type: str) -> float:
        hit = self._prices.get(country)
        if hit is None or time.monotonic() - hit[0] > PRICE_TTL:
            try:
                record = await self.client.pricing.v1.phone_numbers.countries(
                    country).fetch_async()
            except TwilioRestException as exc:
                raise _number_error(exc, "price its numbers") from None
            prices = {str(p.get("number_type", "")).replace(" ", "-"):
                      float(p.get("current_price") or p.get("base_price") or 0)
                      for p in (record.phone_number_prices or [])}
            hit = self._prices[country] = (time.monotonic(), prices)
        prices = hit[1]
        return prices.get(number_type, prices.get("local", 0.0))

    async def search_numbers(self, country_code: str, area_code: str | None, number_type: str,
                             limit: int, contains: str | None = None) -> list[AvailableNumber]:
        country = self.client.available_phone_numbers(country_code)
        kind = country.toll_free if number_type == "toll-free" else country.local
        query: dict[str, Any] = {"voice_enabled": True, "limit": limit}
        if area_code and number_type != "toll-free":
            query["area_code"] = int(area_code)
        if contains:
            query["contains"] = contains
        try:
            found = await kind.list_async(**query)
        except TwilioRestException as exc:
            if exc.status == 404:  # a country Twilio has no numbers in
                return []
            raise _number_error(exc, "search for numbers") from None
        if not found:
            return []
        price = await self._price(country_code, number_type)
        return [AvailableNumber(
            n.phone_number, price, 0.0,
            tuple(sorted(k.lower() for k, v in (n.capabilities or {}).items() if v)),
            country_code, number_type) for n in found]

    async def offer(self, phone_number: str) -> AvailableNumber | None:
        """The number, if Twilio has it for sale now."""
        kind = number_kind(phone_number)
        if kind is None:
            return None
        found = await self.search_numbers(kind[0], None, kind[1], 5,
                                          contains=phone_number)
        return next((n for n in found if n.phone_number == phone_number), None)

    async def purchase_number(self, phone_number: str) -> str:
        try:
            number = await self.client.incoming_phone_numbers.create_async(
                phone_number=phone_number, voice_method="POST",
                voice_url=callback_url(self.public_url, INBOUND_PATH),
                status_callback=callback_url(self.public_url, STATUS_PATH),
                status_callback_method="POST")
        except TwilioRestException as exc:
            raise _number_error(exc, f"buy {phone_number}") from None
        return str(number.sid)

    async def import_number(self, phone_number: str) -> str:
        """Check the account owns the number and point its voice webhook at callfleet."""
        try:
            owned = await self.client.incoming_phone_numbers.list_async(
                phone_number=phone_number, limit=2)
            owned = [n for n in owned if n.phone_number == phone_number]
            if not owned:
                raise CarrierError(f"{phone_number} is not a number of this Twilio account",
                                   400, "phoneNumber")
            await self.client.incoming_phone_numbers(owned[0].sid).update_async(
                voice_url=callback_url(self.public_url, INBOUND_PATH), voice_method="POST",
                status_callback=callback_url(self.public_url, STATUS_PATH),
                status_callback_method="POST")
        except TwilioRestException as exc:
            raise _number_error(exc, f"find {phone_number}") from None
        return str(owned[0].sid)

    async def release_number(self, provider_ref: str | None) -> None:
        if not provider_ref:
            return
        try:
            await self.client.incoming_phone_numbers(provider_ref).delete_async()
        except TwilioRestException as exc:
            if exc.status != 404:
                raise _number_error(exc, "release the number") from None

    async def verify(self) -> None:
        """Do these credentials open the account? CarrierError (400) if not."""
        try:
            await self.client.api.v2010.accounts(self.account.account_sid).fetch_async()
        except TwilioRestException as exc:
            if exc.status in (401, 403, 404):
                raise CarrierError("Twilio rejected these credentials (account SID and auth "
                                   "token)", 400, "authToken") from None
            raise _number_error(exc, "check the account") from None
