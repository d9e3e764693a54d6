"""Apply Alembic migrations at start (``callfleet serve``, ``worker``, CLI and tests).

On PostgreSQL an advisory lock makes concurrent starters wait for one another; on SQLite the
write engine's ``BEGIN IMMEDIATE`` does the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from callfleet.db.session import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6361_6C6C  # "call"


def _config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Any) -> None:
    command.upgrade(_config(connection), "head")


async def migrate(db: Database) -> None:
    async with db.write_engine.connect() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            if not db.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                await conn.commit()
