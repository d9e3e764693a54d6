"""One call's pipecat pipeline and the processors callfleet adds to it.

    carrier → input → STT → user turns (VAD, barge-in, idle) → brain → TTS
            → PlayoutMarker → output → carrier
                                     → OutputTap → assistant context

* the **brain** is the deterministic policy as a processor (``DeterministicBrain``, in place
  of the LLM service) or pipecat's ``OpenAILLMService`` with the assistant's tools
  (``voice.llm``);
* ``PlayoutMarker`` puts a carrier ``mark`` behind every sentence's audio, so the call's
  ``CallControl`` learns what the callee has heard, and when the goodbye has played;
* ``OutputTap`` sees frames after they were written to the carrier: per-turn latency
  (speech-to-text, LLM first token, text-to-speech first audio, callee stopped → assistant
  audio) and DTMF.

Traps this layout avoids (docs/decisions/0027): the input runs at 16 kHz (Whisper fed the
carrier's 8 kHz as 16 kHz hears garbage); the turn ends on a speech timeout, not Smart-Turn's
3 s default; a turn without a transcript ends after ``turn_stop_timeout``, not 5 s; the
serializer never hangs up by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TTFBMetricsData
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.turns.user_start.transcription_user_turn_start_strategy import (
    TranscriptionUserTurnStartStrategy,
)
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from callfleet.conversation.policy import Turn
from callfleet.voice.control import CallControl
from callfleet.voice.framing import Framing, StreamStart
from callfleet.voice.settings import VoiceSettings
from callfleet.voice.vad import SharedSileroVAD

PIPELINE_IN_RATE = 16000  # the serializer upsamples the carrier's 8 kHz
PIPELINE_OUT_RATE = 8000


def _now() -> float:
    return asyncio.get_running_loop().time()


class DeterministicBrain(FrameProcessor):
    """The deterministic policy in the LLM's place: answers each finished user turn."""

    def __init__(self, policy: Any, control: CallControl, *, latency: float = 0.0) -> None:
        super().__init__(name="DeterministicBrain")
        self.policy = policy
        self.control = control
        self.latency = latency
        self._answer: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            text = last_user_text(frame.context)
            if text:
                self._cancel()
                self._answer = asyncio.create_task(self._reply(text))
            return
        if isinstance(frame, InterruptionFrame):
            self._cancel()
        await self.push_frame(frame, direction)

    def _cancel(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        self._answer = None

    async def _reply(self, text: str) -> None:
        began = _now()
        if self.latency:
            await asyncio.sleep(self.latency)
        turn = self.policy.reply(text)
        await self.push_frame(MetricsFrame(data=[TTFBMetricsData(
            processor=self.name, value=_now() - began)]))
        await self.say(turn)

    async def say(self, turn: Turn) -> None:
        if not turn.text:
            return
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(turn.text))
        await self.push_frame(LLMFullResponseEndFrame())
        if turn.end_call:
            self.control.request_hangup(turn.ended_reason or "assistant_ended_call",
                                        turn.outcome, _now(), seconds_to_say(turn.text))

    async def cleanup(self) -> None:
        self._cancel()
        await super().cleanup()


def last_user_text(context: LLMContext) -> str:
    for m in reversed(context.get_messages()):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def seconds_to_say(text: str) -> float:
    return 0.5 + len(text.split()) * 0.4


class InputAudioStop(FrameProcessor):
    """Past speech-to-text and the turn detector nothing uses the callee's audio: dropping it
    here spares every later stage 50 frames a second per call."""

    def __init__(self) -> None:
        super().__init__(name="InputAudioStop")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)


class PlayoutMarker(FrameProcessor):
    """Sends a carrier ``mark`` behind every sentence's audio (see ``voice.control``)."""

    def __init__(self, control: CallControl, framing: Framing, stream_id: str) -> None:
        super().__init__(name="PlayoutMarker")
        self.control = control
        self.framing = framing
        self.stream_id = stream_id

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, OutputAudioRawFrame):
            ms = len(frame.audio) / 2 / frame.sample_rate * 1000 / max(1, frame.num_channels)
            self.control.audio_queued(ms)
            if self.control.hangup is not None:
                self.control.extend_deadline(ms)
        elif isinstance(frame, (TTSTextFrame, TTSStoppedFrame)):
            name = (self.control.sentence_queued(frame.text, _now())
                    if isinstance(frame, TTSTextFrame) else self.control.tail_mark(_now()))
            if name is not None:
                await self.push_frame(OutputTransportMessageFrame(
                    message=self.framing.mark(self.stream_id, name)))


