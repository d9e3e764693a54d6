"""Prometheus metrics of the webhook sender (served by /metrics of the process running it)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BACKLOG = Gauge(
    "callfleet_webhook_backlog",
    "Webhook work waiting: outbox events not yet fanned out (kind=events) and deliveries "
    "pending or being sent (kind=deliveries)",
    ["kind"],
)
DELIVERIES = Counter(
    "callfleet_webhook_deliveries_total",
    "Webhook delivery attempts by result: delivered (2xx), retry (failed, retried later), "
    "failed (retries exhausted)",
    ["result"],
)
ATTEMPTS = Counter(
    "callfleet_webhook_attempts_total",
    "Webhook HTTP attempts by outcome: 2xx, 3xx, 4xx, 5xx, timeout, network, config, "
    "refused",
    ["outcome"],
)
LAG = Histogram(
    "callfleet_webhook_delivery_lag_seconds",
    "From event creation to its successful delivery (simulated seconds when time is scaled)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
)
