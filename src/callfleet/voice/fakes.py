"""Fixed-latency speech services for tests and the benchmark (provider ``fake``).

* ``OracleSTT``: after ``latency`` seconds returns, per speech segment, the next line the
  callee is known to say (the carrier client passes the script as a stream parameter,
  ``oracle``, a JSON list) - speech-to-text with a known answer and a known cost;
* ``FixedLatencyTTS``: after ``latency`` seconds streams speech for the text: espeak-ng
  when installed (real speech, so local speech-to-text can check what was said), else (or
  with voice ``tone``) a speech-like buzz whose length follows the text.

With them the pipeline's own overhead is what remains of a turn's latency
(bench/voice.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import AsyncGenerator

from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.settings import STTSettings, TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601

from callfleet.voice import espeak
from callfleet.voice.stt import PcmSegmentSTT

TTS_RATE = 16000
CHUNK_SECONDS = 0.1


class OracleSTT(PcmSegmentSTT):
    def __init__(self, lines: list[str], *, latency: float = 0.15) -> None:
        super().__init__(settings=STTSettings(model=None, language=None),
                         ttfs_p99_latency=latency + 0.3, trailing_silence_secs=0.0)
        self.lines = list(lines)
        self.latency = latency
        self.segments = 0

    @classmethod
    def from_parameters(cls, parameters: dict[str, str], latency: float) -> OracleSTT:
        try:
            lines = json.loads(parameters.get("oracle") or "[]")
        except ValueError:
            lines = []
        return cls([str(x) for x in lines if isinstance(x, str)], latency=latency)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.latency)
        await self.stop_ttfb_metrics()
        self.segments += 1
        if not self.lines:
            return
        text = self.lines.pop(0)
        yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), finalized=True)


def tone_pcm(seconds: float, rate: int = TTS_RATE) -> bytes:
    """A voiced, speech-like sound (a 140 Hz buzz with a syllable-rate envelope)."""
    n = int(seconds * rate)
    out = bytearray()
    for i in range(n):
        t = i / rate
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 4 * t)
        value = envelope * (0.6 * math.sin(2 * math.pi * 140 * t)
                            + 0.3 * math.sin(2 * math.pi * 280 * t))
        out += struct.pack("<h", int(value * 9000))
    return bytes(out)


_TONE_CACHE: dict[int, bytes] = {}


def speech_for(text: str, rate: int = TTS_RATE, *, tone: bool = False) -> bytes:
    if not tone and espeak.available():
        return espeak.speak_pcm(text, rate)
    tenths = max(3, round(len(text.split()) * 3.3))  # ~0.33 s a word
    if tenths not in _TONE_CACHE:
        _TONE_CACHE[tenths] = tone_pcm(tenths / 10, rate)
    return _TONE_CACHE[tenths]


class FixedLatencyTTS(TTSService):
    def __init__(self, *, latency: float = 0.1, tone: bool = False) -> None:
        super().__init__(sample_rate=TTS_RATE, push_stop_frames=True,
                         settings=TTSSettings(model=None, voice=None, language=None))
        self.latency = latency
        self.tone = tone  # a buzz instead of espeak speech: no synthesis cost (benchmark)

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.latency)
        try:
            pcm = (speech_for(text, tone=True) if self.tone else await asyncio.get_running_loop()
                   .run_in_executor(None, speech_for, text))
        except Exception as exc:  # noqa: BLE001 - reported to the pipeline, never raised
            yield ErrorFrame(f"fake speech failed: {exc}")
            return
        await self.stop_ttfb_metrics()

        async def chunks() -> AsyncGenerator[bytes, None]:
            step = int(TTS_RATE * CHUNK_SECONDS) * 2
            for i in range(0, len(pcm), step):
                yield pcm[i:i + step]

        async for frame in self._stream_audio_frames_from_iterator(
                chunks(), in_sample_rate=TTS_RATE, context_id=context_id):
            yield frame
