"""A local fake of Twilio's and Telnyx's REST APIs and signed callbacks, for tests and for
trying callfleet without an account.

One ASGI app (:func:`build_app`) serves both carriers' REST endpoints that the official SDKs
call (Twilio's ``/2010-04-01/...`` and pricing ``/v1/PhoneNumbers/...``, Telnyx's
``/v2/...``), checks their credentials (HTTP basic with the account SID and auth token;
``Bearer`` API key), and plays each dialed call by the behaviour of its destination number
(:data:`BEHAVIOURS`), posting the carrier's callbacks signed as the carrier signs them
(``X-Twilio-Signature`` with the auth token; Ed25519 over ``timestamp|body`` with the
network's own key pair, whose public half callfleet is configured with).

With ``media`` on, a call answered by a behaviour that talks (:data:`TALKING`: a person, an
answering machine, a person who opts out) also opens the call's media stream to callfleet in
its carrier's framing (Twilio ``<Connect><Stream>`` from the dial's TwiML, Telnyx
``stream_url``), speaks its lines (espeak-ng) and listens (``voice.mediaclient``: playout,
``mark`` echoes, ``clear``); the call ends when the stream does, and a hang-up or transfer
through the REST API stops the stream as the carrier would. Calls *to* a number
(:meth:`FakeNetwork.twilio_inbound`, :meth:`FakeNetwork.telnyx_inbound`) stream the same way
once callfleet answers them.

Callbacks are queued per call and sent by :meth:`FakeNetwork.deliver` (tests step the
network), or by a background loop every ``step_seconds`` when ``auto`` is on (a fake run
as its own process, ``python -m callfleet.testing.fakecarriers``). ``/_fake/*`` lets a
test that cannot reach the object (another process) set behaviours, read the calls and
replay or forge callbacks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callfleet.voice import audio, espeak
from callfleet.voice.amd import beep_pcm
from callfleet.voice.mediaclient import CallReport, CarrierMediaClient, Say, SayNow, Step

BEHAVIOURS = ("answer", "busy", "no_answer", "voicemail", "decline", "failed", "invalid",
              "opt_out")
# Behaviours whose answered call talks over the media stream, and what each says.
TALKING = ("answer", "voicemail", "opt_out")
LINES = {
    "answer": ["Sorry, I am busy right now. Goodbye."],
    "opt_out": ["Please take me off your list."],
    "voicemail": ["Hi, you have reached Sam. Please leave a message after the tone."],
    "caller": ["Hello, I have a question about my order. Goodbye."],
}
MAX_TALK_SECONDS = 60.0
STATUS_DELAY_SECONDS = 1.0
TWILIO_SID = "AC" + "f" * 32
TWILIO_TOKEN = "fake-twilio-auth-token-0123456789"
TELNYX_KEY = "KEYfake0123456789"
TELNYX_CONNECTION = "1234567890"


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(at: datetime | None) -> str | None:
    return format_datetime(at, usegmt=True) if at else None


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


@dataclass
class FakeCall:
    carrier: str  # twilio | telnyx
    sid: str  # Twilio CallSid or Telnyx call_control_id
    to: str
    from_: str
    behaviour: str
    params: dict[str, Any]  # what the SDK sent
    created_at: datetime = field(default_factory=_now)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: str = "queued"
    hung_up_by_api: bool = False
    talk_seconds: float = 3.0
    sent: list[dict[str, Any]] = field(default_factory=list)  # callbacks delivered
    queue: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    streams: bool = False  # answered: talks over the media stream (the network's ``media``)
    media: CarrierMediaClient | None = None
    report: CallReport | None = None  # what the media stream carried
    transferred_to: str | None = None


@dataclass
class FakeNumber:
    sid: str
    phone_number: str
    carrier: str
    voice_url: str | None = None
    status_url: str | None = None  # Twilio: the number's StatusCallback (inbound calls)
    connection_id: str | None = None


class FakeNetwork:
    """Both carriers' state: accounts, numbers, calls, and the callbacks still to send."""

    def __init__(self, *, auto: bool = False, step_seconds: float = 0.05,
                 http: httpx.AsyncClient | None = None, media: bool = False) -> None:
        self.media = media
        self._talks: set[asyncio.Task[None]] = set()
        self.twilio_accounts: dict[str, str] = {TWILIO_SID: TWILIO_TOKEN}
        self.telnyx_keys: dict[str, str] = {TELNYX_KEY: TELNYX_CONNECTION}
        self.private_key = Ed25519PrivateKey.generate()
        self.public_key = base64.b64encode(self.private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)).decode()
        self.behaviours: dict[str, str] = {}
        self.inventory: dict[str, list[str]] = {"twilio": [], "telnyx": []}
        self.owned: dict[str, FakeNumber] = {}
        self.calls: dict[str, FakeCall] = {}
        self.broke: set[str] = set()  # accounts whose funds ran out
        self.rate_limited = False
        self.auto = auto
        self.step_seconds = step_seconds
        self.http = http
        self.requests: list[tuple[str, str]] = []  # (method, path) of every REST request
        self.dial_times: list[float] = []  # monotonic time of every accepted dial
        self._task: asyncio.Task[None] | None = None
        self.clock: Callable[[], datetime] = _now

    # ------------------------------------------------------------ set-up

    def stock(self, carrier: str, numbers: list[str]) -> None:
        """Numbers for sale."""
        self.inventory[carrier].extend(n for n in numbers if n not in self.inventory[carrier])

    def own(self, carrier: str, number: str) -> FakeNumber:
        """A number the account already owns (for imports)."""
        prefix = "PN" if carrier == "twilio" else ""
        sid = prefix + uuid.uuid4().hex if carrier == "twilio" else str(uuid.uuid4().int)[:18]
        n = self.owned[number] = FakeNumber(sid, number, carrier)
        return n

    def behave(self, number: str, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviours[number] = behaviour

    def telnyx_sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(ts.encode() + b"|" + body)
        return {"telnyx-signature-ed25519": base64.b64encode(signature).decode(),
                "telnyx-timestamp": ts, "content-type": "application/json"}

    @staticmethod
    def twilio_sign(token: str, url: str, params: dict[str, str]) -> str:
        from twilio.request_validator import RequestValidator

        return str(RequestValidator(token).compute_signature(url, params))

    # ------------------------------------------------------------ delivering callbacks

    async def _post(self, url: str, headers: dict[str, str], content: bytes) -> int:
        client = self.http
        own = client is None
        client = client or httpx.AsyncClient(timeout=10.0)
        try:
            r = await client.post(url, headers=headers, content=content)
            return r.status_code
        except httpx.HTTPError:
            return 0
        finally:
            if own:
                await client.aclose()

    def _happened(self, call: FakeCall, kind: str, data: dict[str, Any]) -> None:
        """The carrier's own record moves as its callbacks go out (sent or lost)."""
        now = self.clock()
        if kind in ("ringing", "initiated", "call.initiated"):
            call.status = "ringing"
        elif kind in ("in-progress", "call.answered"):
            call.status, call.answered_at = "in-progress", now
        elif kind in ("completed", "busy", "no-answer", "failed", "canceled"):
            call.status, call.ended_at = kind, self._end_time(call, now)
        elif kind == "call.hangup":
            cause = data["data"]["payload"].get("hangup_cause")
            call.status = {"normal_clearing": "completed", "user_busy": "busy",
                           "timeout": "no-answer", "call_rejected": "no-answer"}.get(
                               cause, "failed")
            call.ended_at = self._end_time(call, now)

    @staticmethod
    def _end_time(call: FakeCall, now: datetime) -> datetime:
        """An answered call the callee ends talked ``talk_seconds``."""
        if call.answered_at is not None and not call.hung_up_by_api:
            return max(now, call.answered_at + timedelta(seconds=call.talk_seconds))
        return now

    def lose(self, sid: str, keep: int = 0) -> int:
        """The call's queued callbacks, all but the last ``keep``, happen at the carrier but
        never reach callfleet (it was down); how many were lost."""
        call = self.calls[sid]
        lost = call.queue[:len(call.queue) - keep]
        for kind, _, data in lost:
            self._happened(call, kind, data)
        del call.queue[:len(lost)]
        return len(lost)

    async def send(self, call: FakeCall, kind: str, url: str, data: dict[str, Any]) -> int:
        """Post one callback of ``call`` signed as its carrier signs it; its HTTP status."""
        self._happened(call, kind, data)
        if kind in ("in-progress", "call.answered") and call.streams and call.media is None:
            self.talk(call)
        if call.carrier == "twilio":
            form = {k: str(v) for k, v in data.items()}
            token = self.twilio_accounts.get(call.params.get("_account", TWILIO_SID),
                                             TWILIO_TOKEN)
            headers = {"X-Twilio-Signature": self.twilio_sign(token, url, form),
                       "content-type": "application/x-www-form-urlencoded"}
            content = httpx.QueryParams(form).__str__().encode()
        else:
            content = json.dumps(data).encode()
            headers = self.telnyx_sign(content)
        status = await self._post(url, headers, content)
        call.sent.append({"kind": kind, "url": url, "data": data, "status": status,
                          "headers": headers, "content": content.decode()})
        return status

    async def deliver(self, sid: str | None = None) -> int:
        """Send every queued callback (of one call, or of all) in order; how many."""
        sent = 0
        for call in list(self.calls.values()):
            if sid is not None and call.sid != sid:
                continue
            while call.queue:
                kind, url, data = call.queue.pop(0)
                await self.send(call, kind, url, data)
                sent += 1
        return sent

    async def replay(self, sid: str, index: int = -1) -> int:
        """Send an already delivered callback again, byte for byte (a replay)."""
        call = self.calls[sid]
        old = call.sent[index]
        return await self._post(old["url"], old["headers"], old["content"].encode())

    def start(self) -> None:
        if self.auto and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            for call in list(self.calls.values()):
                if call.queue:
                    kind, url, data = call.queue.pop(0)
                    await self.send(call, kind, url, data)
            await asyncio.sleep(self.step_seconds)

    # ------------------------------------------------------------ playing a call

    def play(self, call: FakeCall) -> None:
        """Queue the call's callbacks from its behaviour (a call that is answered talks for
        ``talk_seconds`` and is then hung up by the callee, unless callfleet hangs up)."""
        b = call.behaviour
        self._progress(call, "initiated")
        if b in ("busy", "failed"):
            self._end(call, "busy" if b == "busy" else "failed")
            return
        self._progress(call, "ringing")
        if b in ("no_answer", "decline"):
            self._end(call, "no-answer" if b == "no_answer" else "decline")
            return
        self._progress(call, "answered")
        if b == "voicemail" and self._wants_amd(call):
            self._amd(call, machine=True)
        elif self._wants_amd(call):
            self._amd(call, machine=False)
        if self.media and b in TALKING and self.stream_of(call) is not None:
            call.streams = True  # it ends when its stream does (``talk``)
            return
        self._end(call, "completed", after=call.talk_seconds)

    def _wants_amd(self, call: FakeCall) -> bool:
        if call.carrier == "twilio":
            return bool(call.params.get("MachineDetection"))
        return call.params.get("answering_machine_detection") not in (None, "disabled")

    def _twilio_form(self, call: FakeCall, status: str, at: datetime) -> dict[str, Any]:
        form: dict[str, Any] = {
            "AccountSid": call.params.get("_account", TWILIO_SID), "CallSid": call.sid,
            "CallStatus": status, "To": call.to, "From": call.from_, "Direction":
            "inbound" if call.params.get("_direction") == "inbound" else "outbound-api", "ApiVersion": "2010-04-01", "Timestamp": _rfc2822(at),
            "SequenceNumber": str(len(call.queue) + len(call.sent))}
        if status == "completed":
            start = call.answered_at or self.clock()
            form["CallDuration"] = str(max(0, round((at - start).total_seconds())))
        return form

    def _telnyx_event(self, call: FakeCall, kind: str, at: datetime, **payload: Any
                      ) -> dict[str, Any]:
        return {"data": {
            "event_type": kind, "id": str(uuid.uuid4()), "occurred_at": _iso(at),
            "record_type": "event", "payload": {
                "call_control_id": call.sid, "call_leg_id": call.sid[3:],
                "call_session_id": "s-" + call.sid[3:], "client_state":
                call.params.get("client_state"), "connection_id": call.params.get(
                    "connection_id"), "from": call.from_, "to": call.to,
                "direction": call.params.get("_direction", "outgoing"),
                "start_time": _iso(call.created_at), **payload}},
            "meta": {"attempt": 1, "delivered_to": call.params.get("webhook_url")}}

    def telnyx_event(self, call: FakeCall, kind: str, **payload: Any) -> dict[str, Any]:
        """A Telnyx webhook body of ``kind`` about ``call`` (for a test to send)."""
        return self._telnyx_event(call, kind, self.clock(), **payload)

    def _progress(self, call: FakeCall, step: str) -> None:
        at = self.clock()
        if call.carrier == "twilio":
            status = {"initiated": "initiated", "ringing": "ringing",
                      "answered": "in-progress"}[step]
            url = call.params.get("StatusCallback")
            if url and step in (call.params.get("StatusCallbackEvent") or []):
                call.queue.append((status, url, self._twilio_form(call, status, at)))
            return
        kind = {"initiated": "call.initiated", "answered": "call.answered"}.get(step)
        if kind:
            call.queue.append((kind, call.params["webhook_url"],
                               self._telnyx_event(call, kind, at, state="bridging")))

    def _amd(self, call: FakeCall, *, machine: bool) -> None:
        at = self.clock()
        if call.carrier == "twilio":
            url = call.params.get("AsyncAmdStatusCallback")
            if url:
                verdict = ("machine_end_beep" if call.params.get("MachineDetection") ==
                           "DetectMessageEnd" else "machine_start") if machine else "human"
                call.queue.append(("amd", url, {
                    "AccountSid": call.params.get("_account", TWILIO_SID),
                    "CallSid": call.sid, "AnsweredBy": verdict,
                    "MachineDetectionDuration": "2400"}))
            return
        call.queue.append(("call.machine.premium.detection.ended", call.params["webhook_url"],
                           self._telnyx_event(call, "call.machine.premium.detection.ended",
                                              at, result="machine" if machine else
                                              "human_residence")))

    def _end(self, call: FakeCall, how: str, after: float = 0.0) -> None:
        at = self.clock() + timedelta(seconds=after)
        if call.carrier == "twilio":
            status = {"decline": "no-answer"}.get(how, how)
            url = call.params.get("StatusCallback")
            if url:
                call.queue.append((status, url, self._twilio_form(call, status, at)))
            return
        cause = {"completed": "normal_clearing", "busy": "user_busy", "no-answer": "timeout",
                 "decline": "call_rejected", "failed": "unspecified"}[how]
        call.queue.append(("call.hangup", call.params["webhook_url"], self._telnyx_event(
            call, "call.hangup", at, hangup_cause=cause, hangup_source="callee",
            end_time=_iso(at))))

    async def twilio_inbound(self, to: str, from_: str, behaviour: str = "caller"
                             ) -> FakeCall:
        """Someone calls a Twilio number: its voice webhook is requested (signed); TwiML with
        ``<Connect><Stream>`` puts the caller on the media stream (``behaviour``'s lines),
        anything else is played (``<Say>`` kept in ``params["_said"]``) and ends the call."""
        number = self.owned.get(to)
        call = FakeCall("twilio", "CA" + uuid.uuid4().hex, to, from_, behaviour,
                        {"_account": TWILIO_SID, "_direction": "inbound"},
                        created_at=self.clock())
        if number is not None and number.status_url:  # it reports the call's end
            call.params.update(StatusCallback=number.status_url,
                               StatusCallbackEvent=["completed"])
        self.calls[call.sid] = call
        url = number.voice_url if number is not None else None
        if not url:
            call.status = "failed"
            return call
        form = {"AccountSid": TWILIO_SID, "CallSid": call.sid, "From": from_, "To": to,
                "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
        headers = {"X-Twilio-Signature": self.twilio_sign(TWILIO_TOKEN, url, form),
                   "content-type": "application/x-www-form-urlencoded"}
        client = self.http or httpx.AsyncClient(timeout=10.0)
        try:
            r = await client.post(url, headers=headers,
                                  content=str(httpx.QueryParams(form)).encode())
        finally:
            if self.http is None:
                await client.aclose()
        call.sent.append({"kind": "inbound", "url": url, "data": form,
                          "status": r.status_code, "headers": headers, "content": ""})
        twiml = r.text if r.status_code == 200 else ""
        if "<Stream" in twiml:
            call.params["_answer_twiml"] = twiml
            call.status, call.answered_at = "in-progress", self.clock()
            call.streams = True
            self.talk(call)
        else:
            call.params["_said"] = re.findall(r"<Say[^>]*>([^<]*)</Say>", twiml)
            call.status, call.ended_at = "completed", self.clock()
        return call

    def telnyx_inbound(self, to: str, from_: str, webhook_url: str,
                       connection_id: str = TELNYX_CONNECTION, behaviour: str = "caller"
                       ) -> FakeCall:
        """Someone calls a Telnyx number: ``call.initiated`` (incoming) is queued for the
        connection's webhook; answer (with a stream: the caller talks over it), speak and
        hang-up commands play out from there."""
        call = FakeCall("telnyx", "v3:" + uuid.uuid4().hex, to, from_, behaviour,
                        {"webhook_url": webhook_url, "connection_id": connection_id,
                         "_direction": "incoming"}, created_at=self.clock())
        self.calls[call.sid] = call
        call.queue.append(("call.initiated", webhook_url, self._telnyx_event(
            call, "call.initiated", self.clock(), state="parked")))
        return call

    def telnyx_command(self, call: FakeCall, action: str, body: dict[str, Any]) -> None:
        """The webhooks a Call Control command leads to (its ``client_state`` is kept)."""
        if body.get("client_state"):
            call.params["client_state"] = body["client_state"]
        if action == "answer" and body.get("stream_url"):
            call.params["stream_url"] = body["stream_url"]
            call.streams = self.media
        if action == "transfer":
            self.transfer(call, str(body.get("to", "")))
            return
        if action == "speak":
            call.params.setdefault("_said", []).append(body.get("payload"))
        follow = {"answer": "call.answered", "speak": "call.speak.ended"}.get(action)
        if follow:
            call.queue.append((follow, call.params["webhook_url"], self._telnyx_event(
                call, follow, self.clock(), **({"status": "completed"}
                                               if action == "speak" else {}))))

    # ------------------------------------------------------------ media streams

    @staticmethod
    def stream_of(call: FakeCall) -> tuple[str, dict[str, str]] | None:
        """Where the call's audio goes: (WebSocket URL, Twilio ``<Parameter>``s)."""
        if call.carrier == "telnyx":
            url = call.params.get("stream_url")
            return (url, {}) if isinstance(url, str) and url else None
        twiml = call.params.get("Twiml") or call.params.get("_answer_twiml")
        if not isinstance(twiml, str):
            return None
        found = re.search(r'<Stream[^>]*\surl="([^"]+)"', twiml)
        if found is None:
            return None
        params = dict(re.findall(r'<Parameter name="([^"]*)" value="([^"]*)"', twiml))
        return found.group(1).replace("&amp;", "&"), params

    def talk(self, call: FakeCall) -> None:
        """Open the call's media stream and talk (a task of the network)."""
        task = asyncio.get_running_loop().create_task(self._talk(call))
        self._talks.add(task)
        task.add_done_callback(self._talks.discard)

    async def _talk(self, call: FakeCall) -> None:
        where = self.stream_of(call)
        if where is None:
            return
        url, params = where
        script = await asyncio.get_running_loop().run_in_executor(None, script_for,
                                                                  call.behaviour)
        headers = {}
        if call.carrier == "twilio":  # Twilio signs the WebSocket's opening request
            token = self.twilio_accounts.get(call.params.get("_account", TWILIO_SID),
                                             TWILIO_TOKEN)
            headers["X-Twilio-Signature"] = self.twilio_sign(token, url, {})
        client = call.media = CarrierMediaClient(
            url, script, framing=call.carrier, call_id=call.sid, headers=headers,
            client_state=call.params.get("client_state"), custom_parameters=params,
            quiet_ms=500, max_seconds=MAX_TALK_SECONDS)
        if call.behaviour == "voicemail":
            client.quiet_ms = 10**6  # a machine records; it never takes a turn
        try:
            call.report = await client.run()
        finally:
            if call.report is not None and call.report.closed_by == "callee":
                # A carrier's "completed" follows the stream's end by a moment, never
                # before it (as the simulated network's audio mode does).
                await asyncio.sleep(STATUS_DELAY_SECONDS)
            if call.status not in ("completed", "busy", "no-answer", "failed", "canceled") \
                    and not call.hung_up_by_api and call.transferred_to is None:
                # The stream is over (the callee hung up, or callfleet closed it and no
                # TwiML follows): so is the call.
                call.hung_up_by_api = call.report is not None and \
                    call.report.closed_by == "callfleet"
                call.queue = [q for q in call.queue if q[0] not in ("completed", "call.hangup")]
                self._end(call, "completed")

    def transfer(self, call: FakeCall, to: str) -> None:
        """The call goes to ``to``: its stream stops, the call goes on with the transferee
        and ends after ``talk_seconds``."""
        call.transferred_to = to
        if call.media is not None:
            call.media.end()
        call.queue = [q for q in call.queue if q[0] not in ("completed", "call.hangup")]
        self._end(call, "completed", after=call.talk_seconds)

    def hang_up(self, call: FakeCall) -> None:
        """callfleet hung up: the call ends now (what was still to happen does not)."""
        if call.media is not None:
            call.media.end()
        if call.status in ("completed", "busy", "no-answer", "failed", "canceled"):
            return
        call.hung_up_by_api = True
        answered = call.answered_at is not None or any(
            q[0] in ("in-progress", "call.answered") for q in call.queue)
        call.queue = [q for q in call.queue
                      if q[0] not in ("completed", "call.hangup", "busy", "no-answer")]
        if answered:
            self._end(call, "completed")
        else:
            self._end(call, "failed" if call.carrier == "telnyx" else "canceled")


# ---------------------------------------------------------------- HTTP


def _twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "status": status,
                         "more_info": f"https://www.twilio.com/docs/errors/{code}"}, status)


