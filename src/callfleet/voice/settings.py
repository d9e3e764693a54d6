"""What one voice call's pipeline is built from: speech providers and conversation timing.

Pure values (no pipecat): validated where they are written, turned into services by
``voice.providers`` and into VAD and turn parameters here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STT_PROVIDERS = ("local", "openai", "deepgram", "fake")
TTS_PROVIDERS = ("local", "openai", "cartesia", "elevenlabs", "fake")
SENSITIVITIES = ("low", "medium", "high")
# VAD start (seconds of speech before the callee "talks over" the assistant) and confidence.
_BARGE_IN = {"low": (0.4, 0.8), "medium": (0.2, 0.7), "high": (0.1, 0.6)}
VAD_STOP_SECONDS = 0.2


@dataclass(frozen=True)
class Speech:
    """One speech service: ``provider``, its ``model``/``voice``, and for hosted providers
    the endpoint and key (the key decrypted only here, never logged)."""

    provider: str
    model: str | None = None
    voice: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    latency: float = 0.0  # provider "fake": seconds before the answer


@dataclass(frozen=True)
class VoiceSettings:
    stt: Speech = Speech("local")
    tts: Speech = Speech("local")
    language: str = "en"
    interruption_sensitivity: str = "medium"
    end_of_turn_seconds: float = 0.5  # callee silence that ends their turn
    silence_timeout_seconds: float = 10.0  # then the idle prompt; as long again: goodbye
    idle_prompt: str = "Are you still there?"
    max_call_seconds: float = 600.0
    brain_latency: float = 0.0  # deterministic brain: seconds before it answers (benchmark)

    def vad_start(self) -> tuple[float, float]:
        """(start_secs, confidence) of the VAD for the interruption sensitivity."""
        return _BARGE_IN.get(self.interruption_sensitivity, _BARGE_IN["medium"])

    def vad_stop(self) -> float:
        return min(VAD_STOP_SECONDS, self.end_of_turn_seconds)

    def speech_timeout(self) -> float:
        """Silence after the VAD's stop before the turn ends (the rest of end-of-turn)."""
        return max(0.0, self.end_of_turn_seconds - self.vad_stop())

    def turn_stop_timeout(self, stt_p99: float) -> float:
        """How long a turn may wait for its transcript. An empty transcript (noise, a
        cough) otherwise holds the turn for pipecat's default 5 s."""
        return round(self.end_of_turn_seconds + stt_p99 + 0.3, 3)
