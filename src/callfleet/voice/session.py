"""One call's media session: the carrier's WebSocket in, a pipeline run, the call's record out.

``MediaSession.run`` reads the stream's start (``voice.framing``), asks the ``Planner``
what to run for the call (assistant, speech providers, brain: ``CallPlan``), builds and
runs the pipeline, and hangs up when the conversation is over and its last words have
played (``CallControl.ready_to_hang_up``), when the call reaches its maximum duration, or
when the callee hangs up. The planner's ``finished`` gets the call's record (messages with
what was actually heard, transcript, per-turn latency, DTMF, why it ended).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.workers.runner import WorkerRunner
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from callfleet.conversation.lines import Lines
from callfleet.conversation.llm import LlmConfig
from callfleet.conversation.policy import DeterministicPolicy, Turn
from callfleet.voice import llm as voice_llm
from callfleet.voice import providers
from callfleet.voice.control import CallControl
from callfleet.voice.framing import Framing, HandshakeError, StreamStart
from callfleet.voice.pipeline import DeterministicBrain, build, seconds_to_say
from callfleet.voice.recording import Recorder
from callfleet.voice.runtime import BARGE_INS, CALLS, TURN_LATENCY, stop_task
from callfleet.voice.serializers import serializer_for
from callfleet.voice.settings import VoiceSettings
from callfleet.voice.voicemail import VoicemailGate

log = structlog.get_logger("callfleet.voice")

HANDSHAKE_SECONDS = 10.0
WATCH_SECONDS = 0.05
PROGRESS_SECONDS = 2.0
VERDICT_POLL_SECONDS = 1.0  # the carrier's AMD verdict, read from the call's row ...
VERDICT_POLL_UNTIL = 40.0  # ... during the call's first seconds
DEFAULT_SCREENING = ("Hi, this is an automated assistant calling for {name}. "
                     "I'll hold while you connect me.")
MAX_DURATION_GOODBYE = "I'm afraid we're out of time. Thank you, goodbye!"
IDLE_GOODBYE = "It seems this isn't a good time. I'll try you another day. Goodbye!"


@dataclass
class CallPlan:
    """What to run for one call: the deterministic policy, or an LLM (with the assistant's
    tools and prompt)."""

    call_id: str
    settings: VoiceSettings
    lines: Lines  # every line the assistant may say, rendered for this call
    policy: DeterministicPolicy | None = None
    llm: LlmConfig | None = None
    system_prompt: str = ""
    assistant: Any = None
    call_info: dict[str, Any] = field(default_factory=dict)
    tool_timeout: float = 5.0
    record: bool = False  # keep both sides' audio (the assistant's recording_enabled)
    # Outbound with voicemail detection: hold the first message until a person is known to
    # be there (``voice.voicemail``); on a machine, ``voicemail_action``.
    detect_machine: bool = False
    voicemail_action: str = "hangup"
    screening: str = ""  # what the assistant tells a call screener (who is calling, why)


class Planner(Protocol):
    async def plan(self, call_id: str, start: StreamStart) -> CallPlan | None:
        """The call's plan, or None to refuse the stream (unknown or ended call)."""
        ...

    async def progress(self, call_id: str, record: dict[str, Any]) -> None:
        """The conversation so far (kept if the process dies mid-call)."""
        ...

    async def finished(self, call_id: str, record: dict[str, Any]) -> None: ...


async def read_start(websocket: WebSocket, framing: Framing) -> StreamStart:
    """The stream's start, from its first few messages (bounded in count and time)."""

    async def read() -> StreamStart:
        for _ in range(5):
            raw = await websocket.receive_text()
            start = framing.start(framing.parse(raw))
            if start is not None:
                return start
        raise HandshakeError("the stream did not start within its first messages")

    try:
        return await asyncio.wait_for(read(), HANDSHAKE_SECONDS)
    except TimeoutError:
        raise HandshakeError("the stream did not start in time") from None
    except (KeyError, WebSocketDisconnect, RuntimeError):
        raise HandshakeError("the stream closed before it started") from None