class OutputTap(FrameProcessor):
    """After the output transport: per-turn latency and DTMF, into ``CallControl``."""

    def __init__(self, control: CallControl, services: dict[str, str], vad_stop: float) -> None:
        super().__init__(name="OutputTap")
        self.control = control
        self.services = services  # processor name -> stt | llm | tts
        self.vad_stop = vad_stop
        self._turn: dict[str, Any] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = _now()
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._turn = {"speech_end": now - self.vad_stop, "vad_stop": now}
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._turn = None
        elif isinstance(frame, InputDTMFFrame):
            self.control.dtmf_pressed(str(frame.button.value), now)
        elif isinstance(frame, MetricsFrame) and self._turn is not None:
            for data in frame.data:
                kind = self.services.get(data.processor)
                if isinstance(data, TTFBMetricsData) and kind and f"{kind}_ms" not in self._turn:
                    self._turn[f"{kind}_ms"] = round(data.value * 1000, 1)
        elif isinstance(frame, (OutputAudioRawFrame, BotStartedSpeakingFrame)):
            turn = self._turn
            if turn is not None and direction == FrameDirection.DOWNSTREAM:
                self._turn = None
                self.control.latency(
                    time=self.control.rel(turn["speech_end"]),
                    stt_ms=turn.get("stt_ms"), llm_first_token_ms=turn.get("llm_ms"),
                    tts_first_audio_ms=turn.get("tts_ms"),
                    end_of_speech_ms=round(self.vad_stop * 1000, 1),
                    callee_stopped_to_audio_ms=round((now - turn["speech_end"]) * 1000, 1))
        await self.push_frame(frame, direction)


@dataclass
class CallPipeline:
    worker: PipelineWorker
    transport: FastAPIWebsocketTransport
    user_aggregator: Any
    brain: Any
    context: LLMContext


def build(*, websocket: Any, start: StreamStart, framing: Framing, control: CallControl,
          settings: VoiceSettings, stt: Any, tts: Any, brain: Any, serializer: Any,
          context: LLMContext | None = None, observers: list[Any] | None = None,
          before_brain: list[Any] | None = None) -> CallPipeline:
    """Assemble the pipeline of one call (not started)."""
    start_secs, confidence = settings.vad_start()
    vad = SharedSileroVAD(params=VADParams(confidence=confidence, start_secs=start_secs,
                                             stop_secs=settings.vad_stop()))
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True,
                                      add_wav_header=False, serializer=serializer,
                                      audio_out_10ms_chunks=4, allowed_origins=[]))
    context = context or LLMContext()
    stt_p99 = float(getattr(stt, "_ttfs_p99_latency", None) or 1.0)
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=UserTurnStrategies(
            start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
            stop=[SpeechTimeoutUserTurnStopStrategy(
                user_speech_timeout=settings.speech_timeout())]),
        user_turn_stop_timeout=settings.turn_stop_timeout(stt_p99),
        user_idle_timeout=settings.silence_timeout_seconds))
    kinds = {stt.name: "stt", tts.name: "tts", brain.name: "llm"}
    pipeline = Pipeline([
        transport.input(), stt, aggregators.user(), InputAudioStop(), *(before_brain or []),
        brain, tts,
        PlayoutMarker(control, framing, start.stream_id), transport.output(),
        OutputTap(control, kinds, settings.vad_stop()), aggregators.assistant(),
    ])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=PIPELINE_IN_RATE,
                              audio_out_sample_rate=PIPELINE_OUT_RATE, enable_metrics=True),
        idle_timeout_secs=None, observers=observers or [], enable_rtvi=False,
        enable_turn_tracking=False, check_dangling_tasks=False)
    return CallPipeline(worker, transport, aggregators.user(), brain, context)
