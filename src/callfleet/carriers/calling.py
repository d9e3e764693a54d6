"""What the real carrier adapters (``carriers/twilio``, ``carriers/telnyx``) share: the dial
request, callfleet's record of a call for reconciliation, the URLs a carrier calls back on,
and the check that the carrier's SDK is installed.

Every URL derives from ``CALLFLEET_PUBLIC_URL`` (:func:`public_base`). Callfleet's call id
travels with every call (in the callback URLs, the stream's parameters, Telnyx's
``client_state``), so a callback finds its call without trusting anything but the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from callfleet.secrets import secret_box

STREAM_TOKEN_LABEL = "callfleet-media-stream-v1"


class PublicUrlError(ValueError):
    """``CALLFLEET_PUBLIC_URL`` is missing or not an absolute http(s) URL."""


@dataclass(frozen=True)
class DialRequest:
    call_ref: str  # callfleet's call id
    from_number: str
    to_number: str
    ring_timeout: int  # seconds the callee's phone rings
    time_limit: int  # seconds the call may last once answered
    detect_machine: bool  # ask the carrier's answering-machine detection
    leave_message: bool  # ... and wait for the greeting's end (a voicemail will be left)


@dataclass(frozen=True)
class CallRecord:
    """callfleet's own record of a call, for asking the carrier what became of it."""

    call_ref: str
    carrier_call_id: str | None
    from_number: str
    to_number: str
    started_at: datetime | None


def public_base(public_url: str | None) -> str:
    """The public base URL without a trailing slash; PublicUrlError when unusable."""
    if not public_url or not public_url.strip():
        raise PublicUrlError(
            "CALLFLEET_PUBLIC_URL is not set: a real carrier (Twilio, Telnyx) needs the "
            "https URL at which it reaches callfleet (see docs/carriers.md)")
    url = public_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise PublicUrlError(
            f"CALLFLEET_PUBLIC_URL must be an absolute http(s) URL without a query, not "
            f"{public_url!r}")
    return url


def callback_url(public_url: str, path: str, call_ref: str | None = None) -> str:
    url = f"{public_base(public_url)}{path}"
    return f"{url}?call={call_ref}" if call_ref else url


def stream_token(call_id: str) -> str:
    """The unguessable per-call token in a media stream's path: an HMAC of the call id
    under the deployment key, so any process of the deployment can check it."""
    key = hashlib.sha256(STREAM_TOKEN_LABEL.encode() + secret_box().sign(
        STREAM_TOKEN_LABEL).encode()).digest()
    return hmac.new(key, call_id.encode(), hashlib.sha256).hexdigest()


def stream_url(public_url: str, carrier: str, call_id: str) -> str:
    """``wss://<public host>/voice/{carrier}/{call_id}/{token}``: the voice runtime's media
    WebSocket for one call (``ws://`` behind a plain-http public URL)."""
    base = public_base(public_url)
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[1]}/voice/{carrier}/{call_id}/{stream_token(call_id)}"


def require_sdk(module: str, provider: str) -> None:
    """A clear error when the carrier's SDK (the ``carriers`` extra) is not installed."""
    if importlib.util.find_spec(module) is None:
        raise RuntimeError(
            f"the {provider} carrier needs the '{module}' package, which is not installed: "
            "pip install 'callfleet[carriers]'")
