"""A voice process that does not handle the carrier's callbacks reads the carrier's
answering-machine verdict from the call's row (``DatabasePlanner.amd_verdict``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytest.importorskip("pipecat")

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.clock import FixedClock
from callfleet.db.base import utcnow
from callfleet.voice.planner import DatabasePlanner
from tests.conftest import DbHandle, new_team


@pytest.mark.parametrize(("meta", "verdict"), [
    ({"conversation": "voice"}, None),
    ({"conversation": "voice", "amd": "human"}, "human"),
    ({"conversation": "voice", "voicemail": True, "amd": "machine_end_beep"}, "machine"),
])
async def test_the_verdict_on_the_calls_row(database: DbHandle, meta: dict[str, object],
                                            verdict: str | None) -> None:
    team = await new_team(database, "Amd")
    call_id = ids.new_id("call")
    async with database.db.session() as s:
        s.add(Call(id=call_id, team_id=team.id, direction="outbound",
                   from_number="+14155550100", to_number="+14155550101",
                   status="in_progress", messages=[], analysis={}, call_metadata=meta,
                   created_at=utcnow(), updated_at=utcnow()))
        await s.commit()
    planner = DatabasePlanner(database.db, FixedClock(datetime.now(UTC)), carrier=None)
    assert await planner.amd_verdict(call_id) == verdict
    assert await planner.amd_verdict("call_missing") is None
