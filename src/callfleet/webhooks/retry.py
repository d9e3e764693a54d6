"""When to try a failed delivery again (pure: plain values in, a time out).

Delays grow x3 from ``base`` (10 s, 30 s, 1.5 min, 4.5 min, 13.5 min, 40.5 min, then the
1 h cap), each with +/-20 % jitter so a receiver that comes back is not hit by every
delivery at the same instant. After a failure, if the delivery has already been retried for
``window`` (24 h by default) it is given up (``failed``); otherwise the next attempt is
scheduled, so the last attempt happens at least ``window`` after the first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

JITTER = 0.2
FACTOR = 3.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 10.0
    max_seconds: float = 3600.0
    window_seconds: float = 86400.0

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); ``rand`` in
        [0, 1) picks the jitter (0.5 is none)."""
        raw = self.base_seconds * FACTOR ** min(max(attempt - 1, 0), 60)
        jittered = raw * (1.0 - JITTER + 2 * JITTER * rand)
        return max(0.0, min(self.max_seconds, jittered))

    def next_attempt_at(self, first_at: datetime, failed_at: datetime, attempt: int,
                        rand: float | None = None) -> datetime | None:
        """The next try after a failure at ``failed_at``, or None to give up."""
        if (failed_at - first_at).total_seconds() >= self.window_seconds:
            return None
        r = random.random() if rand is None else rand
        return failed_at + timedelta(seconds=self.delay(attempt, r))
