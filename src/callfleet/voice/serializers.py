"""pipecat serializers for carrier media streams, with what pipecat's own lack: playout marks
(sent behind the audio, echoes reported to the call's control) and no hang-up of their own.

pipecat's ``TwilioFrameSerializer`` hangs up through Twilio's REST API as soon as the last
audio byte is *sent* (``auto_hang_up``), which cut goodbyes short, and its Telnyx sibling
hard-codes the carrier's API host; here the session hangs up, after the carrier confirmed
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
from pipecat.serializers.twilio import TwilioFrameSerializer

from callfleet.voice import audio
from callfleet.voice.framing import StreamStart
from callfleet.voice.recording import Recorder

OnMark = Callable[[str, float], None]
OnClear = Callable[[float], None]
OnStop = Callable[[float], None]


def _now() -> float:
    return asyncio.get_running_loop().time()


class TwilioMediaSerializer(TwilioFrameSerializer):
    """Twilio Media Streams, 8 kHz µ-law on the wire, the pipeline's rate inside."""

    def __init__(self, start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                 on_stop: OnStop, recorder: Recorder | None = None,
                 on_audio: Callable[[bytes], None] | None = None) -> None:
        super().__init__(start.stream_id, start.call_sid, start.account_sid,
                         params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
        self.on_mark = on_mark
        self.on_clear = on_clear
        self.on_stop = on_stop
        self._in_rate = audio.CARRIER_RATE
        self._ratecv_state: Any = None
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
        return await super().serialize(frame)

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
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
        return await super().deserialize(data)

    def _media(self, message: dict[str, Any]) -> Frame | None:
        """µ-law 8 kHz to 16-bit PCM at the pipeline's input rate. Upsampling needs no
        anti-aliasing filter, so the C linear interpolator does it at a fraction of the
        cost of pipecat's stream resampler (this runs 50 times a second per call)."""
        payload = (message.get("media") or {}).get("payload")
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


def serializer_for(start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                   on_stop: OnStop, recorder: Recorder | None = None,
                   on_audio: Callable[[bytes], None] | None = None) -> TwilioMediaSerializer:
    if start.carrier != "twilio":
        raise ValueError(f"no media serializer for carrier {start.carrier!r}")
    return TwilioMediaSerializer(start, on_mark=on_mark, on_clear=on_clear, on_stop=on_stop,
                                 recorder=recorder, on_audio=on_audio)
