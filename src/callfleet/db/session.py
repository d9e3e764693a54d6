"""Engine and sessions.

SQLite note: a deferred transaction that reads and then writes can fail at once with
SQLITE_BUSY when another connection committed in between (busy_timeout does not help there).
Write sessions therefore start with ``BEGIN IMMEDIATE`` (they queue for the write lock up
front, honouring busy_timeout); read sessions use a plain deferred ``BEGIN`` so reads run in
parallel under WAL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-16384",  # 16 MB per connection
    # Memory-mapped reads, capped: every connection maps the file separately, and mapped
    # pages count in the server's RSS once per mapping (docs/decisions/0012).
    "PRAGMA mmap_size=67108864",
)


def json_dumps(value: Any) -> str:
    """JSON columns are written with orjson (several times faster than ``json.dumps``; the
    dialer writes a few JSON values per call event)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_JSON = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}


def _sqlite_engine(url: str, *, immediate: bool, **kw: Any) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"isolation_level": None}, **_JSON, **kw)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """The process's database handles: one engine for writes, one for reads (same on PG)."""

    url: str
    write_engine: AsyncEngine
    read_engine: AsyncEngine

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def session(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        engine = self.write_engine if write else self.read_engine
        async with AsyncSession(engine, expire_on_commit=False) as s:
            yield s

    @asynccontextmanager
    async def driver_connection(self, session: AsyncSession | None = None) -> AsyncIterator[Any]:
        """The DB-API driver's own connection (aiosqlite / asyncpg) for hand-written
        statements: the session's, inside its transaction, or else a pooled write connection
        in autocommit, where each statement is a transaction of its own (a single-statement
        write then costs one round trip: no BEGIN, no COMMIT)."""
        if session is not None:
            conn = await session.connection()
            yield (await conn.get_raw_connection()).driver_connection
            return
        async with self.write_engine.connect() as conn:
            yield (await conn.get_raw_connection()).driver_connection

    def sessionmaker(self, *, write: bool = True) -> async_sessionmaker[AsyncSession]:
        engine = self.write_engine if write else self.read_engine
        return async_sessionmaker(engine, expire_on_commit=False)

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def open_database(url: str, *, pool_size: int = 20, null_pool: bool = False) -> Database:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if null_pool:
            write = _sqlite_engine(url, immediate=True, poolclass=NullPool)
            read = _sqlite_engine(url, immediate=False, poolclass=NullPool)
        else:
            # Writers queue for one lock anyway: a few write connections suffice, and each
            # connection carries its own page cache.
            write = _sqlite_engine(url, immediate=True, pool_size=min(pool_size, 4),
                                   max_overflow=4)
            # LIFO: under light load the same few connections (and page caches) are reused
            # instead of every pooled connection warming its own cache (server RSS).
            read = _sqlite_engine(url, immediate=False, pool_size=pool_size, max_overflow=0,
                                  pool_use_lifo=True)
        return Database(url, write, read)
    if null_pool:
        engine = create_async_engine(url, poolclass=NullPool, **_JSON)
    else:
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, **_JSON
        )
    return Database(url, engine, engine)
