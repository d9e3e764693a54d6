"""Carrier media-stream framing: how a carrier opens a stream and how marks and clears look.

A small interface so that the media endpoint serves any carrier whose stream is "JSON over a
WebSocket, µ-law frames, mark/clear" (Twilio Media Streams today; Telnyx comes with the
carrier adapters and only needs another ``Framing``). Pure: the pipecat serializer that
uses it is in ``voice.serializers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_HANDSHAKE_MESSAGES = 5
MAX_PARAMETERS = 20
MAX_PARAMETER_CHARS = 500


class HandshakeError(ValueError):
    """The carrier's first messages are not a valid stream start."""


@dataclass(frozen=True)
class StreamStart:
    carrier: str
    stream_id: str
    call_sid: str | None = None
    account_sid: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


class Framing(Protocol):
    name: str

    def parse(self, raw: str | bytes) -> dict[str, Any]: ...

    def start(self, message: dict[str, Any]) -> StreamStart | None:
        """The stream's start, when ``message`` is it; None for messages before it."""
        ...

    def mark(self, stream_id: str, name: str) -> dict[str, Any]: ...

    def clear(self, stream_id: str) -> dict[str, Any]: ...


def _text(value: Any, what: str, limit: int = 100) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise HandshakeError(f"{what} is missing or invalid")
    return value


class TwilioFraming:
    """Twilio Media Streams: ``connected``, then ``start`` with ``streamSid``, ``callSid``,
    ``customParameters`` and the media format; µ-law 8 kHz ``media``; ``mark``, ``clear``,
    ``dtmf``, ``stop``."""

    name = "twilio"

    def parse(self, raw: str | bytes) -> dict[str, Any]:
        try:
            message = json.loads(raw)
        except ValueError:
            raise HandshakeError("the stream sent a message that is not JSON") from None
        if not isinstance(message, dict):
            raise HandshakeError("the stream sent a message that is not a JSON object")
        return message

    def start(self, message: dict[str, Any]) -> StreamStart | None:
        event = message.get("event")
        if event == "connected":
            return None
        if event != "start":
            raise HandshakeError(f"expected the stream's start, got {str(event)[:40]!r}")
        body = message.get("start")
        if not isinstance(body, dict):
            raise HandshakeError("start is missing")
        stream_id = _text(body.get("streamSid") or message.get("streamSid"), "streamSid")
        fmt = body.get("mediaFormat") or {}
        encoding = fmt.get("encoding", "audio/x-mulaw")
        rate = fmt.get("sampleRate", 8000)
        if encoding != "audio/x-mulaw" or rate != 8000:
            raise HandshakeError(f"unsupported media format {encoding} at {rate} Hz")
        params = body.get("customParameters") or {}
        if not isinstance(params, dict) or len(params) > MAX_PARAMETERS:
            raise HandshakeError("customParameters is invalid")
        clean = {str(k)[:100]: str(v)[:MAX_PARAMETER_CHARS] for k, v in params.items()}
        call_sid = body.get("callSid")
        account_sid = body.get("accountSid")
        return StreamStart("twilio", stream_id,
                           call_sid if isinstance(call_sid, str) else None,
                           account_sid if isinstance(account_sid, str) else None, clean,
                           encoding, rate)

    def mark(self, stream_id: str, name: str) -> dict[str, Any]:
        return {"event": "mark", "streamSid": stream_id, "mark": {"name": name}}

    def clear(self, stream_id: str) -> dict[str, Any]:
        return {"event": "clear", "streamSid": stream_id}


FRAMINGS: dict[str, Framing] = {"twilio": TwilioFraming()}
