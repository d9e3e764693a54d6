"""No page issues a query per row: a list page's SQL statements do not grow with the rows
it shows (counted on the engines while the page renders)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from callfleet.crm import service as crm
from callfleet.teams.principal import Principal
from tests.conftest import DbHandle, TeamCtx
from tests.web.helpers import WebClient, make_user


@contextmanager
def counting(database: DbHandle) -> Iterator[list[int]]:
    seen = [0]

    def count(*_: Any) -> None:
        seen[0] += 1

    engines = {database.db.write_engine.sync_engine, database.db.read_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


async def _statements(c: WebClient, database: DbHandle, url: str) -> int:
    await c.get(url)  # warm: the session's last-seen write and caches are not the page's
    with counting(database) as seen:
        r = await c.get(url)
    assert r.status_code == 200, r.text[:300]
    return seen[0]


async def test_list_pages_do_not_query_per_row(app: Any, database: DbHandle,
                                               team: TeamCtx) -> None:
    p = Principal(team.id, team.slug, "test")
    companies = []
    async with database.db.session() as s:
        for i in range(3):
            companies.append((await crm.create_company(s, p, {"name": f"Co {i}"}, "US"))["id"])
        await s.commit()

    async def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            await crm.create_contact(database.db, p, {
                "company_id": companies[i % 3], "first_name": f"P{i}", "last_name": "Row",
                "phone": f"+1415555{2000 + i:04d}"}, "US")

    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "member"))
        await add(2, 0)
        few = {u: await _statements(c, database, u)
               for u in ("/contacts", "/companies", f"/companies/{companies[0]}")}
        await add(40, 2)
        many = {u: await _statements(c, database, u) for u in few}
    assert many == few, (few, many)
    assert max(many.values()) <= 10, many
