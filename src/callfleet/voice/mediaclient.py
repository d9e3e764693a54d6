"""The carrier's side of a media stream: connects to callfleet's media WebSocket exactly as a
carrier does (Twilio Media Streams or Telnyx media streaming framing), speaks a scripted
callee and listens.

Used by the tests, the latency benchmark and the simulated network's audio mode. It behaves
like the carrier's media edge:

* after ``connected`` and ``start`` it sends the callee's audio as 20 ms µ-law ``media``
  frames on a real-time clock, silence included (a carrier never stops sending);
* what callfleet sends is appended to a **playout queue** played at 20 ms a frame; ``clear``
  drops what is queued; a ``mark`` is echoed back when the audio queued before it has been
  played (or dropped by ``clear``), as Twilio does;
* everything played is recorded (``heard``), so a test can run it through speech-to-text.

It measures at the carrier, where a caller would notice: the time from the end of the
callee's speech to the first non-silent frame of the answer, barge-in to ``clear``, audio
still queued when callfleet hung up (a truncated goodbye), and how late frames arrived
against the playout clock. No pipecat here: it runs in a plain install.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from callfleet.voice import audio

# ---------------------------------------------------------------- the callee's script


@dataclass(frozen=True)
class Say:
    """Say ``text`` (as ``ulaw`` audio) once the assistant has finished its turn."""

    text: str
    ulaw: bytes


@dataclass(frozen=True)
class SayNow:
    """Say ``text`` at once, without waiting for the assistant: a callee who speaks first
    ("Hello?"), an answering machine's greeting, a call screener's question."""

    text: str
    ulaw: bytes
    after_seconds: float = 0.0  # from the stream's start (a person picks up, then speaks)


@dataclass(frozen=True)
class BargeIn:
    """Start saying ``text`` while the assistant talks, ``after_ms`` into its audio."""

    text: str
    ulaw: bytes
    after_ms: int = 800


@dataclass(frozen=True)
class Wait:
    """Stay silent for ``seconds`` (the assistant may fill the silence)."""

    seconds: float


@dataclass(frozen=True)
class Pause:
    """Stay silent for ``seconds`` whatever the assistant does (a caller on hold)."""

    seconds: float


@dataclass(frozen=True)
class Dtmf:
    digits: str


@dataclass(frozen=True)
class Hangup:
    """Hang up; with ``mid_sentence_ms`` only once that much of the assistant's next turn
    has been heard (the callee hangs up on it)."""

    mid_sentence_ms: int | None = None


Step = Say | SayNow | BargeIn | Wait | Pause | Dtmf | Hangup
Responder = Callable[[bytes], Awaitable[list[Step]]]


@dataclass
class TurnTiming:
    text: str
    speech_end: float  # loop time the callee's last speech frame was sent
    first_audio: float | None = None  # first non-silent assistant frame received after it

    @property
    def latency(self) -> float | None:
        return None if self.first_audio is None else self.first_audio - self.speech_end


@dataclass
class CallReport:
    """What the carrier saw."""

    turns: list[TurnTiming] = field(default_factory=list)
    barge_ins: list[tuple[float, float | None]] = field(default_factory=list)  # start, clear
    clears: list[float] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)  # echoed, in order
    heard: bytearray = field(default_factory=bytearray)  # µ-law actually played
    received_ms: float = 0.0  # assistant audio received (played or not)
    queued_ms_at_close: float | None = None  # audio left unplayed when callfleet hung up
    queued_speech_ms_at_close: float | None = None  # ... of it not silence (a cut goodbye)
    closed_by: str | None = None  # "callfleet" | "callee" | "error"
    close_code: int | None = None
    lateness_ms: list[float] = field(default_factory=list)
    connected_at: float = 0.0
    ended_at: float = 0.0
    error: str | None = None
    refused_status: int | None = None  # HTTP status when the WebSocket was refused

    @property
    def heard_seconds(self) -> float:
        return len(self.heard) / audio.CARRIER_RATE

    def heard_pcm(self, rate: int = 16000) -> bytes:
        return audio.resample(audio.ulaw_to_pcm(bytes(self.heard)), audio.CARRIER_RATE, rate)


# ---------------------------------------------------------------- the client


class _Queued:
    """The playout queue: µ-law bytes with marks between them."""

    def __init__(self) -> None:
        self.items: deque[bytes | str] = deque()
        self.bytes = 0

    def add_audio(self, data: bytes) -> None:
        self.items.append(data)
        self.bytes += len(data)

    def add_mark(self, name: str) -> None:
        self.items.append(name)

    def speech_ms(self) -> float:
        left = b"".join(i for i in self.items if isinstance(i, bytes))
        return sum(audio.FRAME_MS for f in audio.frames_of(left) if not audio.is_silent_ulaw(f))

    def clear(self) -> list[str]:
        marks = [i for i in self.items if isinstance(i, str)]
        self.items.clear()
        self.bytes = 0
        return marks

    def take(self, n: int) -> tuple[bytes, list[str]]:
        """Up to ``n`` bytes of audio, and the marks reached while taking them."""
        out = bytearray()
        marks: list[str] = []
        while self.items and (len(out) < n or isinstance(self.items[0], str)):
            head = self.items[0]
            if isinstance(head, str):
                marks.append(self.items.popleft())  # type: ignore[arg-type]
                continue
            want = n - len(out)
            if len(head) <= want:
                out += head
                self.items.popleft()
            else:
                out += head[:want]
                self.items[0] = head[want:]
            if len(out) >= n:
                # Marks right behind this audio are reached once it has played.
                while self.items and isinstance(self.items[0], str):
                    marks.append(self.items.popleft())  # type: ignore[arg-type]
        self.bytes -= len(out)
        return bytes(out), marks


class CarrierMediaClient:
    """One call's media stream, carrier side, in ``framing`` ``twilio`` (Media Streams:
    ``streamSid``, ``customParameters``) or ``telnyx`` (``stream_id``, ``call_control_id``
    and ``client_state`` in the start, ``sequence_number``)."""

    def __init__(self, url: str, script: list[Step], *, framing: str = "twilio",
                 call_id: str | None = None, client_state: str | None = None,
                 custom_parameters: dict[str, str] | None = None,
                 quiet_ms: int = 400, max_seconds: float = 60.0,
                 headers: dict[str, str] | None = None,
                 on_event: Callable[[str, float], None] | None = None,
                 responder: Responder | None = None) -> None:
        if framing not in ("twilio", "telnyx"):
            raise ValueError(f"unknown media framing {framing!r}")
        self.url = url
        self.framing = framing
        self.client_state = client_state
        self.script = list(script)
        self.custom_parameters = dict(custom_parameters or {})
        self.quiet_ms = quiet_ms
        self.max_seconds = max_seconds
        self.headers = headers or {}
        self.on_event = on_event
        # Once the script is spoken: asked, after each assistant turn, with the µ-law heard
        # since the callee last spoke, for what to do next (a conversational callee).
        self.responder = responder
        self._turn_audio = bytearray()
        self._responding: asyncio.Task[list[Step]] | None = None
        self.stream_sid = ("MZ" + secrets.token_hex(16) if framing == "twilio"
                           else secrets.token_hex(16))
        self.call_sid = call_id or ("CA" + secrets.token_hex(16) if framing == "twilio"
                                    else "v3:" + secrets.token_hex(16))
        self.account_sid = "AC" + secrets.token_hex(16)
        self.report = CallReport()
        self._queue = _Queued()
        self._outgoing: deque[bytes] = deque()  # callee speech frames to send
        self._speaking_text: str | None = None
        self._assistant_heard_ms = 0.0  # in the assistant's current turn
        self._last_assistant_audio = 0.0  # loop time a non-silent frame last played
        self._heard_since_said = False
        self._pending_turn: TurnTiming | None = None
        self._pending_barge: int | None = None
        self._dry_at: float | None = None  # when the playout queue last ran dry
        self._last_arrival = 0.0
        self._closed = asyncio.Event()
        self._ending = False
        self._seq = 0
        self._chunk = 0
        self._t0 = 0.0
        self._ws: ClientConnection | None = None

    # ------------------------------------------------------------ protocol

    def _msg(self, event: str, **body: Any) -> str:
        self._seq += 1
        if self.framing == "telnyx":
            return json.dumps({"event": event, "sequence_number": str(self._seq),
                               "stream_id": self.stream_sid, **body})
        return json.dumps({"event": event, "sequenceNumber": str(self._seq),
                           "streamSid": self.stream_sid, **body})

    def _opening(self) -> list[str]:
        """The stream's first two messages in the carrier's framing."""
        if self.framing == "telnyx":
            start: dict[str, Any] = {
                "call_control_id": self.call_sid,
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}
            if self.client_state:
                start["client_state"] = self.client_state
            return [json.dumps({"event": "connected", "version": "1.0.0"}),
                    self._msg("start", start=start)]
        return [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
                self._msg("start", start={
                    "streamSid": self.stream_sid, "accountSid": self.account_sid,
                    "callSid": self.call_sid, "tracks": ["inbound"],
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                    "channels": 1}})]

    def _stop_body(self) -> dict[str, Any]:
        if self.framing == "telnyx":
            return {"call_control_id": self.call_sid}
        return {"accountSid": self.account_sid, "callSid": self.call_sid}

    async def run(self) -> CallReport:
        loop = asyncio.get_running_loop()
        try:
            async with connect(self.url, additional_headers=self.headers, compression=None,
                               open_timeout=10, max_size=2**20) as ws:
                self._ws = ws
                self._t0 = self.report.connected_at = loop.time()
                for opening in self._opening():
                    await ws.send(opening)
                receiver = asyncio.create_task(self._receive(ws))
                try:
                    await asyncio.wait_for(self._clock(ws), self.max_seconds)
                except TimeoutError:
                    self.report.error = f"call still up after {self.max_seconds} s"
                    self.report.closed_by = "callee"
                    await self._send_stop(ws)
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await receiver
        except ConnectionClosed as exc:
            self.report.closed_by = self.report.closed_by or "callfleet"
            self.report.close_code = exc.rcvd.code if exc.rcvd else None
        except (OSError, TimeoutError) as exc:
            self.report.error = f"{type(exc).__name__}: {exc}"
            self.report.closed_by = "error"
        except InvalidHandshake as exc:  # refused before the stream opened
            self.report.error = f"{type(exc).__name__}: {exc}"
            self.report.closed_by = "error"
            if isinstance(exc, InvalidStatus):
                self.report.refused_status = exc.response.status_code
        self.report.ended_at = loop.time()
        return self.report

    def end(self) -> None:
        """The carrier ends the stream (the call was hung up or transferred through its
        API): ``stop``, then the socket closes."""
        self._ending = True

    async def _send_stop(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(self._msg("stop", stop=self._stop_body()))
            await ws.close()

    async def _receive(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for raw in ws:
                msg = json.loads(raw)
                event = msg.get("event")
                now = loop.time()
                if event == "media":
                    self._on_media(base64.b64decode(msg["media"]["payload"]), now)
                elif event == "clear":
                    self.report.clears.append(now)
                    for mark in self._queue.clear():
                        await self._echo(ws, mark)
                    self._dry_at = None
                    if self.report.barge_ins and self.report.barge_ins[-1][1] is None:
                        start = self.report.barge_ins[-1][0]
                        self.report.barge_ins[-1] = (start, now)
                    self._event("clear", now)
                elif event == "mark":
                    name = msg.get("mark", {}).get("name", "")
                    if self._queue.bytes == 0:
                        await self._echo(ws, name)
                    else:
                        self._queue.add_mark(name)
        except ConnectionClosed as exc:
            self.report.close_code = exc.rcvd.code if exc.rcvd else None
        if self.report.closed_by is None:
            self.report.closed_by = "callfleet"
            self.report.queued_ms_at_close = self._queue.bytes / audio.CARRIER_RATE * 1000
            self.report.queued_speech_ms_at_close = self._queue.speech_ms()
        self._closed.set()

    async def _echo(self, ws: ClientConnection, name: str) -> None:
        self.report.marks.append(name)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(self._msg("mark", mark={"name": name}))

    def _on_media(self, data: bytes, now: float) -> None:
        self.report.received_ms += len(data) / audio.CARRIER_RATE * 1000
        silent = audio.is_silent_ulaw(data)
        if not silent:
            turn = self._pending_turn
            if turn is not None and turn.first_audio is None and now >= turn.speech_end:
                turn.first_audio = now
                self._event("first_audio", now)
            # Lateness against the playout clock: the queue ran dry mid-turn, and this frame
            # came after the moment it should have started playing.
            if self._dry_at is not None and now - self._last_arrival < 1.0:
                self.report.lateness_ms.append(max(0.0, (now - self._dry_at) * 1000))
            elif self._queue.bytes:
                self.report.lateness_ms.append(0.0)
            self._last_arrival = now
        self._dry_at = None
        self._queue.add_audio(data)

    def _event(self, name: str, at: float) -> None:
        if self.on_event is not None:
            self.on_event(name, at)

    # ------------------------------------------------------------ the 20 ms clock

    async def _clock(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        tick = audio.FRAME_MS / 1000
        next_at = loop.time()
        while not self._closed.is_set():
            now = loop.time()
            if self._ending:
                self.report.closed_by = self.report.closed_by or "carrier"
                await self._send_stop(ws)
                return
            await self._play(ws, now)
            if not await self._advance_script(ws, now):
                return
            frame = self._outgoing.popleft() if self._outgoing else audio.silence_ulaw(20)
            if not self._outgoing and self._speaking_text is not None:
                self._callee_finished(now)
            self._chunk += 1
            try:
                await ws.send(self._msg("media", media={
                    "track": "inbound", "chunk": str(self._chunk),
                    "timestamp": str(int((now - self._t0) * 1000)),
                    "payload": base64.b64encode(frame).decode()}))
            except ConnectionClosed:
                return
            next_at += tick
            delay = next_at - loop.time()
            if delay < -0.2:  # the loop stalled: resynchronise rather than burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(max(0.0, delay))

    async def _play(self, ws: ClientConnection, now: float) -> None:
        had = self._queue.bytes > 0
        data, marks = self._queue.take(audio.FRAME_BYTES)
        if data:
            self.report.heard += data
            if self._speaking_text is None:
                self._turn_audio += data
            if not audio.is_silent_ulaw(data):
                self._assistant_heard_ms += audio.FRAME_MS
                self._last_assistant_audio = now
                if self._speaking_text is None:  # an answer, not audio the callee talked over
                    self._heard_since_said = True
        for mark in marks:
            await self._echo(ws, mark)
        if had and self._queue.bytes == 0:
            self._dry_at = now + audio.FRAME_MS / 1000

    def _assistant_idle(self, now: float) -> bool:
        return (self._queue.bytes == 0 and self._heard_since_said
                and now - self._last_assistant_audio >= self.quiet_ms / 1000)

    def _speak(self, text: str, ulaw: bytes) -> None:
        self._outgoing.extend(audio.frames_of(ulaw))
        self._speaking_text = text
        self._turn_audio = bytearray()
        self._heard_since_said = False
        self._assistant_heard_ms = 0.0

    def _callee_finished(self, now: float) -> None:
        self._pending_turn = TurnTiming(self._speaking_text or "", now)
        self.report.turns.append(self._pending_turn)
        self._speaking_text = None

    async def _advance_script(self, ws: ClientConnection, now: float) -> bool:
        """Start the next step when it is due; False once the callee has hung up."""
        if self._speaking_text is not None:
            return True
        if not self.script:
            self._respond(now)
            return True  # nothing to say (yet): wait for callfleet, or for the responder
        step = self.script[0]
        if isinstance(step, Say):
            if self._assistant_idle(now):
                self.script.pop(0)
                self._speak(step.text, step.ulaw)
        elif isinstance(step, SayNow):
            if now - self._t0 >= step.after_seconds:
                self.script.pop(0)
                self._speak(step.text, step.ulaw)
        elif isinstance(step, BargeIn):
            talking = now - self._last_assistant_audio < 0.1  # the assistant's audio plays
            if self._assistant_heard_ms >= step.after_ms and talking:
                self.script.pop(0)
                self.report.barge_ins.append((now, None))
                self._speak(step.text, step.ulaw)
        elif isinstance(step, Wait):
            if self._assistant_idle(now):
                self.script[0] = _WaitUntil(now + step.seconds)
        elif isinstance(step, Pause):
            self.script[0] = _WaitUntil(now + step.seconds)
        elif isinstance(step, _WaitUntil):
            if now >= step.until:
                self.script.pop(0)
        elif isinstance(step, Dtmf):
            self.script.pop(0)
            for digit in step.digits:
                dtmf = ({"digit": digit} if self.framing == "telnyx"
                        else {"track": "inbound_track", "digit": digit})
                await ws.send(self._msg("dtmf", dtmf=dtmf))
        elif isinstance(step, Hangup):
            due = (self._assistant_heard_ms >= step.mid_sentence_ms
                   and now - self._last_assistant_audio < 0.1
                   if step.mid_sentence_ms is not None else self._assistant_idle(now))
            if due:
                self.script.pop(0)
                self.report.closed_by = "callee"
                await self._send_stop(ws)
                return False
        return True


    def _respond(self, now: float) -> None:
        task = self._responding
        if task is not None:
            if task.done():
                self._responding = None
                if not task.cancelled() and task.exception() is None:
                    self.script.extend(task.result())
            return
        if self.responder is not None and self._turn_audio and self._assistant_idle(now):
            heard, self._turn_audio = bytes(self._turn_audio), bytearray()
            self._responding = asyncio.create_task(self.responder(heard))


@dataclass(frozen=True)
class _WaitUntil:
    until: float


async def run_calls(clients: list[CarrierMediaClient], stagger: float = 0.0
                    ) -> list[CallReport]:
    """Run several calls at once (``stagger`` seconds apart)."""

    async def one(i: int, c: CarrierMediaClient) -> CallReport:
        if stagger:
            await asyncio.sleep(i * stagger)
        return await c.run()

    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(clients))))
