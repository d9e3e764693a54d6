"""Per-process voice capacity: the admission cap, draining on SIGTERM, and the metrics that
tell an operator how close a process is to its limit (active calls, event-loop lag).

A voice process's real limit is its event loop: audio is paced in 20-40 ms frames, so a
loop that falls behind is heard as gaps. ``LoopLagMonitor`` measures how late a periodic
timer fires; the benchmark (bench/voice.py) shows where the knee is. No pipecat here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_CALLS = Gauge("callfleet_voice_active_calls", "Voice calls running in this process")
CAPACITY = Gauge("callfleet_voice_capacity", "Voice calls this process admits at once")
DRAINING = Gauge("callfleet_voice_draining", "1 while this process drains (admits no call)")
LOOP_LAG = Gauge("callfleet_voice_event_loop_lag_seconds",
                 "How late the event loop ran a periodic timer, p95 over the last minute")
CALLS = Counter("callfleet_voice_calls_total", "Voice calls by how they ended", ["result"])
REFUSED = Counter("callfleet_voice_refused_total", "Media streams refused", ["reason"])
TURN_LATENCY = Histogram(
    "callfleet_voice_turn_latency_seconds",
    "Per assistant turn: callee stopped → assistant audio, and its parts",
    ["kind"], buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0))
BARGE_INS = Counter("callfleet_voice_barge_ins_total", "Callee talked over the assistant")



async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task of this process and wait until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

class Admission:
    """At most ``capacity`` calls at once in this process; none while draining."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active: set[str] = set()
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        CAPACITY.set(capacity)
        DRAINING.set(0)
        ACTIVE_CALLS.set(0)

    def admit(self, call_id: str) -> str | None:
        """None when admitted, else why not."""
        if self.draining:
            return "draining"
        if call_id in self.active:
            return "duplicate"
        if len(self.active) >= self.capacity:
            return "full"
        self.active.add(call_id)
        self._idle.clear()
        ACTIVE_CALLS.set(len(self.active))
        return None

    def release(self, call_id: str) -> None:
        self.active.discard(call_id)
        ACTIVE_CALLS.set(len(self.active))
        if not self.active:
            self._idle.set()

    def drain(self) -> None:
        self.draining = True
        DRAINING.set(1)

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until no call is running (True) or ``timeout`` passed (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class LoopLagMonitor:
    """Fires every ``period`` seconds and records how late it woke up."""

    def __init__(self, period: float = 0.05, window: int = 1200) -> None:
        self.period = period
        self.samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def p95(self) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while True:
            due = loop.time() + self.period
            await asyncio.sleep(self.period)
            self.samples.append(max(0.0, loop.time() - due))
            n += 1
            if n % 20 == 0:
                LOOP_LAG.set(self.p95())