class MediaSession:
    def __init__(self, websocket: WebSocket, framing: Framing, planner: Planner, *,
                 http: httpx.AsyncClient | None = None) -> None:
        self.websocket = websocket
        self.framing = framing
        self.planner = planner
        self.http = http
        self.control: CallControl | None = None
        self.recorder: Recorder | None = None
        self.gate: VoicemailGate | None = None
        self._record: dict[str, Any] | None = None

    async def run(self, call_id: str, start: StreamStart) -> dict[str, Any] | None:
        plan = await self.planner.plan(call_id, start)
        if plan is None:
            await _close(self.websocket, 1008, "unknown call")
            return None
        loop = asyncio.get_running_loop()
        control = self.control = CallControl(call_id, started_at=loop.time())
        try:
            await self._run(plan, start, control)
        finally:
            if control.ended_reason is None:
                control.finish(loop.time(), "pipeline_error", "failed")
            CALLS.labels(control.ended_reason or "unknown").inc()
            await _close(self.websocket, 1000, "call ended")
        return await self._finished(control)

    def carrier_verdict(self, kind: str) -> bool:
        """The carrier's answering-machine verdict for this call (``machine`` or
        ``human``); True when it changed what the call does."""
        if self.gate is None:
            return False
        return self.gate.carrier_verdict(kind)

    async def _finished(self, control: CallControl) -> dict[str, Any]:
        """Hand the call's record to the planner, once. Called before the stream closes when
        callfleet hangs up, so the call is ended with its own outcome before the carrier's
        "completed" can arrive."""
        if self._record is not None:
            return self._record
        record = self._record = control.record()
        if self.recorder is not None and self.recorder.seconds > 0:
            record["recording_wav"] = self.recorder.wav()
        with contextlib.suppress(Exception):
            for row in control.latencies:
                if "callee_stopped_to_audio_ms" in row:
                    TURN_LATENCY.labels("callee_stopped_to_audio").observe(
                        row["callee_stopped_to_audio_ms"] / 1000)
                for kind in ("stt_ms", "llm_first_token_ms", "tts_first_audio_ms"):
                    if kind in row:
                        TURN_LATENCY.labels(kind[:-3]).observe(row[kind] / 1000)
            BARGE_INS.inc(sum(1 for e in control.events if e["type"] == "barge_in"))
        await self.planner.finished(control.call_id, record)
        return record

    async def _run(self, plan: CallPlan, start: StreamStart, control: CallControl) -> None:
        loop = asyncio.get_running_loop()
        settings = plan.settings
        stt = providers.build_stt(settings, start)
        tts = providers.build_tts(settings)
        callee_hung_up = asyncio.Event()

        def on_stop(at: float) -> None:
            control.event("carrier_stop", at)
            callee_hung_up.set()

        self.recorder = Recorder(control.started_at) if plan.record else None
        policy = plan.policy or DeterministicPolicy(plan.lines)
        opening = policy.opening() if plan.llm is None else Turn(plan.lines.first_message)
        before: list[Any] = []
        workers: list[Any] = []

        async def say_opening() -> None:
            if opening.text:
                await workers[0].queue_frame(TTSSpeakFrame(
                    opening.text, append_to_context=plan.llm is None))

        gate = None
        if plan.detect_machine:
            name = str(plan.call_info.get("contact_name") or "you")
            gate = self.gate = VoicemailGate(
                control, action=plan.voicemail_action, message=plan.lines.voicemail,
                screening=plan.screening or DEFAULT_SCREENING.format(name=name),
                opening=say_opening, vad_stop=settings.vad_stop(), started_at=loop.time())
            before.append(gate)  # first: nothing answers a callee not known to be a person
        serializer = serializer_for(start, on_mark=control.mark_echoed,
                                    on_clear=control.cleared, on_stop=on_stop,
                                    recorder=self.recorder,
                                    on_audio=gate.audio if gate is not None else None)
        context = None
        if plan.llm is not None:
            brain: Any = voice_llm.llm_service(plan.llm)
            context = voice_llm.llm_context(plan.system_prompt, plan.lines.first_message,
                                            plan.assistant)
            voice_llm.register_tools(brain, plan.assistant, plan.lines, control,
                                     plan.call_info, self.http or httpx.AsyncClient(),
                                     plan.tool_timeout)
            before.append(voice_llm.OptOutGuard(control))  # an opt-out never reaches the model
        else:
            brain = DeterministicBrain(policy, control, latency=settings.brain_latency)
        call = build(websocket=self.websocket, start=start, framing=self.framing,
                     control=control, settings=settings, stt=stt, tts=tts, brain=brain,
                     serializer=serializer, context=context, before_brain=before)
        worker = call.worker
        workers.append(worker)
        if gate is not None:
            gate.bind(worker.queue_frame)
        idle = {"n": 0}

        @call.user_aggregator.event_handler("on_user_turn_stopped")
        async def on_user_turn_stopped(_agg: Any, _strategy: Any, message: Any) -> None:
            idle["n"] = 0
            control.user_said(getattr(message, "content", "") or "", loop.time())

        @call.user_aggregator.event_handler("on_user_turn_idle")
        async def on_user_turn_idle(_agg: Any) -> None:
            if control.hangup is not None:
                return
            idle["n"] += 1
            if idle["n"] == 1:
                await worker.queue_frame(TTSSpeakFrame(settings.idle_prompt))
                control.event("idle_prompt", loop.time())
                return
            await worker.queue_frame(TTSSpeakFrame(IDLE_GOODBYE))
            control.request_hangup("silence_timeout",
                                   "answered" if control.callee_spoke else "no_answer",
                                   loop.time(), seconds_to_say(IDLE_GOODBYE))

        @call.transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _ws: Any) -> None:
            callee_hung_up.set()

        if gate is None:
            await say_opening()
        runner = WorkerRunner(handle_sigint=False)
        watcher = asyncio.create_task(self._watch(control, worker, callee_hung_up,
                                                  settings.max_call_seconds))
        try:
            await runner.add_workers(worker)
            await runner.run()
        finally:
            await stop_task(watcher)
        if control.ended_reason is None:
            control.finish(loop.time(), "customer_ended_call", "answered")

    async def _watch(self, control: CallControl, worker: Any, callee_hung_up: asyncio.Event,
                     max_seconds: float) -> None:
        """Hang up when the goodbye has played, at the maximum duration, or when the callee
        is gone."""
        loop = asyncio.get_running_loop()
        limit = control.started_at + max_seconds
        saved, save_at = 0, loop.time() + PROGRESS_SECONDS
        verdict_at = loop.time() + VERDICT_POLL_SECONDS
        gate = self.gate
        while True:
            now = loop.time()
            if gate is not None and not gate.done:
                heard = gate.detector.verdict
                if now >= verdict_at and now - control.started_at < VERDICT_POLL_UNTIL \
                        and (heard is None or heard.source != "carrier"):
                    verdict_at = now + VERDICT_POLL_SECONDS
                    await self._poll_verdict(control.call_id)
                await gate.tick(now)
            if now >= save_at:
                save_at = now + PROGRESS_SECONDS
                if len(control.messages) != saved:
                    saved = len(control.messages)
                    await self._progress(control)
            if callee_hung_up.is_set():
                outcome = "answered" if control.callee_spoke else "no_answer"
                if gate is not None and gate.detector.kind == "machine":
                    outcome = "voicemail"  # the machine hung up before the message
                    if control.voicemail_left is None:
                        control.voicemail_left = False
                control.finish(now, "customer_ended_call", outcome)
                break
            if control.ready_to_hang_up(now):
                control.finish(now, "assistant_ended_call", "answered")
                # The goodbye has played: record the call, then hang up.
                await self._finished(control)
                break
            if now >= limit and control.hangup is None:
                await worker.queue_frame(TTSSpeakFrame(MAX_DURATION_GOODBYE))
                control.request_hangup("max_duration", "answered", now,
                                       seconds_to_say(MAX_DURATION_GOODBYE))
            await asyncio.sleep(WATCH_SECONDS)
        await worker.cancel(reason=control.ended_reason)


    async def _poll_verdict(self, call_id: str) -> None:
        """A carrier's AMD verdict handled by another process reaches this one through the
        call's row (``Planner.amd_verdict``, when the planner has one)."""
        read = getattr(self.planner, "amd_verdict", None)
        if read is None:
            return
        try:
            kind = await read(call_id)
        except Exception:  # a failed read must not end the call; the next one may succeed
            log.exception("voice_verdict_read_failed", call_id=call_id)
            return
        if kind is not None:
            self.carrier_verdict(kind)

    async def _progress(self, control: CallControl) -> None:
        try:
            await self.planner.progress(control.call_id, control.record())
        except Exception:  # a failed save must not end the call; the next one may succeed
            log.exception("voice_progress_save_failed", call_id=control.call_id)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code, reason)
