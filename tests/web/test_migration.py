"""Migrations 0018 and 0019 create exactly the tables the models describe (on both databases)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callfleet.crm import models as crm_models
from callfleet.db.base import Base
from callfleet.teams import models as team_models
from tests.conftest import DbHandle

TABLES = {"users", "team_members", "web_sessions", "sign_in_links", "sign_in_failures",
          "contact_imports"}


def _ours(diff: Any) -> bool:
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item[1:]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if name in TABLES or getattr(table, "name", None) in TABLES:
                return True
            if isinstance(part, str) and part in TABLES:
                return True
    return False


async def test_models_match_the_migration(database: DbHandle) -> None:
    assert crm_models.ContactImport.__tablename__ in TABLES  # the tables are registered
    assert team_models.User.__tablename__ in TABLES
    def diff(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, Base.metadata) if _ours(d)]

    async with database.db.write_engine.connect() as conn:
        found = await conn.run_sync(diff)
    assert found == []
