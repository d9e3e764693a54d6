"""Checks that a callback really comes from the carrier (pure; the routes call these before
anything changes, and answer 401 when they fail).

- Twilio: ``X-Twilio-Signature`` = base64 HMAC-SHA1 under the account's auth token of the
  full URL Twilio requested (which is ``CALLFLEET_PUBLIC_URL`` + path + query, whatever
  proxy sits in between) followed by the sorted POST parameters; checked by the SDK's
  ``RequestValidator``.
- Telnyx: ``telnyx-signature-ed25519`` = base64 Ed25519 signature over
  ``f"{telnyx-timestamp}|{raw body}"`` under the account's public key, and the timestamp
  within five minutes of now (a replay older than that is refused; a replay within it is
  a duplicate, which the call's state machine ignores).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TELNYX_TOLERANCE_SECONDS = 300


def twilio_valid(auth_token: str, url: str, params: dict[str, str],
                 signature: str | None) -> bool:
    if not signature or not auth_token:
        return False
    from twilio.request_validator import RequestValidator

    return bool(RequestValidator(auth_token).validate(url, params, signature))


def telnyx_valid(public_key: str | None, body: bytes, signature: str | None,
                 timestamp: str | None, now: float,
                 tolerance: float = TELNYX_TOLERANCE_SECONDS) -> bool:
    if not public_key or not signature or not timestamp:
        return False
    try:
        sent_at = int(timestamp)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        raw_signature = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return False
    if abs(now - sent_at) > tolerance:
        return False
    try:
        key.verify(raw_signature, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True
