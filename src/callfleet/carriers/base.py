"""The Carrier protocol: what callfleet needs from a telephony network.

Adapters: ``sim`` (the simulated network, default), later ``twilio`` and ``telnyx``. A carrier
reports call progress as ``CarrierEvent``s delivered to ``dialer.outcomes.CallEvents``:
the simulated network calls it directly; real carriers reach it through signed HTTP callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class AvailableNumber:
    phone_number: str
    monthly_price: float
    setup_price: float
    features: tuple[str, ...]
    country_code: str
    number_type: str


@dataclass(frozen=True)
class CarrierCallStatus:
    """The carrier's view of a call, for reconciliation after a worker died."""

    carrier_call_id: str
    state: str  # ringing | answered | ended | refused
    outcome: str | None
    answered_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class CarrierEvent:
    carrier: str
    carrier_call_id: str
    call_ref: str  # callfleet's call id, echoed back by the carrier
    type: str  # ringing | answered | machine_detected | ended
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


class CarrierRejected(Exception):
    """The carrier refused the dial at once (invalid number, account error, ...)."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class Carrier(Protocol):
    name: str

    async def search_numbers(
        self, country_code: str, area_code: str | None, number_type: str, limit: int
    ) -> list[AvailableNumber]: ...

    async def purchase_number(self, phone_number: str) -> str:
        """Buys the number; returns the carrier's reference for it."""
        ...

    async def release_number(self, provider_ref: str | None) -> None: ...

    async def place_call(self, call_ref: str, from_number: str, to_number: str) -> str:
        """Starts a call; returns the carrier's call id. Raises CarrierRejected."""
        ...

    async def hangup(self, carrier_call_id: str, after_seconds: float = 0.0) -> None: ...

    async def call_status(self, call_ref: str) -> CarrierCallStatus | None:
        """The carrier's record of the call placed for ``call_ref``, or None if it never got
        the dial (after which it will refuse a late one for the same ref)."""
        ...
