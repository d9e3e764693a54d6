"""A planner that runs the same plan for every call, recording what each call produced.

For the tests, the benchmark and a standalone ``voice_app``: no database. The plan is made
per call by ``make_plan`` (so each call gets its own deterministic policy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callfleet.voice.framing import StreamStart
from callfleet.voice.session import CallPlan


class ScriptedPlanner:
    def __init__(self, make_plan: Callable[[str, StreamStart], CallPlan | None]) -> None:
        self.make_plan = make_plan
        self.records: dict[str, dict[str, Any]] = {}
        self.refuse: set[str] = set()
        self.progressed: dict[str, dict[str, Any]] = {}

    async def plan(self, call_id: str, start: StreamStart) -> CallPlan | None:
        if call_id in self.refuse:
            return None
        return self.make_plan(call_id, start)

    async def progress(self, call_id: str, record: dict[str, Any]) -> None:
        self.progressed[call_id] = record

    async def finished(self, call_id: str, record: dict[str, Any]) -> None:
        self.records[call_id] = record
