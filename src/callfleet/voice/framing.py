"""Carrier media-stream framing: how a carrier opens a stream and how marks and clears look.

A small interface so that the media endpoint serves any carrier whose stream is "JSON over a
WebSocket, µ-law frames, mark/clear": Twilio Media Streams (``TwilioFraming``) and Telnyx's
bidirectional RTP media streaming (``TelnyxFraming``, PCMU 8 kHz). Pure: the pipecat
serializers that use them are in ``voice.serializers``.
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


def _start_body(message: dict[str, Any]) -> dict[str, Any] | None:
    """The ``start`` message's body (both carriers' framings open with ``connected``, then
    ``start``): None for ``connected``; anything else is a broken handshake."""
    event = message.get("event")
    if event == "connected":
        return None
    if event != "start":
        raise HandshakeError(f"expected the stream's start, got {str(event)[:40]!r}")
    body = message.get("start")
    if not isinstance(body, dict):
        raise HandshakeError("start is missing")
    return body


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
        body = _start_body(message)
        if body is None:
            return None
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


class TelnyxFraming(TwilioFraming):
    """Telnyx media streaming (Call Control ``stream_url`` with
    ``stream_bidirectional_mode=rtp``, codec PCMU): ``connected``, then ``start`` with
    ``stream_id`` beside it and ``call_control_id``, ``client_state`` and ``media_format``
    (``encoding: PCMU``, ``sample_rate: 8000``) in it; ``media`` frames whose
    ``media.payload`` is base64 µ-law; ``dtmf``, ``mark``, ``stop``. Towards Telnyx:
    ``media`` (``{"media": {"payload"}}``), ``mark`` and ``clear`` (``{"event": "clear"}``),
    which carry no stream id (one stream per WebSocket)."""

    name = "telnyx"

    def start(self, message: dict[str, Any]) -> StreamStart | None:
        body = _start_body(message)
        if body is None:
            return None
        stream_id = _text(message.get("stream_id") or body.get("stream_id"), "stream_id")
        fmt = body.get("media_format") or {}
        if not isinstance(fmt, dict):
            raise HandshakeError("media_format is invalid")
        encoding = str(fmt.get("encoding", "PCMU")).upper()
        rate = fmt.get("sample_rate", 8000)
        if encoding != "PCMU" or rate not in (8000, "8000"):
            raise HandshakeError(f"unsupported media format {encoding[:20]} at {rate} Hz: "
                                 "dial with stream_bidirectional_codec PCMU at 8000 Hz")
        params: dict[str, str] = {}
        for key in ("client_state", "from", "to"):
            value = body.get(key)
            if isinstance(value, str) and value:
                params[key] = value[:MAX_PARAMETER_CHARS]
        ccid = body.get("call_control_id")
        return StreamStart("telnyx", stream_id,
                           ccid[:200] if isinstance(ccid, str) and ccid else None, None,
                           params, "audio/x-mulaw", 8000)

    def mark(self, stream_id: str, name: str) -> dict[str, Any]:
        return {"event": "mark", "mark": {"name": name}}

    def clear(self, stream_id: str) -> dict[str, Any]:
        return {"event": "clear"}


FRAMINGS: dict[str, Framing] = {"twilio": TwilioFraming(), "telnyx": TelnyxFraming()}
