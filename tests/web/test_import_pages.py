"""Contacts CSV import in the browser's flow: upload, preview, a column mapping that differs
from the header names, the duplicate policy, progress, and the rejected rows download."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from typing import Any

from callfleet.crm import service as crm
from callfleet.teams.principal import Principal
from tests.conftest import DbHandle, TeamCtx
from tests.web.helpers import WebClient, make_user

CSV = """Given,Family,Mobile,Plan,Internal
Ann,Archer,(415) 555-0101,Pro,x
Bob,Baker,not a phone,Basic,y
Cy,Cole,415-555-0103,Pro,z
Ann,Archer,+1 415 555 0101,Basic,again
"""


async def _wait_done(c: WebClient, import_id: str) -> str:
    for _ in range(200):
        r = await c.get(f"/contacts/import/{import_id}/progress")
        if "Import finished" in r.text or "Import failed" in r.text:
            return r.text
        await asyncio.sleep(0.05)
    raise AssertionError(r.text)


async def test_import_with_a_column_mapping(app: Any, database: DbHandle, team: TeamCtx) -> None:
    p = Principal(team.id, team.slug, "test")
    async with database.db.session() as s:
        company = await crm.create_company(s, p, {"name": "Import Co"}, "US")
        await crm.create_custom_field(s, p, {"key": "plan", "name": "Plan", "type": "select",
                                             "options": ["Basic", "Pro"]})
        await s.commit()
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "member"))
        await c.get("/contacts/import")
        empty = await c.http.post("/contacts/import", data={"csrf_token": c.csrf},
                                  files={"file": ("e.csv", b"", "text/csv")})
        assert empty.status_code == 400 and 'id="e-file"' in empty.text
        r = await c.http.post("/contacts/import", data={"csrf_token": c.csrf},
                              files={"file": ("leads.csv", CSV.encode(), "text/csv")})
        assert r.status_code == 303, r.text
        import_id = r.headers["location"].rsplit("/", 1)[1]
        preview = (await c.get(r.headers["location"])).text
        assert "Ann" in preview and "(415) 555-0101" in preview  # the first rows
        assert "About 4 rows" in preview
        # The header names say nothing the importer knows: the mapping says it all.
        mapping = {"column.0": "first_name", "column.1": "last_name", "column.2": "phone",
                   "column.3": "custom:plan", "column.4": "", "onDuplicate": "update"}
        bad = await c.post(f"/contacts/import/{import_id}/start",
                           {**mapping, "column.1": "", "companyId": ""})
        assert bad.status_code == 400 and "Last name" in bad.text and 'id="e-companyId"' in \
            bad.text
        r = await c.post(f"/contacts/import/{import_id}/start",
                         {**mapping, "companyId": company["id"]})
        assert r.status_code == 303
        done = await _wait_done(c, import_id)
        assert re.search(r"<strong>2</strong> new · <strong>1</strong> updated", done), done
        assert "<strong>1</strong> rejected" in done and "Row 2:" in done
        rejected = await c.get(f"/contacts/import/{import_id}/rejects.csv")
        assert rejected.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(rejected.text)))
        assert rows[0] == ["Given", "Family", "Mobile", "Plan", "Internal", "error"]
        assert rows[1][:3] == ["Bob", "Baker", "not a phone"] and "phone" in rows[1][5]
        assert len(rows) == 2
    contacts, total = [], 0
    async with database.db.session() as s:
        contacts, total = await crm.list_contacts(
            s, p, company_id=company["id"], search=None, lead_status=None, do_not_call=None,
            has_phone=None, tag=None, limit=10, offset=0)
    assert total == 2
    ann = next(x for x in contacts if x["first_name"] == "Ann")
    assert ann["phone"] == "+14155550101" and ann["custom_fields"] == {"plan": "Basic"}
    assert all("Internal" not in x["custom_fields"] and "internal" not in x["custom_fields"]
               for x in contacts)


async def test_another_teams_import_is_a_404(app: Any, database: DbHandle, team: TeamCtx,
                                             other_team: TeamCtx) -> None:
    async with WebClient(app) as a, WebClient(app) as b:
        await a.sign_in(await make_user(database, team, "member"))
        await a.get("/contacts/import")
        r = await a.http.post("/contacts/import", data={"csrf_token": a.csrf},
                              files={"file": ("x.csv", CSV.encode(), "text/csv")})
        path = r.headers["location"]
        await b.sign_in(await make_user(database, other_team, "owner"))
        for url in (path, f"{path}/progress", f"{path}/rejects.csv"):
            assert (await b.get(url)).status_code == 404
        assert (await b.post(f"{path}/start", {"column.0": "first_name"})).status_code == 404
