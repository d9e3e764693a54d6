"""Staged rows (``db.staging``): written with the next flush or at commit, dropped with a
rollback, readable after ``write_staged``; and ``ids.ulid_body`` encodes like python-ulid."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from ulid import ULID

from callfleet import ids
from callfleet.db import staging
from callfleet.webhooks.outbox import OutboxEvent, emit

from ..conftest import new_team

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def _count(db, team_id: str) -> int:
    async with db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxEvent)
                                  .where(OutboxEvent.team_id == team_id)))


async def test_staged_rows_written_at_commit_of_a_clean_session(database) -> None:
    t = await new_team(database)
    async with database.db.session() as s:
        first = emit(s, t.id, "campaign.started", {"n": 1}, AT)
        second = emit(s, t.id, "campaign.paused", {"n": 2}, AT, subject_id="camp_x")
        await s.commit()
    assert await _count(database.db, t.id) == 2
    async with database.db.session(write=False) as s:
        rows = list(await s.scalars(select(OutboxEvent).where(OutboxEvent.team_id == t.id)
                                    .order_by(OutboxEvent.seq)))
    assert [r.id for r in rows] == [first, second]  # commit order kept
    assert rows[1].data == {"n": 2} and rows[1].subject_id == "camp_x"
    assert rows[0].dispatched_at is None and rows[0].seq is not None


async def test_staged_rows_dropped_by_rollback_and_by_close(database) -> None:
    t = await new_team(database)
    async with database.db.session() as s:
        emit(s, t.id, "campaign.started", {}, AT)
        await s.rollback()
        await s.commit()
    async with database.db.session() as s:
        emit(s, t.id, "campaign.started", {}, AT)
        # closed without commit
    assert await _count(database.db, t.id) == 0


async def test_write_staged_makes_rows_readable_in_the_transaction(database) -> None:
    t = await new_team(database)
    async with database.db.session() as s:
        emit(s, t.id, "campaign.started", {}, AT)
        assert staging.has_staged(s.sync_session)
        await staging.write_staged(s)
        assert not staging.has_staged(s.sync_session)
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)
                              .where(OutboxEvent.team_id == t.id)) == 1
        await s.commit()
    assert await _count(database.db, t.id) == 1


async def test_savepoint_refused_while_rows_are_staged(database) -> None:
    t = await new_team(database)
    async with database.db.session() as s:
        emit(s, t.id, "campaign.started", {}, AT)
        with pytest.raises(RuntimeError, match="savepoint"):
            await s.begin_nested()
        await s.rollback()
    assert await _count(database.db, t.id) == 0


def test_ulid_body_matches_python_ulid_encoding() -> None:
    for _ in range(2000):
        raw = os.urandom(16)
        expected = str(ULID.from_bytes(raw)).lower()
        assert ids._encode(int.from_bytes(raw, "big")) == expected
    value = ids.new_id("evt")
    assert ids.is_valid("evt", value)
    before = ids.new_id("call")
    assert ids.is_valid("call", before) and not ids.is_valid("cont", before)
    # time-ordered: the first 10 characters are the millisecond clock
    ms = int(ULID.from_str(value.split("_")[1].upper()).milliseconds)
    assert abs(ms - datetime.now(UTC).timestamp() * 1000) < 5_000


def test_ids_made_in_a_row_sort_in_that_order() -> None:
    made = [ids.new_id("evt") for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == len(made)


def test_ids_made_in_bulk_are_unique_and_keep_the_order() -> None:
    before = ids.new_id("cont")
    bulk = ids.new_ids("cont", 3000)
    after = ids.new_id("cont")
    made = [before, *bulk, after]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(ids.is_valid("cont", x) for x in bulk) and ids.new_ids("cont", 0) == []
