"""Outbound calls never pitch to a machine: the processor that holds the assistant's first
message until ``voice.amd`` knows who answered, then greets a person, answers a call
screener, or leaves the voicemail (or hangs up) on a machine.

It sits after the user turn aggregator (it sees the callee's VAD frames and each finished
turn) and before the brain: while the call is undecided, or on a machine, the callee's turns
stop here, so neither the deterministic policy nor the LLM ever answers a machine. The
callee's 8 kHz audio reaches its beep detector from the serializer (``audio``); the carrier's
own verdict arrives through ``carrier_verdict`` (``VoiceService.amd_verdict``, called by the
carrier-event path, or polled from the call's row by the media session).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from callfleet.voice.amd import (
    HUMAN,
    MACHINE,
    SCREENER,
    AnsweringMachineDetector,
    ToneDetector,
    Verdict,
)
from callfleet.voice.control import CallControl
from callfleet.voice.pipeline import last_user_text, seconds_to_say

Queue = Callable[[Frame], Awaitable[None]]


def _now() -> float:
    return asyncio.get_running_loop().time()


class VoicemailGate(FrameProcessor):
    """One call's answering-machine handling (``voicemail_action``: ``leave_message`` or
    ``hangup``)."""

    def __init__(self, control: CallControl, *, action: str, message: str, screening: str,
                 opening: Callable[[], Awaitable[None]], vad_stop: float,
                 started_at: float) -> None:
        super().__init__(name="VoicemailGate")
        self.control = control
        self.action = action
        self.message = message
        self.screening = screening
        self.opening = opening
        self.vad_stop = vad_stop
        self.detector = AnsweringMachineDetector(started_at)
        self.tone: ToneDetector | None = ToneDetector()
        self.greeted = False  # the opening was said: a person, the conversation runs
        self.done = False  # the voicemail was left, or the machine hung up on
        self._queue: Queue | None = None

    # ------------------------------------------------------------ inputs

    def audio(self, pcm8k: bytes) -> None:
        """Every inbound frame (from the serializer) while a beep still matters."""
        tone = self.tone
        if tone is None:
            return
        ended = tone.feed(pcm8k, _now())
        if ended is not None:
            self.control.event("beep", ended)
            self._decided(self.detector.beep(ended))

    def carrier_verdict(self, kind: str) -> bool:
        """The carrier's answering-machine verdict (``machine`` or ``human``)."""
        verdict = self.detector.carrier_verdict(kind, _now())
        self._decided(verdict)
        return verdict is not None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = _now()
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.detector.speech_started(now)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self.detector.speech_stopped(now - self.vad_stop)
        elif isinstance(frame, LLMContextFrame) and (not self.greeted
                                                     or self.detector.kind == MACHINE):
            # The callee's turn, before we know who they are: it stops here.
            self._decided(self.detector.user_turn(last_user_text(frame.context), now))
            await self.tick(now)
            return
        elif isinstance(frame, InterruptionFrame) and self.detector.kind == MACHINE:
            return  # a machine talking over the message does not cut it
        await self.push_frame(frame, direction)

    # ------------------------------------------------------------ decisions

    def _decided(self, verdict: Verdict | None) -> None:
        if verdict is None:
            return
        self.control.answered_by = self.detector.record()
        self.control.event("answered_by", verdict.at, who=verdict.kind,
                           source=verdict.source)
        if verdict.kind == HUMAN:
            self.tone = None  # no beep to wait for: the detector's work is over

    def bind(self, queue: Queue) -> None:
        """Where to queue what the assistant says (the pipeline's worker)."""
        self._queue = queue

    async def tick(self, now: float) -> None:
        """Called every few tens of milliseconds by the media session and after each turn."""
        if self.done or self._queue is None:
            return
        self._decided(self.detector.tick(now))
        kind = self.detector.kind
        if kind == HUMAN and not self.greeted:
            self.greeted = True
            await self.opening()
        elif kind == SCREENER and not self.detector.screened:
            self.detector.screened = True
            await self._queue(TTSSpeakFrame(self.screening, append_to_context=False))
        elif kind == MACHINE:
            await self._on_machine(now)

    async def _on_machine(self, now: float) -> None:
        if self.action != "leave_message" or not self.message:
            self.done = True
            self.tone = None
            self.control.voicemail_left = False
            self.control.request_hangup("voicemail", "voicemail", now, speech=False)
            return
        if not self.detector.ready_to_leave_message(now):
            return
        self.done = True
        self.tone = None
        self.control.voicemail_left = True
        self.control.answered_by = self.detector.record()
        self.control.event("voicemail_message", now)
        await self._queue(TTSSpeakFrame(self.message, append_to_context=False))
        self.control.request_hangup("voicemail", "voicemail", now,
                                    seconds_to_say(self.message))

    def record(self) -> dict[str, Any]:
        return self.detector.record()
