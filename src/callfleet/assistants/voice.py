"""An assistant's live-voice settings: which speech providers, and the conversation's timing.

SPEC 3's ``voice_provider``, ``voice_model``, ``voice_id``, ``transcriber_provider``,
``transcriber_model`` and ``language`` are columns; the rest live in ``voice_options``
(migration 0016), all validated here with a 400 naming the field:

* ``interruptionSensitivity``: ``low`` | ``medium`` | ``high`` (how soon the callee's speech
  stops the assistant: 0.4, 0.2, 0.1 s);
* ``endOfTurnSeconds`` (0.2-3): the callee's silence that ends their turn;
* ``silenceTimeoutSeconds`` (2-120) and ``idlePrompt``: said after that much silence; as
  long again and the call ends politely;
* ``maxCallSeconds`` (30-7200);
* ``voiceBaseUrl`` / ``transcriberBaseUrl``: an OpenAI-compatible speech endpoint (provider
  ``openai``), e.g. a self-hosted server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callfleet.errors import bad_request
from callfleet.outbound import Network, check_url

TTS_PROVIDERS = ("local", "openai", "cartesia", "elevenlabs")
STT_PROVIDERS = ("local", "openai", "deepgram")
SENSITIVITIES = ("low", "medium", "high")
DEFAULTS: dict[str, Any] = {
    "interruption_sensitivity": "medium",
    "end_of_turn_seconds": 0.5,
    "silence_timeout_seconds": 10.0,
    "idle_prompt": "Are you still there?",
    "max_call_seconds": 600.0,
    "voice_base_url": None,
    "transcriber_base_url": None,
}
RANGES = {"end_of_turn_seconds": (0.2, 3.0, "endOfTurnSeconds"),
          "silence_timeout_seconds": (2.0, 120.0, "silenceTimeoutSeconds"),
          "max_call_seconds": (30.0, 7200.0, "maxCallSeconds")}
OPTION_KEYS = tuple(DEFAULTS)


def check_provider(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not value:
        return None
    if value not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}", name)
    return value


def check_speech_url(value: Any, name: str, allowed: Sequence[Network]) -> str | None:
    """A tenant-chosen speech endpoint, checked against the outbound URL policy
    (``callfleet.outbound``): 400 naming the field for a private or local address."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise bad_request(f"{name} must be an http(s) URL", name)
    return check_url(value.strip(), allowed=allowed, field=name)


def clean_options(data: dict[str, Any], current: dict[str, Any] | None,
                  allowed: Sequence[Network] = ()) -> dict[str, Any]:
    """The stored ``voice_options`` after applying the request's keys (snake_case; ``None``
    resets a key to its default)."""
    out = {k: v for k, v in (current or {}).items() if k in OPTION_KEYS}
    for key in OPTION_KEYS:
        if key not in data:
            continue
        value = data[key]
        if value is None:
            out.pop(key, None)
            continue
        if key == "interruption_sensitivity":
            if value not in SENSITIVITIES:
                raise bad_request("interruptionSensitivity must be low, medium or high",
                                  "interruptionSensitivity")
        elif key in RANGES:
            low, high, name = RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not low <= float(value) <= high:
                raise bad_request(f"{name} must be a number from {low:g} to {high:g}", name)
            value = float(value)
        elif key == "idle_prompt":
            value = " ".join(str(value).split())[:500]
            if not value:
                out.pop(key, None)
                continue
        else:
            value = check_speech_url(value, "voiceBaseUrl" if key == "voice_base_url"
                                     else "transcriberBaseUrl", allowed)
        out[key] = value
    return out


def options_out(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Every option with its effective value (defaults filled in)."""
    return {**DEFAULTS, **{k: v for k, v in (stored or {}).items() if k in OPTION_KEYS}}
