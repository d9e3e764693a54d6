"""pipecat serializers for carrier media streams, with what pipecat's own lack: playout marks
(sent behind the audio, echoes reported to the call's control) and no hang-up of their own.

pipecat's ``TwilioFrameSerializer`` hangs up through Twilio's REST API as soon as the last
audio byte is *sent* (``auto_hang_up``), which cut goodbyes short, and its Telnyx sibling
hard-codes the carrier's API host (``api.telnyx.com``); here the session hangs up, after the carrier confirmed
playout (``voice.control``), so both are off.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

from pipecat.frames.frames import AudioRawFrame, Frame, InputAudioRawFrame, InterruptionFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.serializers.telnyx import TelnyxFrameSerializer
from pipecat.serializers.twilio import TwilioFrameSerializer

from callfleet.voice import audio
from callfleet.voice.framing import StreamStart
from callfleet.voice.recording import Recorder

OnMark = Callable[[str, float], None]
OnClear = Callable[[float], None]
OnStop = Callable[[float], None]


def _now() -> float:
    return asyncio.get_running_loop().time()


class _CarrierStream:
    """What both carriers' serializers add to pipecat's: marks and clears reported to the
    call's control, the stream's ``stop``, the recording, and a cheap µ-law decoder."""

    on_mark: OnMark
    on_clear: OnClear
    on_stop: OnStop
    recorder: Recorder | None
    on_audio: Callable[[bytes], None] | None
    _in_rate: int
    _ratecv_state: Any
    _sample_rate: int

    def _hooks(self, on_mark: OnMark, on_clear: OnClear, on_stop: OnStop,
               recorder: Recorder | None, on_audio: Callable[[bytes], None] | None) -> None:
        self.on_mark = on_mark
        self.on_clear = on_clear
        self.on_stop = on_stop
        self._in_rate = audio.CARRIER_RATE
        self._ratecv_state = None
        self.recorder = recorder
        self.on_audio = on_audio  # the callee's 8 kHz PCM (the voicemail beep detector)

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, InterruptionFrame):
            self.on_clear(_now())
            if self.recorder is not None:
                self.recorder.cleared(_now())
        elif self.recorder is not None and isinstance(frame, AudioRawFrame) \
                and frame.sample_rate == audio.CARRIER_RATE:
            self.recorder.assistant_audio(frame.audio, _now())
        return await super().serialize(frame)  # type: ignore[misc,no-any-return]

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)  # type: ignore[misc]
        self._in_rate = self._sample_rate

    async def deserialize(self, data: str | bytes) -> Frame | None:
        try:
            message = json.loads(data)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        event = message.get("event")
        if event == "media":
            return self._media(message)
        if event == "mark":
            name = (message.get("mark") or {}).get("name")
            if isinstance(name, str):
                self.on_mark(name, _now())
            return None
        if event == "stop":
            self.on_stop(_now())
            return None
        return await super().deserialize(data)  # type: ignore[misc,no-any-return]

    def _media(self, message: dict[str, Any]) -> Frame | None:
        """µ-law 8 kHz to 16-bit PCM at the pipeline's input rate. Upsampling needs no
        anti-aliasing filter, so the C linear interpolator does it at a fraction of the
        cost of pipecat's stream resampler (this runs 50 times a second per call)."""
        media = message.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if isinstance(media, dict) and media.get("track") not in (None, "inbound",
                                                                  "inbound_track"):
            return None  # Telnyx "both_tracks": only the callee's side is input
        if not isinstance(payload, str) or not payload:
            return None
        try:
            pcm = audio.ulaw_to_pcm(base64.b64decode(payload))
        except ValueError:
            return None
        if self.recorder is not None:
            self.recorder.callee_audio(pcm)
        if self.on_audio is not None:
            self.on_audio(pcm)
        if self._in_rate != audio.CARRIER_RATE:
            pcm, self._ratecv_state = audio.resample_stream(
                pcm, audio.CARRIER_RATE, self._in_rate, self._ratecv_state)
        return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=self._in_rate)


class TwilioMediaSerializer(_CarrierStream, TwilioFrameSerializer):
    """Twilio Media Streams, 8 kHz µ-law on the wire, the pipeline's rate inside."""

    def __init__(self, start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                 on_stop: OnStop, recorder: Recorder | None = None,
                 on_audio: Callable[[bytes], None] | None = None) -> None:
        TwilioFrameSerializer.__init__(
            self, start.stream_id, start.call_sid, start.account_sid,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
        self._hooks(on_mark, on_clear, on_stop, recorder, on_audio)


class TelnyxMediaSerializer(_CarrierStream, TelnyxFrameSerializer):
    """Telnyx bidirectional RTP streaming, PCMU 8 kHz on the wire. pipecat's own hang-up is
    off: it posts to a hard-coded ``api.telnyx.com``, which would bypass
    ``CALLFLEET_TELNYX_API_BASE_URL`` and the team's own account; callfleet hangs up through
    its Telnyx adapter (``carriers.router``) once the goodbye has played."""

    def __init__(self, start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                 on_stop: OnStop, recorder: Recorder | None = None,
                 on_audio: Callable[[bytes], None] | None = None) -> None:
        TelnyxFrameSerializer.__init__(
            self, start.stream_id, "PCMU", "PCMU", start.call_sid, None,
            params=TelnyxFrameSerializer.InputParams(auto_hang_up=False))
        self._hooks(on_mark, on_clear, on_stop, recorder, on_audio)


def serializer_for(start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                   on_stop: OnStop, recorder: Recorder | None = None,
                   on_audio: Callable[[bytes], None] | None = None
                   ) -> TwilioMediaSerializer | TelnyxMediaSerializer:
    kind = SERIALIZERS.get(start.carrier)
    if kind is None:
        raise ValueError(f"no media serializer for carrier {start.carrier!r}")
    return kind(start, on_mark=on_mark, on_clear=on_clear, on_stop=on_stop,
                recorder=recorder, on_audio=on_audio)


SERIALIZERS: dict[str, type[TwilioMediaSerializer | TelnyxMediaSerializer]] = {
    "twilio": TwilioMediaSerializer, "telnyx": TelnyxMediaSerializer}
