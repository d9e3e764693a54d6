"""A voice process's row in ``voice_processes`` (``calls.slots``): registered at start,
renewed by a heartbeat, marked draining as soon as the process drains, removed when it
stops. The dialer reserves slots only on processes whose lease is live, so a process that
dies is forgotten within ``slots.LEASE_SECONDS``. No pipecat here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import structlog

from callfleet.calls import slots
from callfleet.clock import Clock
from callfleet.db.session import Database
from callfleet.voice.runtime import Admission, stop_task

log = structlog.get_logger("callfleet.voice")

CHECK_SECONDS = 1.0  # how often a change of draining is looked for


def process_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SlotLease:
    def __init__(self, db: Database, clock: Clock, admission: Admission, *,
                 pid: str | None = None, every: float = slots.HEARTBEAT_SECONDS) -> None:
        self.db = db
        self.clock = clock
        self.admission = admission
        self.pid = pid or process_id()
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    async def beat(self) -> None:
        self._draining = self.admission.draining
        lease = self.clock.sim_delta(slots.LEASE_SECONDS).total_seconds()
        async with self.db.session() as s:
            await slots.heartbeat(s, self.pid, host=socket.gethostname(),
                                  capacity=self.admission.capacity, draining=self._draining,
                                  now=self.clock.now(), lease=lease)
            await s.commit()

    async def start(self) -> None:
        await self.beat()  # the dialer sees this process's capacity at once
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        with contextlib.suppress(Exception):
            async with self.db.session() as s:
                await slots.leave(s, self.pid)
                await s.commit()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.every
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            if loop.time() < due and self.admission.draining == self._draining:
                continue
            due = loop.time() + self.every
            try:
                await self.beat()
            except Exception:  # the next beat may succeed; the lease outlives a few misses
                log.exception("voice_heartbeat_failed", process=self.pid)
