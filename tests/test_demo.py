"""``callfleet demo`` leaves finished, coherent data: every answered call analysed, nothing
waiting, and nothing stamped after the moment it exits (its simulated day is in the past)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from callfleet.demo import demo_start
from tests.test_cli import cli_env, run_cli


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def test_the_demo_finishes_its_work_in_the_past(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, cli_env(tmp_path / "data"), "demo", "--contacts", "40")
    exited = datetime.now(UTC)
    assert "is completed" in proc.stdout, proc.stdout
    db = sqlite3.connect(tmp_path / "data" / "callfleet.db")
    calls = db.execute("SELECT outcome, messages, analysis, started_at, ended_at, "
                       "answered_at FROM calls").fetchall()
    assert len(calls) >= 30
    answered = [c for c in calls if c[0] in ("answered", "opted_out")]
    assert answered
    for outcome, messages, analysis, *_ in answered:
        data = json.loads(analysis)
        assert data.get("analyzed_at") and data.get("summary"), (outcome, data)
    assert db.execute("SELECT count(*) FROM call_jobs WHERE status IN ('pending', 'running')"
                      ).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL"
                      ).fetchone() == (0,)
    stamps = [_when(v) for c in calls for v in c[3:] if v]
    stamps += [_when(v) for (v,) in db.execute("SELECT created_at FROM outbox_events")]
    stamps += [_when(v) for (v,) in db.execute(
        "SELECT next_attempt_at FROM campaign_contacts WHERE next_attempt_at IS NOT NULL")]
    assert max(stamps) <= exited, (max(stamps), exited)


def test_demo_start_leaves_two_calling_days_before_now() -> None:
    ny = ZoneInfo("America/New_York")
    for local in (datetime(2026, 12, 5, 22, 52, tzinfo=ny), datetime(2026, 12, 6, 2, 0,
                                                                        tzinfo=ny),
                  datetime(2026, 7, 1, 20, 59, tzinfo=ny), datetime(2026, 3, 8, 12, 0,
                                                                       tzinfo=ny)):
        now = local.astimezone(UTC)
        start = demo_start(now).astimezone(ny)
        assert start.time().isoformat() == "08:30:00"
        # Two whole calling days (to 21:00 New York) fit between the start and now.
        second_day_end = datetime.combine(start.date() + timedelta(days=1),
                                          datetime.min.time(), ny).replace(hour=21)
        assert second_day_end <= local
        assert local - second_day_end < timedelta(days=1)
