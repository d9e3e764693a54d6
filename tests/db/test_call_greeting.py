"""The greeting stored on each call (docs/decisions/0048): written with the messages, judged
by compliance.duties.greeting, and backfilled by migration 0029 (on both databases)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import select, text, update

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.compliance.duties import greeting
from callfleet.db.migrate import MIGRATIONS
from tests.compliance.test_duties import TRANSCRIPTS
from tests.conftest import DbHandle, new_team


def test_the_greeting_is_judged_when_the_messages_are_set() -> None:
    call = Call(from_number="+1", to_number="+2", messages=[])
    assert call.greeting == "none"
    call.messages = [{"role": "assistant", "text": "Hi", "time": 0.4}]
    assert call.greeting == "on_time"
    call.messages = [{"role": "user", "time": 0.1}, {"role": "assistant", "time": 2.5}]
    assert call.greeting == "late"
    assert Call.transcript_columns([]) == {"messages": [], "greeting": "none"}
    for messages in TRANSCRIPTS:
        assert Call(messages=messages).greeting == greeting(messages)


def _alembic(conn: Any, target: str, down: bool) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(cfg, target)


async def test_migration_0029_judges_existing_calls(own_database: DbHandle) -> None:
    db = own_database.db
    t = await new_team(own_database)
    shapes = [*TRANSCRIPTS, None]
    made: list[tuple[str, Any]] = []
    async with db.session() as s:
        for messages in shapes:
            call_id = ids.new_id("call")
            s.add(Call(id=call_id, team_id=t.id, from_number="+1", to_number="+2",
                       status="ended", messages=[], analysis={}, call_metadata={}))
            made.append((call_id, messages))
        await s.flush()
        for call_id, messages in made:  # as rows written before the column existed
            await s.execute(update(Call).where(Call.id == call_id).values(
                messages=messages))
        await s.commit()
    async with db.write_engine.connect() as conn:
        await conn.run_sync(_alembic, "0028", True)
        await conn.commit()
        cols = await conn.run_sync(lambda c: [r[1] for r in c.execute(text(
            "SELECT 1, column_name FROM information_schema.columns WHERE table_name = 'calls'"
            if own_database.backend == "postgres" else "SELECT 1, name FROM pragma_table_info"
            "('calls')"))])
        assert "greeting" not in cols
        await conn.run_sync(_alembic, "head", False)
        await conn.commit()
    async with db.session() as s:
        stored = dict((await s.execute(select(Call.id, Call.greeting))).all())
    for call_id, messages in made:
        assert stored[call_id] == greeting(messages), messages
    assert {stored[i] for i, _ in made} == {"on_time", "late", "none"}
