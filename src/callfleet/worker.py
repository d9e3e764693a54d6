"""Everything a worker runs in the background, in ``callfleet serve`` (unless --no-worker) and
in ``callfleet worker``: the dialer and the other loops that drive work stored in the
database. Each loop works on its own tables, waits when idle until new work wakes it
(``callfleet.wakeup``) and stops when ``stop`` is set; any number of processes may run them
side by side on PostgreSQL."""

from __future__ import annotations

import asyncio

from callfleet import secrets
from callfleet.calls.retention import RecordingSweeper
from callfleet.config import Settings
from callfleet.conversation.worker import run_intelligence
from callfleet.db.session import Database
from callfleet.dialer.engine import Dialer
from callfleet.recordings import recording_store
from callfleet.wakeup import listening
from callfleet.webhooks.sender import WebhookSender


async def run_background(settings: Settings, db: Database, dialer: Dialer,
                         stop: asyncio.Event) -> None:
    secrets.configure(settings)
    loops = [dialer.run(stop), WebhookSender(db, dialer.clock, settings).run(stop)]
    loops.append(run_intelligence(settings, db, dialer, stop))
    loops.append(RecordingSweeper(db, dialer.clock, recording_store(settings),
                                  settings.recording_retention_days).run(stop))
    async with listening(db):  # PostgreSQL: wake-ups from other processes
        await asyncio.gather(*loops)
