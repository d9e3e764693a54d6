"""Calls per second per carrier account, held by several workers at once: the bucket lives
in the database (``carriers.pacing``), so four dialers together start no more calls than the
account allows."""

from __future__ import annotations

import asyncio

import pytest

from callfleet.app import build_dialer
from tests.carriers.conftest import PROVIDERS, Carriers, calls_of, campaign, new_phone
from tests.conftest import DbHandle, TeamCtx

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


async def test_four_workers_hold_the_accounts_calls_per_second(
        carriers: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> None:
    c = carriers
    settings = c.app.state.settings.model_copy(update={
        f"{provider}_calls_per_second": 2.0})
    phones = [new_phone() for _ in range(16)]
    cid, _ = await campaign(c, database, team, provider, phones)
    r = await c.client.patch(f"/api/crm/campaigns/{cid}", json={"status": "running"},
                             headers=team.headers)
    assert r.status_code == 200, r.text
    c.clock.advance(seconds=5)  # a full bucket to start with
    workers = [await build_dialer(settings, database.db, c.clock) for _ in range(4)]
    try:
        placed: list[int] = []
        for _ in range(8):  # four seconds, in half-second steps
            await asyncio.gather(*(w.tick() for w in workers))
            placed.append(sum(1 for call in (await calls_of(database, cid)).values()
                              if call.carrier_call_id is not None))
            c.clock.advance(seconds=0.5)
    finally:
        for w in workers:
            await w.carrier.aclose()
    # A burst of at most one second of calls (2), then 2 per second: +1 per half second.
    for step, total in enumerate(placed):
        assert total <= 2 + step, placed
    assert placed[-1] >= 8, placed  # and the limit is used, not starved
