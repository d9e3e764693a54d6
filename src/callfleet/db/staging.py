"""Rows written with the session's next flush, as plain ``INSERT`` executemany per table.

Append-only rows that nothing reads back in the same transaction — call timeline steps,
outbox events — do not need an ORM object each: building, tracking and flushing one costs
several times the INSERT itself, and a dialer batch writes six of them per call. ``stage``
keeps the row as a dict in ``session.info``; the rows go to the database

* after the session's next flush (so the rows they refer to, e.g. a new call, exist), or
* at commit, when nothing else was pending (a clean session does not flush),

one ``executemany`` per table in the order the tables were first staged, rows in staging
order. A rollback drops them with the transaction. Code that reads a staged table back in
the same transaction calls :func:`write_staged` first. Savepoints are refused while rows are
staged: a savepoint's rollback could not tell its rows from the ones staged before it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_KEY = "callfleet.staged_rows"


def stage(session: AsyncSession | Session, table: Table, row: dict[str, Any]) -> None:
    """Insert ``row`` into ``table`` with the session's next flush or commit."""
    staged: dict[Table, list[dict[str, Any]]] | None = session.info.get(_KEY)
    if staged is None:
        sync = session.sync_session if isinstance(session, AsyncSession) else session
        if not sync.in_transaction():
            sync.begin()  # so that a rollback or close before any query drops the rows
        staged = session.info[_KEY] = {}
    rows = staged.get(table)
    if rows is None:
        staged[table] = [row]
    else:
        rows.append(row)


def has_staged(session: Session) -> bool:
    return bool(session.info.get(_KEY))


def _write(session: Session) -> None:
    staged = session.info.pop(_KEY, None)
    if not staged:
        return
    conn = session.connection()
    for table, rows in staged.items():
        conn.execute(insert(table), rows)


async def write_staged(session: AsyncSession) -> None:
    """Flush the session and write every staged row now (to read them back)."""
    await session.flush()
    await session.run_sync(_write)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush_context: Any) -> None:
    _write(session)  # after the flush's own INSERTs: the rows referred to exist


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.info.get(_KEY):
        session.flush()  # pending objects first (their after_flush writes the rows) ...
        _write(session)  # ... or, with a clean session, the rows alone


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: SessionTransaction) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_transaction_create")
def _no_savepoint_with_staged(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and session.info.get(_KEY):
        raise RuntimeError("staged rows must be written (write_staged) before a savepoint")


@event.listens_for(Session, "after_transaction_end")
def _drop_leftovers(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_KEY, None)  # a closed, never committed transaction
