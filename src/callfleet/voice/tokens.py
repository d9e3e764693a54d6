"""The unguessable per-call token in a media stream's URL.

A carrier's ``<Stream url>`` takes no query string and (for Twilio) signs the handshake
only when its auth token is configured, so the capability lives in the path:
``/voice/{carrier}/{call_id}/{token}`` with ``token`` = HMAC-SHA256 of the call id under
the deployment's signing key (``callfleet.secrets``: every key of ``CALLFLEET_SECRET_KEY``
verifies, the first signs, so keys rotate as for encryption). It cannot be guessed or
forged without that key, needs no storage, and any voice process of the deployment can
check it. It names one call, so a leaked URL opens nothing else.
"""

from __future__ import annotations

import re

from callfleet.secrets import SecretBox, secret_box

PURPOSE = "media-stream:"
_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def stream_token(call_id: str, box: SecretBox | None = None) -> str:
    return (box or secret_box()).sign(PURPOSE + call_id)


def valid_token(call_id: str, token: str, box: SecretBox | None = None) -> bool:
    if not _TOKEN.match(token or ""):
        return False
    return (box or secret_box()).verify(PURPOSE + call_id, token)


def stream_path(carrier: str, call_id: str, box: SecretBox | None = None) -> str:
    return f"/voice/{carrier}/{call_id}/{stream_token(call_id, box)}"
