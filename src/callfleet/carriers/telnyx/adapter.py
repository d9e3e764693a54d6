"""Telnyx Call Control v2 through its official SDK (``telnyx``, the ``carriers`` extra), one
instance per account (a connection, with its API key).

Dial: ``POST /calls`` on the account's connection with callfleet's call id in
``client_state`` (echoed in every webhook) and as ``command_id`` (Telnyx drops a repeated
command), the webhook URL ``/carriers/telnyx/webhook``, the ring timeout, the time limit,
premium answering-machine detection when the assistant wants it, and the media stream to
the voice runtime (RTP, PCMU). The SDK never retries here (``max_retries=0``): a retried dial
whose first attempt reached Telnyx would ring the callee twice. Hang-ups go through this
adapter, never through pipecat's Telnyx serializer, whose API host is hard-coded.
"""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from callfleet.carriers.accounts import TelnyxAccount
from callfleet.carriers.base import (
    AvailableNumber,
    CarrierCallStatus,
    CarrierError,
    CarrierEvent,
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

try:  # the ``carriers`` extra
    import telnyx
except ImportError:  # pragma: no cover - checked by require_sdk at construction
    telnyx = None

log = structlog.get_logger("callfleet.carriers.telnyx")

WEBHOOK_PATH = "/carriers/telnyx/webhook"
UNANSWERABLE = "inbound:unanswerable"  # client_state of an inbound call being declined
UNANSWERABLE_MESSAGE = "Sorry, this number cannot take calls right now. Goodbye."
CODES = ErrorCodes(
    "Telnyx", auth=frozenset({"http:401", "http:403", "10009", "10010"}),
    account=frozenset({"http:402", "20100"}), account_reason="insufficient funds",
    invalid_number=frozenset({"10002", "10016", "90015", "90016"}),
    rate_limit=frozenset({"http:429", "10011"}))


def encode_state(call_ref: str) -> str:
    return base64.b64encode(call_ref.encode()).decode()


def _errors(exc: Any) -> tuple[int | None, set[str], str]:
    """(HTTP status, Telnyx error codes, a readable detail) of an SDK error."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    items = body.get("errors") if isinstance(body, dict) else None
    codes: set[str] = set()
    details: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            if item.get("code") is not None:
                codes.add(str(item["code"]))
            text = item.get("detail") or item.get("title")
            if text:
                details.append(f"{item.get('code', '')} {text}".strip())
    detail = "; ".join(details) or str(getattr(exc, "message", exc))
    return status, codes, detail[:300]


def rejection(exc: Any) -> CarrierRejected:
    status, codes, detail = _errors(exc)
    return classify(CODES, status, codes, f"Telnyx: {detail}",
                    ",".join(sorted(codes)) or str(status))


def _number_error(exc: Any, action: str) -> CarrierError:
    status, codes, detail = _errors(exc)
    return number_error(CODES, status, codes, f"Telnyx: {detail}", action)


class TelnyxCarrier(LaterHangups):
    name = "telnyx"

    def __init__(self, account: TelnyxAccount, public_url: str, *, timeout: float = 10.0
                 ) -> None:
        require_sdk("telnyx", "telnyx")
        super().__init__()
        self.account = account
        self.public_url = public_url
        self.client: Any = telnyx.AsyncTelnyx(
            api_key=account.api_key, public_key=account.public_key,
            base_url=account.api_base_url, timeout=timeout, max_retries=0)

    async def aclose(self) -> None:
        self.cancel_hangups()
        with contextlib.suppress(Exception):
            await self.client.close()

    # ------------------------------------------------------------ calls

    async def dial(self, req: DialRequest) -> str:
        params: dict[str, Any] = {
            "connection_id": self.account.connection_id, "from_": req.from_number,
            "to": req.to_number, "client_state": encode_state(req.call_ref),
            "command_id": req.call_ref,
            "webhook_url": callback_url(self.public_url, WEBHOOK_PATH),
            "webhook_url_method": "POST", "timeout_secs": req.ring_timeout,
            "time_limit_secs": req.time_limit,
            **self._stream(req.call_ref),
        }
        if req.detect_machine:
            params["answering_machine_detection"] = "premium"
        try:
            response = await self.client.calls.dial(**params)
        except telnyx.APIStatusError as exc:
            raise rejection(exc) from None
        return str(response.data.call_control_id)

    async def hangup(self, carrier_call_id: str, after_seconds: float = 0.0) -> None:
        if after_seconds > 0:
            self.hang_up_later(after_seconds, lambda: self.hangup(carrier_call_id),
                               carrier_call_id)
            return
        try:
            await self.client.calls.actions.hangup(carrier_call_id)
        except telnyx.APIStatusError as exc:
            if exc.status_code not in (404, 422):  # already over
                raise

    async def transfer(self, carrier_call_id: str, to_number: str, *, caller_id: str,
                       briefing_audio_url: str | None = None) -> None:
        """Hand the live call to ``to_number`` (Telnyx bridges it when the transferee
        answers). Warm, with ``briefing_audio_url``: the transferee hears that audio first."""
        params: dict[str, Any] = {"to": to_number, "from_": caller_id, "timeout_secs": 30}
        if briefing_audio_url:
            params["audio_url"] = briefing_audio_url
        try:
            await self.client.calls.actions.transfer(carrier_call_id, **params)
        except telnyx.APIStatusError as exc:
            raise _number_error(exc, f"transfer the call to {to_number}") from None

    def _stream(self, call_ref: str) -> dict[str, Any]:
        """The media stream to the voice runtime: bidirectional RTP, PCMU at 8 kHz (what
        ``voice.framing.TelnyxFraming`` accepts), the callee's track only."""
        return {"stream_url": stream_url(self.public_url, "telnyx", call_ref),
                "stream_track": "inbound_track", "stream_bidirectional_mode": "rtp",
                "stream_bidirectional_codec": "PCMU"}  # G.711 µ-law: 8 kHz by definition

    async def answer_inbound(self, carrier_call_id: str, call_ref: str) -> None:
        """Answer a call to one of our numbers with its audio streaming to the voice
        runtime; ``client_state`` = callfleet's call id from then on."""
        try:
            await self.client.calls.actions.answer(
                carrier_call_id, client_state=encode_state(call_ref), command_id=call_ref,
                webhook_url=callback_url(self.public_url, WEBHOOK_PATH),
                **self._stream(call_ref))
        except telnyx.APIStatusError as exc:
            if exc.status_code not in (404, 422):  # the caller hung up meanwhile
                raise

    async def decline_inbound(self, event_type: str, carrier_call_id: str) -> None:
        """A call to a number that cannot take it: answer, say so, hang up — one step per
        webhook, the step remembered in ``client_state`` (:data:`UNANSWERABLE`)."""
        state = encode_state(UNANSWERABLE)
        actions = self.client.calls.actions
        try:
            if event_type == "call.initiated":
                await actions.answer(carrier_call_id, client_state=state)
            elif event_type == "call.answered":
                await actions.speak(carrier_call_id, payload=UNANSWERABLE_MESSAGE,
                                    voice="female", language="en-US", client_state=state)
            elif event_type == "call.speak.ended":
                await actions.hangup(carrier_call_id, client_state=state)
        except telnyx.APIStatusError as exc:
            if exc.status_code not in (404, 422):  # the caller hung up meanwhile
                raise

    async def status(self, rec: CallRecord) -> CarrierCallStatus | None:
        """Telnyx's record of the call; None when Telnyx never got the dial. Without a
        call control id (no webhook arrived), the connection's active calls are searched
        for the call's ``client_state``."""
        now = datetime.now(UTC)
        if not rec.carrier_call_id:
            page = await self.client.connections.list_active_calls(self.account.connection_id,
                                                                   page_size=250)
            wanted = encode_state(rec.call_ref)
            for call in page.data or []:
                if call.client_state == wanted:
                    state = "answered" if (call.call_duration or 0) > 0 else "ringing"
                    return CarrierCallStatus(call.call_control_id, state, None, None, None)
            return None
        try:
            data = (await self.client.calls.retrieve_status(rec.carrier_call_id)).data
        except telnyx.APIStatusError as exc:
            if exc.status_code != 404:
                raise
            data = None
        ccid = rec.carrier_call_id
        if data is not None and data.is_alive:
            state = "answered" if (data.call_duration or 0) > 0 else "ringing"
            return CarrierCallStatus(ccid, state, None, None, None)
        # Over. Telnyx keeps a record for about ten minutes; without one the call is
        # known to have been placed but not how it ended.
        end = _parse_time(data.end_time if data is not None else None) or now
        duration = int((data.call_duration or 0) if data is not None else 0)
        reason = "completed" if duration > 0 else ("no_answer" if data is not None else "failed")
        events = []
        base = {"audio": True, "carrier_status": "record"}
        if duration > 0:
            events.append(CarrierEvent("telnyx", ccid, rec.call_ref, "answered",
                                       end - timedelta(seconds=duration), base))
        events.append(CarrierEvent("telnyx", ccid, rec.call_ref, "ended", end,
                                   {**base, "reason": reason}))
        answered = end - timedelta(seconds=duration) if duration > 0 else None
        return CarrierCallStatus(ccid, "ended", reason, answered, end, tuple(events))

    # ------------------------------------------------------------ numbers

    async def search_numbers(self, country_code: str, area_code: str | None, number_type: str,
                             limit: int, contains: str | None = None) -> list[AvailableNumber]:
        query: dict[str, Any] = {
            "country_code": country_code, "limit": limit, "features": ["voice"],
            "phone_number_type": "toll_free" if number_type == "toll-free" else "local"}
        if area_code and number_type != "toll-free":
            query["national_destination_code"] = area_code
        if contains:
            query["phone_number"] = {"contains": contains}
        try:
            found = await self.client.available_phone_numbers.list(filter=query)
        except telnyx.APIStatusError as exc:
            raise _number_error(exc, "search for numbers") from None
        out = []
        for n in found.data or []:
            if not n.phone_number:
                continue
            cost = n.cost_information
            out.append(AvailableNumber(
                n.phone_number, float(getattr(cost, "monthly_cost", 0) or 0),
                float(getattr(cost, "upfront_cost", 0) or 0),
                tuple(sorted(str(f.name) for f in (n.features or []) if f.name)),
                country_code, number_type))
        return out[:limit]

    async def offer(self, phone_number: str) -> AvailableNumber | None:
        """The number, if Telnyx has it for sale now."""
        kind = number_kind(phone_number)
        if kind is None:
            return None
        found = await self.search_numbers(kind[0], None, kind[1], 5,
                                          contains=phone_number.lstrip("+"))
        return next((n for n in found if n.phone_number == phone_number), None)

    async def purchase_number(self, phone_number: str) -> str:
        """Order the number on the account's connection (so its calls reach callfleet's
        webhook); the reference is the number itself (the order completes later)."""
        try:
            await self.client.number_orders.create(
                phone_numbers=[{"phone_number": phone_number}],
                connection_id=self.account.connection_id)
        except telnyx.APIStatusError as exc:
            raise _number_error(exc, f"buy {phone_number}") from None
        return phone_number

    async def _owned(self, phone_number: str) -> str | None:
        page = await self.client.phone_numbers.list(filter={"phone_number": phone_number})
        for n in page.data or []:
            if n.phone_number == phone_number:
                return str(n.id)
        return None

    async def import_number(self, phone_number: str) -> str:
        """Check the account owns the number and put it on the account's connection."""
        try:
            number_id = await self._owned(phone_number)
            if number_id is None:
                raise CarrierError(f"{phone_number} is not a number of this Telnyx account",
                                   400, "phoneNumber")
            await self.client.phone_numbers.update(number_id,
                                                   connection_id=self.account.connection_id)
        except telnyx.APIStatusError as exc:
            raise _number_error(exc, f"find {phone_number}") from None
        return number_id

    async def release_number(self, provider_ref: str | None) -> None:
        if not provider_ref:
            return
        try:
            number_id = (await self._owned(provider_ref) if provider_ref.startswith("+")
                         else provider_ref)
            if number_id is not None:
                await self.client.phone_numbers.delete(number_id)
        except telnyx.APIStatusError as exc:
            if exc.status_code != 404:
                raise _number_error(exc, "release the number") from None

    async def verify(self) -> None:
        try:
            await self.client.balance.retrieve()
        except telnyx.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise CarrierError("Telnyx rejected this API key", 400, "apiKey") from None
            raise _number_error(exc, "check the account") from None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)