def _telnyx_error(status: int, code: str, title: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "title": title, "detail": title}]}, status)


def _twilio_call_json(call: FakeCall) -> dict[str, Any]:
    duration = (int((call.ended_at - call.answered_at).total_seconds())
                if call.ended_at and call.answered_at else None)
    return {"sid": call.sid, "account_sid": call.params.get("_account"), "to": call.to,
            "from": call.from_, "status": call.status, "date_created":
            _rfc2822(call.created_at), "start_time": _rfc2822(call.answered_at),
            "end_time": _rfc2822(call.ended_at), "duration": str(duration) if duration
            is not None else None, "answered_by": None, "direction": "outbound-api",
            "uri": f"/2010-04-01/Accounts/{call.params.get('_account')}/Calls/{call.sid}.json"}


def _page(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "first_page_uri": None, "next_page_uri": None, "previous_page_uri":
            None, "page": 0, "page_size": 50, "uri": "", "start": 0, "end": len(items)}


def build_app(net: FakeNetwork) -> Starlette:
    """The fake carriers' HTTP endpoints (both on one port)."""

    def twilio_auth(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            sid, _, token = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        account = request.path_params.get("account", sid)
        return sid if net.twilio_accounts.get(sid) == token and account == sid else None

    def telnyx_auth(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        key = header[7:] if header.startswith("Bearer ") else ""
        return key if key in net.telnyx_keys else None

    async def form(request: Request) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in parse_qsl((await request.body()).decode(), keep_blank_values=True):
            if k in out:
                out[k] = out[k] if isinstance(out[k], list) else [out[k]]
                out[k].append(v)
            else:
                out[k] = v
        return out

    def guarded(auth: Callable[[Request], str | None], refuse: Callable[[], Response]
                ) -> Callable[[Callable[[Request, str], Any]], Callable[[Request], Any]]:
        """Records each request and refuses it (``refuse``) without valid credentials."""
        def wrap(handler: Callable[[Request, str], Any]) -> Callable[[Request], Any]:
            async def endpoint(request: Request) -> Response:
                net.requests.append((request.method, request.url.path))
                who = auth(request)
                if who is None:
                    return refuse()
                return await handler(request, who)  # type: ignore[no-any-return]
            return endpoint
        return wrap

    twilio_api = guarded(twilio_auth, lambda: _twilio_error(401, 20003, "Authenticate"))
    telnyx_api = guarded(telnyx_auth,
                         lambda: _telnyx_error(401, "10009", "Authentication failed"))

    def telnyx_call(request: Request) -> FakeCall | None:
        return net.calls.get(request.path_params["sid"])

    # ---- Twilio

    @twilio_api
    async def tw_account(request: Request, sid: str) -> Response:
        return JSONResponse({"sid": sid, "status": "active", "friendly_name": "fake"})

    @twilio_api
    async def tw_calls(request: Request, sid: str) -> Response:
        if request.method == "GET":
            q = request.query_params
            items = [_twilio_call_json(c) for c in net.calls.values() if c.carrier == "twilio"
                     and (not q.get("To") or c.to == q["To"])
                     and (not q.get("From") or c.from_ == q["From"])]
            return JSONResponse(_page("calls", items))
        params = await form(request)
        if sid in net.broke:
            return _twilio_error(401, 20005, "Account not active")
        if net.rate_limited:
            return _twilio_error(429, 20429, "Too Many Requests")
        to = str(params.get("To", ""))
        behaviour = net.behaviours.get(to, "answer")
        if behaviour == "invalid":
            return _twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if isinstance(params.get("StatusCallbackEvent"), str):
            params["StatusCallbackEvent"] = [params["StatusCallbackEvent"]]
        params["_account"] = sid
        call = FakeCall("twilio", "CA" + uuid.uuid4().hex, to, str(params.get("From", "")),
                        behaviour, params, created_at=net.clock())
        net.calls[call.sid] = call
        net.dial_times.append(time.monotonic())
        net.play(call)
        return JSONResponse(_twilio_call_json(call) | {"status": "queued"}, 201)

    @twilio_api
    async def tw_call(request: Request, sid: str) -> Response:
        call = net.calls.get(request.path_params["sid"])
        if call is None:
            return _twilio_error(404, 20404, "The requested resource was not found")
        if request.method == "POST":
            params = await form(request)
            if params.get("Status") in ("completed", "canceled"):
                net.hang_up(call)
            if params.get("Twiml") or params.get("Url"):
                call.params.setdefault("_updates", []).append(params)
                dial = re.search(r"<Number[^>]*>([^<]+)</Number>", str(params.get("Twiml")))
                if dial is not None:
                    net.transfer(call, dial.group(1))
        return JSONResponse(_twilio_call_json(call))

    @twilio_api
    async def tw_available(request: Request, sid: str) -> Response:
        q = request.query_params
        country = request.path_params["country"]
        kind = request.path_params["kind"]
        numbers = [n for n in net.inventory["twilio"] if n not in net.owned]
        if kind == "TollFree":
            numbers = [n for n in numbers if n[2:5] in ("800", "888", "877", "866")]
        else:
            numbers = [n for n in numbers if n[2:5] not in ("800", "888", "877", "866")]
        if q.get("AreaCode"):
            numbers = [n for n in numbers if n[2:5] == q["AreaCode"]]
        if q.get("Contains"):
            numbers = [n for n in numbers if q["Contains"].lstrip("+") in n]
        size = int(q.get("PageSize", "50"))
        items = [{"phone_number": n, "friendly_name": n, "iso_country": country,
                  "capabilities": {"voice": True, "SMS": True, "MMS": False}}
                 for n in numbers[:size]]
        return JSONResponse(_page("available_phone_numbers", items))

    @twilio_api
    async def tw_pricing(request: Request, sid: str) -> Response:
        return JSONResponse({"country": "United States", "iso_country":
                             request.path_params["country"], "price_unit": "USD",
                             "phone_number_prices": [
                                 {"number_type": "local", "base_price": "1.15",
                                  "current_price": "1.15"},
                                 {"number_type": "toll free", "base_price": "2.15",
                                  "current_price": "2.15"}]})

    @twilio_api
    async def tw_incoming(request: Request, sid: str) -> Response:
        if request.method == "GET":
            want = request.query_params.get("PhoneNumber")
            items = [{"sid": n.sid, "phone_number": n.phone_number, "voice_url": n.voice_url}
                     for n in net.owned.values() if n.carrier == "twilio"
                     and (not want or n.phone_number == want)]
            return JSONResponse(_page("incoming_phone_numbers", items))
        params = await form(request)
        number = str(params.get("PhoneNumber", ""))
        if number not in net.inventory["twilio"] or number in net.owned:
            return _twilio_error(400, 21422, "PhoneNumber is not available")
        n = net.own("twilio", number)
        n.voice_url = params.get("VoiceUrl")
        n.status_url = params.get("StatusCallback")
        return JSONResponse({"sid": n.sid, "phone_number": number, "voice_url": n.voice_url},
                            201)

    @twilio_api
    async def tw_incoming_one(request: Request, sid: str) -> Response:
        n = next((n for n in net.owned.values() if n.sid == request.path_params["sid"]), None)
        if n is None:
            return _twilio_error(404, 20404, "The requested resource was not found")
        if request.method == "DELETE":
            del net.owned[n.phone_number]
            return Response(status_code=204)
        params = await form(request)
        n.voice_url = params.get("VoiceUrl", n.voice_url)
        n.status_url = params.get("StatusCallback", n.status_url)
        return JSONResponse({"sid": n.sid, "phone_number": n.phone_number,
                             "voice_url": n.voice_url})

    # ---- Telnyx

    def tx_query(request: Request) -> dict[str, str]:
        return {k: v for k, v in request.query_params.multi_items()}

    @telnyx_api
    async def tx_dial(request: Request, key: str) -> Response:
        if key in net.broke:
            return _telnyx_error(402, "20100", "Insufficient Funds")
        if net.rate_limited:
            return _telnyx_error(429, "10011", "Too many requests")
        params = json.loads(await request.body())
        to = str(params.get("to", ""))
        behaviour = net.behaviours.get(to, "answer")
        if behaviour == "invalid":
            return _telnyx_error(422, "10016", "Phone number must be in +E.164 format")
        call = FakeCall("telnyx", "v3:" + uuid.uuid4().hex, to, str(params.get("from", "")),
                        behaviour, params, created_at=net.clock())
        net.calls[call.sid] = call
        net.dial_times.append(time.monotonic())
        net.play(call)
        return JSONResponse({"data": {"call_control_id": call.sid, "call_leg_id":
                                      call.sid[3:], "call_session_id": "s-" + call.sid[3:],
                                      "is_alive": False, "record_type": "call"}})

    @telnyx_api
    async def tx_call(request: Request, key: str) -> Response:
        call = telnyx_call(request)
        if call is None:
            return _telnyx_error(404, "10005", "Resource not found")
        alive = call.status in ("queued", "ringing", "in-progress")
        end = call.ended_at if not alive else None
        duration = (int((call.ended_at - call.answered_at).total_seconds()) if
                    call.answered_at and call.ended_at and not alive else 0)
        return JSONResponse({"data": {
            "call_control_id": call.sid, "call_leg_id": call.sid[3:], "call_session_id":
            "s-" + call.sid[3:], "is_alive": alive, "record_type": "call",
            "client_state": call.params.get("client_state"), "call_duration": duration,
            "start_time": _iso(call.created_at), "end_time": _iso(end)}})

    @telnyx_api
    async def tx_action(request: Request, key: str) -> Response:
        call = telnyx_call(request)
        if call is None:
            return _telnyx_error(404, "10005", "Resource not found")
        action = request.path_params["action"]
        body = json.loads(await request.body() or b"{}")
        call.params.setdefault("_actions", []).append({"action": action, **body})
        if action == "hangup":
            net.hang_up(call)
        else:
            net.telnyx_command(call, action, body)
        return JSONResponse({"data": {"result": "ok"}})

    @telnyx_api
    async def tx_active(request: Request, key: str) -> Response:
        items = [{"call_control_id": c.sid, "call_leg_id": c.sid[3:], "call_session_id":
                  "s-" + c.sid[3:], "client_state": c.params.get("client_state"),
                  "call_duration": 1 if c.answered_at else 0, "record_type": "call"}
                 for c in net.calls.values() if c.carrier == "telnyx"
                 and c.status in ("queued", "ringing", "in-progress")]
        return JSONResponse({"data": items, "meta": {"total_results": len(items)}})

    @telnyx_api
    async def tx_available(request: Request, key: str) -> Response:
        q = tx_query(request)
        numbers = [n for n in net.inventory["telnyx"] if n not in net.owned]
        toll = q.get("filter[phone_number_type]") == "toll_free"
        numbers = [n for n in numbers if (n[2:5] in ("800", "888", "877", "866")) == toll]
        if q.get("filter[national_destination_code]"):
            numbers = [n for n in numbers if n[2:5] == q["filter[national_destination_code]"]]
        contains = q.get("filter[phone_number][contains]")
        if contains:
            numbers = [n for n in numbers if contains in n]
        limit = int(q.get("filter[limit]", "20"))
        items = [{"phone_number": n, "record_type": "available_phone_number",
                  "cost_information": {"monthly_cost": "1.00", "upfront_cost": "1.00",
                                       "currency": "USD"},
                  "features": [{"name": "voice"}, {"name": "sms"}]} for n in numbers[:limit]]
        return JSONResponse({"data": items, "metadata": {"total_results": len(items)}})

    @telnyx_api
    async def tx_orders(request: Request, key: str) -> Response:
        body = json.loads(await request.body())
        wanted = [p.get("phone_number") for p in body.get("phone_numbers", [])]
        for number in wanted:
            if number not in net.inventory["telnyx"] or number in net.owned:
                return _telnyx_error(422, "10015", f"{number} is not available")
        for number in wanted:
            n = net.own("telnyx", number)
            n.connection_id = body.get("connection_id")
        return JSONResponse({"data": {"id": str(uuid.uuid4()), "status": "pending",
                                      "phone_numbers": [{"phone_number": n}
                                                        for n in wanted]}})

    @telnyx_api
    async def tx_numbers(request: Request, key: str) -> Response:
        want = tx_query(request).get("filter[phone_number]")
        items = [{"id": n.sid, "phone_number": n.phone_number, "connection_id":
                  n.connection_id, "record_type": "phone_number"}
                 for n in net.owned.values() if n.carrier == "telnyx"
                 and (not want or n.phone_number == want)]
        return JSONResponse({"data": items, "meta": {"total_results": len(items),
                                                     "page_number": 1, "total_pages": 1}})

    @telnyx_api
    async def tx_number(request: Request, key: str) -> Response:
        n = next((n for n in net.owned.values() if n.sid == request.path_params["nid"]), None)
        if n is None:
            return _telnyx_error(404, "10005", "Resource not found")
        if request.method == "DELETE":
            del net.owned[n.phone_number]
        else:
            n.connection_id = json.loads(await request.body()).get("connection_id",
                                                                   n.connection_id)
        return JSONResponse({"data": {"id": n.sid, "phone_number": n.phone_number,
                                      "connection_id": n.connection_id}})

    @telnyx_api
    async def tx_balance(request: Request, key: str) -> Response:
        return JSONResponse({"data": {"balance": "100.00", "currency": "USD",
                                      "record_type": "balance"}})

    # ---- control (another process's test drives the fake through these)

    async def control(request: Request) -> Response:
        what = request.path_params["what"]
        body = json.loads(await request.body() or b"{}") if request.method == "POST" else {}
        if what == "config":
            return JSONResponse({"twilio_account_sid": TWILIO_SID, "twilio_auth_token":
                                 TWILIO_TOKEN, "telnyx_api_key": TELNYX_KEY,
                                 "telnyx_connection_id": TELNYX_CONNECTION,
                                 "telnyx_public_key": net.public_key})
        if what == "behave":
            for number, behaviour in body.items():
                net.behave(number, behaviour)
        elif what == "stock":
            net.stock(body["carrier"], body["numbers"])
        elif what == "deliver":
            return JSONResponse({"sent": await net.deliver(body.get("sid"))})
        elif what == "replay":
            return JSONResponse({"status": await net.replay(body["sid"],
                                                            body.get("index", -1))})
        elif what == "inbound":
            if body["carrier"] == "twilio":
                call = await net.twilio_inbound(body["to"], body["from"],
                                                body.get("behaviour", "caller"))
            else:
                call = net.telnyx_inbound(body["to"], body["from"], body["webhook_url"],
                                          behaviour=body.get("behaviour", "caller"))
            return JSONResponse({"sid": call.sid})
        elif what == "calls":
            return JSONResponse({"calls": [
                {"carrier": c.carrier, "sid": c.sid, "to": c.to, "from": c.from_, "status":
                 c.status, "behaviour": c.behaviour, "hung_up_by_api": c.hung_up_by_api,
                 "talking": c.media is not None and c.report is None,
                 "streamed": c.report is not None, "heard_seconds": round(
                     c.report.heard_seconds, 2) if c.report else None,
                 "closed_by": c.report.closed_by if c.report else None,
                 "marks": len(c.report.marks) if c.report else 0,
                 "said": c.params.get("_said"), "transferred_to": c.transferred_to,
                 "queued": len(c.queue), "sent": [
                     {"kind": s["kind"], "status": s["status"]} for s in c.sent]}
                for c in net.calls.values()], "dial_times": net.dial_times})
        else:
            return JSONResponse({"error": f"unknown control {what}"}, 404)
        return JSONResponse({"ok": True})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        net.start()  # plays calls by itself when ``auto``
        try:
            yield
        finally:
            await net.stop()

    tw = "/2010-04-01/Accounts/{account}"
    return Starlette(lifespan=lifespan, routes=[
        Route(tw + ".json", tw_account, methods=["GET"]),
        Route(tw + "/Calls.json", tw_calls, methods=["GET", "POST"]),
        Route(tw + "/Calls/{sid}.json", tw_call, methods=["GET", "POST"]),
        Route(tw + "/AvailablePhoneNumbers/{country}/{kind}.json", tw_available),
        Route("/v1/PhoneNumbers/Countries/{country}", tw_pricing),
        Route(tw + "/IncomingPhoneNumbers.json", tw_incoming, methods=["GET", "POST"]),
        Route(tw + "/IncomingPhoneNumbers/{sid}.json", tw_incoming_one,
              methods=["POST", "DELETE"]),
        Route("/v2/calls", tx_dial, methods=["POST"]),
        Route("/v2/calls/{sid}", tx_call, methods=["GET"]),
        Route("/v2/calls/{sid}/actions/{action}", tx_action, methods=["POST"]),
        Route("/v2/connections/{cid}/active_calls", tx_active),
        Route("/v2/available_phone_numbers", tx_available),
        Route("/v2/number_orders", tx_orders, methods=["POST"]),
        Route("/v2/phone_numbers", tx_numbers),
        Route("/v2/phone_numbers/{nid}", tx_number, methods=["PATCH", "DELETE"]),
        Route("/v2/balance", tx_balance),
        Route("/_fake/{what}", control, methods=["GET", "POST"]),
    ])


def script_for(behaviour: str) -> list[Step]:
    """What the callee of ``behaviour`` says (spoken by espeak-ng, short on purpose)."""
    lines = LINES.get(behaviour, LINES["answer"])
    if behaviour == "voicemail":
        return [SayNow(lines[0], espeak.speak_ulaw(lines[0]) + audio.silence_ulaw(300)
                       + audio.pcm_to_ulaw(beep_pcm(0.4, 1000.0)))]
    return [Say(text, espeak.speak_ulaw(text)) for text in lines]
