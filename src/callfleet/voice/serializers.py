"""pipecat serializers for carrier media streams, with what pipecat's own lack: playout marks
(sent behind the audio, echoes reported to the call's control) and no hang-up of their own.

pipecat's ``TwilioFrameSerializer`` hangs up through Twilio's REST API as soon as the last
audio byte is *sent* (``auto_hang_up``), which cut goodbyes short, and its Telnyx sibling
hard-codes the carrier's API host; here the session hangs up, after the carrier confirmed
playout (``voice.control``), so both are off.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from pipecat.frames.frames import Frame, InterruptionFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

from callfleet.voice.framing import StreamStart

OnMark = Callable[[str, float], None]
OnClear = Callable[[float], None]
OnStop = Callable[[float], None]


def _now() -> float:
    return asyncio.get_running_loop().time()


class TwilioMediaSerializer(TwilioFrameSerializer):
    """Twilio Media Streams, 8 kHz µ-law on the wire, the pipeline's rate inside."""

    def __init__(self, start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                 on_stop: OnStop) -> None:
        super().__init__(start.stream_id, start.call_sid, start.account_sid,
                         params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
        self.on_mark = on_mark
        self.on_clear = on_clear
        self.on_stop = on_stop

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, InterruptionFrame):
            self.on_clear(_now())
        return await super().serialize(frame)

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, str) and '"media"' not in data[:40]:
            try:
                message = json.loads(data)
            except ValueError:
                return None
            event = message.get("event") if isinstance(message, dict) else None
            if event == "mark":
                name = (message.get("mark") or {}).get("name")
                if isinstance(name, str):
                    self.on_mark(name, _now())
                return None
            if event == "stop":
                self.on_stop(_now())
                return None
        return await super().deserialize(data)


def serializer_for(start: StreamStart, *, on_mark: OnMark, on_clear: OnClear,
                   on_stop: OnStop) -> TwilioMediaSerializer:
    if start.carrier != "twilio":
        raise ValueError(f"no media serializer for carrier {start.carrier!r}")
    return TwilioMediaSerializer(start, on_mark=on_mark, on_clear=on_clear, on_stop=on_stop)
