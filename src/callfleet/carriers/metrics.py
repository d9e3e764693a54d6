"""Prometheus metrics of the real carriers (served by /metrics of the process): what an
operator checks first when calls do not progress (callbacks refused: a wrong public URL or
key) or fail (dials refused by the carrier, and why)."""

from __future__ import annotations

from prometheus_client import Counter

CALLBACKS = Counter(
    "callfleet_carrier_callbacks_total",
    "Carrier callbacks by carrier and result: applied, ignored (signed, not about a call of "
    "this deployment), refused (bad, missing or stale signature: 401)",
    ["carrier", "result"],
)
DIALS = Counter(
    "callfleet_carrier_dials_total",
    "Dials sent to a real carrier by result: placed, rejected (an outcome), account_error "
    "(the campaign pauses), unconfirmed (left to reconciliation)",
    ["carrier", "result"],
)
