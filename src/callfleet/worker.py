"""Everything a worker runs in the background, in ``callfleet serve`` (unless --no-worker) and
in ``callfleet worker``: the dialer and the other loops that drive work stored in the
database. Each loop polls its own tables and stops when ``stop`` is set; any number of
processes may run them side by side on PostgreSQL."""

from __future__ import annotations

import asyncio

from callfleet.config import Settings
from callfleet.db.session import Database
from callfleet.dialer.engine import Dialer


async def run_background(settings: Settings, db: Database, dialer: Dialer,
                         stop: asyncio.Event) -> None:
    loops = [dialer.run(stop)]
    await asyncio.gather(*loops)
