"""The delivery body and its signature (pure functions, no I/O).

``Callfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`` where
``body`` is the exact bytes sent. ``t`` is the sender's wall-clock time of the attempt (real
time, also when the simulated clock runs faster), so receivers can reject stale replays.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import orjson

from callfleet.db.base import iso

SIGNATURE_HEADER = "Callfleet-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def event_body(event_id: str, type: str, created_at: datetime, data: dict[str, Any]) -> str:
    """The compact JSON body ``{id, type, created_at, data}``; these exact bytes are signed."""
    return orjson.dumps(
        {"id": event_id, "type": type, "created_at": iso(created_at), "data": data}
    ).decode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float,
           tolerance: float = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver does (also in docs/webhooks.md): any ``v1`` may match (there is one
    today; several during a future secret rotation), and ``t`` must be recent."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    sigs = [v.strip() for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not sigs:
        return False
    t = int(stamps[0])
    if abs(now - t) > tolerance:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)
