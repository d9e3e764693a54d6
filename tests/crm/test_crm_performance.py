"""Behaviour kept by the CRM performance work (docs/decisions/0012-crm-performance.md):
deep pages, the remembered company of a contact write, and the import's bulk write path."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from tests.conftest import DbHandle, TeamCtx, make_company, make_contact


async def _page(client: httpx.AsyncClient, t: TeamCtx, **params: object) -> list[str]:
    r = await client.get("/api/crm/contacts", params={"teamId": t.id, **params},
                         headers=t.headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["contacts"]]


async def test_offset_pages_walk_the_same_order_as_one_page(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx, company: str
) -> None:
    made = []
    for i in range(7):
        made.append((await make_contact(
            client, team, company, firstName=f"Page{i}", lastName="Walker",
            leadStatus="qualified" if i % 2 else "new",
            phone=f"+1415555{1200 + i}" if i % 3 else None))["id"])
    other_company = await make_company(client, other_team)
    await make_contact(client, other_team, other_company, firstName="Page9", lastName="Walker")
    for filters in ({}, {"search": "walker"}, {"leadStatus": "qualified", "hasPhone": "true"}):
        whole = await _page(client, team, limit=100, **filters)
        walked: list[str] = []
        for offset in range(len(whole) + 2):
            walked += await _page(client, team, limit=1, offset=offset, **filters)
        assert walked == whole, filters
        assert await _page(client, team, limit=3, offset=1, **filters) == whole[1:4]
    assert await _page(client, team, limit=100) == made[::-1]  # newest first
    assert await _page(client, team, limit=50, offset=7) == []


async def test_contact_write_after_its_company_was_deleted_elsewhere_is_404(
    client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    company = await make_company(client, team, "Gone Soon")
    contact = await make_contact(client, team, company)  # the company's team is remembered
    keep = await make_company(client, team, "Stays")
    moved = await make_contact(client, team, keep)
    # Another server process deletes the company (this one's memory is not told).
    async with database.db.session() as s:
        await s.execute(text("DELETE FROM contacts WHERE company_id = :c"), {"c": company})
        await s.execute(text("DELETE FROM companies WHERE id = :c"), {"c": company})
        await s.commit()
    body = {"teamId": team.id, "companyId": company, "firstName": "Late", "lastName": "Comer"}
    r = await client.post("/api/crm/contacts", json=body, headers=team.headers)
    assert r.status_code == 404, r.text
    assert "companyId" in r.json()["details"]
    r = await client.patch(f"/api/crm/contacts/{moved['id']}", json={"companyId": company},
                           headers=team.headers)
    assert r.status_code == 404, r.text
    r = await client.get(f"/api/crm/contacts/{contact['id']}", headers=team.headers)
    assert r.status_code == 404
    # The remembered answer never crosses teams.
    r = await client.post("/api/crm/contacts", json={**body, "companyId": keep},
                          headers=team.headers)
    assert r.status_code == 201, r.text


async def test_bulk_import_keeps_search_and_its_trigger(
    client: httpx.AsyncClient, team: TeamCtx, company: str, database: DbHandle
) -> None:
    """Batches of >= 64 rows index the search text in one statement on SQLite (the insert
    trigger is swapped out inside the batch's transaction); both paths stay searchable."""
    lines = ["First Name,Last Name,Phone,Email"]
    lines += [f"Bulky{i},Quokka{i},(646) 555-{2000 + i},bulky{i}@zoo.example" for i in range(150)]
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id,
                                                                "companyId": company},
                          content="\n".join(lines) + "\n",
                          headers={**team.headers, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 150
    assert len(await _page(client, team, search="quokka", limit=1000)) == 150
    assert len(await _page(client, team, search="quokka149")) == 1
    assert len(await _page(client, team, search="646 555 2149")) == 1
    if database.backend == "sqlite":
        async with database.db.session(write=False) as s:
            names = set(await s.scalars(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'contacts'"
            )))
        assert {"contacts_fts_ai", "contacts_fts_ad", "contacts_fts_au"} <= names
    # A single create after the import goes through the trigger again.
    await make_contact(client, team, company, firstName="Solo", lastName="Quokkaton")
    assert len(await _page(client, team, search="quokkaton")) == 1
    # A re-import of the same rows updates them all (found by phone), creating none.
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id,
                                                                "companyId": company},
                          content="\n".join(lines).replace("Bulky", "Bulkier") + "\n",
                          headers={**team.headers, "Content-Type": "text/csv"})
    assert (r.json()["imported"], r.json()["updated"]) == (0, 150), r.text
    assert len(await _page(client, team, search="bulkier", limit=1000)) == 150
    assert await _page(client, team, search="bulky149 quokka") == []  # the old name is gone
    assert len(await _page(client, team, search="bulkier149 quokka")) == 1


async def test_database_refuses_a_contact_of_another_teams_company(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx, company: str,
    database: DbHandle
) -> None:
    """PostgreSQL: one foreign key, contacts (team_id, company_id) -> companies (team_id, id),
    so even a write that bypasses the API cannot attach a contact to another team's company
    (migration 0013). Counting, listing and deleting by company name the team."""
    from sqlalchemy.exc import IntegrityError

    theirs = await make_company(client, other_team, "Theirs")
    mine = await make_contact(client, team, company, firstName="Mine")
    await make_contact(client, other_team, theirs, firstName="Theirs")
    if database.backend == "postgres":
        for sql in ("UPDATE contacts SET company_id = :c WHERE id = :k",
                    "UPDATE contacts SET team_id = :t WHERE id = :k"):
            async with database.db.session() as s:
                try:
                    await s.execute(text(sql), {"c": theirs, "t": other_team.id,
                                                "k": mine["id"]})
                    await s.commit()
                    raise AssertionError(f"accepted: {sql}")
                except IntegrityError as exc:
                    assert "fk_contacts_team_id_company_id_companies" in str(exc)
    r = await client.get(f"/api/crm/companies/{company}", headers=team.headers)
    assert r.json()["company"]["contact_count"] == 1, r.text
    r = await client.get("/api/crm/companies", params={"teamId": other_team.id},
                         headers=other_team.headers)
    assert [c["contact_count"] for c in r.json()["companies"]] == [1], r.text
    r = await client.delete(f"/api/crm/companies/{theirs}", params={"cascade": "true"},
                            headers=other_team.headers)
    assert r.status_code == 200, r.text
    assert await _page(client, other_team) == []
    assert await _page(client, team) == [mine["id"]]
