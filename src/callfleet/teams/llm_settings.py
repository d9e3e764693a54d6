"""A team's own LLM settings (``PATCH /api/team``), cached per process."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.teams.models import Team

_TEAM_LLM_TTL = 5.0
_team_llm: dict[str, tuple[float, dict[str, Any]]] = {}


async def team_llm_settings(s: AsyncSession, team_id: str, *, fresh: bool = False
                            ) -> dict[str, Any]:
    """The team's LLM settings (``llm_base_url``, ``llm_api_key``, ``llm_model``), cached
    for a few seconds per process so the deterministic path pays no query per call."""
    now = time.monotonic()
    hit = _team_llm.get(team_id)
    if hit is not None and not fresh and now - hit[0] < _TEAM_LLM_TTL:
        return hit[1]
    settings = await s.scalar(select(Team.settings).where(Team.id == team_id)) or {}
    value = {k: settings.get(k) for k in ("llm_base_url", "llm_api_key", "llm_model")
             if settings.get(k)}
    if len(_team_llm) > 10_000:
        _team_llm.clear()
    _team_llm[team_id] = (now, value)
    return value


def forget_team(team_id: str) -> None:
    """Drop the cached team LLM settings (PATCH /api/team calls this)."""
    _team_llm.pop(team_id, None)
