"""The unguessable per-call token in a media stream's URL.

A carrier's ``<Stream url>`` takes no query string and (for Twilio) signs the handshake
only when its auth token is configured, so the capability lives in the path:
``/voice/{carrier}/{call_id}/{token}`` with ``token`` = HMAC-SHA256 over the call id under a
key derived from the deployment's secret key (``callfleet.secrets``). It cannot be guessed
or forged without that key, needs no storage, and any voice process of the deployment can
check it. It names one call, so a leaked URL opens nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from callfleet.secrets import secret_box

LABEL = "callfleet-media-stream-v1"
TOKEN_CHARS = 43  # 256 bits, base64url without padding


def _key() -> bytes:
    return secret_box().derived_key(LABEL)


def stream_token(call_id: str, key: bytes | None = None) -> str:
    digest = hmac.new(key or _key(), call_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:TOKEN_CHARS]


def valid_token(call_id: str, token: str, key: bytes | None = None) -> bool:
    if not token or len(token) != TOKEN_CHARS:
        return False
    return hmac.compare_digest(stream_token(call_id, key), token)


def stream_path(carrier: str, call_id: str, key: bytes | None = None) -> str:
    return f"/voice/{carrier}/{call_id}/{stream_token(call_id, key)}"
