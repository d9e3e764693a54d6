"""Contacts: the seed page's request and response shapes, filters, search, PATCH, DELETE."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import TeamCtx, make_company, make_contact

SEED_FIELDS = {
    "id", "team_id", "company_id", "first_name", "last_name", "email", "phone",
    "phone_secondary", "job_title", "lead_status", "source", "timezone", "do_not_call", "notes",
    "custom_fields", "tags", "created_at", "updated_at",
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_create_contact_matches_seed(client: httpx.AsyncClient, team: TeamCtx,
                                           company: str) -> None:
    body = {
        "teamId": team.id, "companyId": company, "firstName": "Sarah", "lastName": "Chen",
        "email": "sarah.chen@example.com", "phone": "+14155551234",
        "jobTitle": "VP of Engineering", "leadStatus": "new", "source": "trade-show",
        "timezone": "America/Los_Angeles", "doNotCall": False,
        "tags": ["enterprise", "warm-lead"],
        "customFields": {"company_size": "500-1000", "interest": "outbound-automation"},
    }
    r = await client.post("/api/crm/contacts", json=body, headers=team.headers)
    assert r.status_code == 201
    data = r.json()
    assert data["success"] is True
    c = data["contact"]
    assert SEED_FIELDS <= set(c)
    assert re.match(r"^cont_[0-9a-hjkmnp-tv-z]{26}$", c["id"])
    assert c["team_id"] == team.id and c["company_id"] == company
    assert c["first_name"] == "Sarah" and c["job_title"] == "VP of Engineering"
    assert c["phone"] == "+14155551234" and c["phone_secondary"] is None
    assert c["notes"] is None and c["do_not_call"] is False
    assert c["custom_fields"] == {"company_size": "500-1000", "interest": "outbound-automation"}
    assert c["tags"] == ["enterprise", "warm-lead"]
    assert TS.match(c["created_at"]) and TS.match(c["updated_at"])

    got = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert got.status_code == 200
    detail = got.json()["contact"]
    assert {k: detail[k] for k in c} == c
    assert detail["campaigns"] == [] and detail["calls"] == []


async def test_phone_formats_normalise_to_e164(client: httpx.AsyncClient, team: TeamCtx,
                                              company: str) -> None:
    for raw in ("(415) 555-1234", "415.555.1234", "1-415-555-1234", "+1 415 555 1234"):
        c = await make_contact(client, team, company, phone=raw)
        assert c["phone"] == "+14155551234", raw
    c = await make_contact(client, team, company, phone="+44 20 7946 0000")
    assert c["phone"] == "+442079460000"


async def test_invalid_values_are_400_naming_the_field(client: httpx.AsyncClient, team: TeamCtx,
                                                       company: str) -> None:
    base = {"teamId": team.id, "companyId": company, "firstName": "A", "lastName": "B"}
    cases = {
        "phone": {"phone": "12345"},
        "timezone": {"timezone": "Mars/Olympus"},
        "leadStatus": {"leadStatus": "hot"},
        "email": {"email": "not-an-email"},
        "firstName": {"firstName": ""},
        "tags": {"tags": "x" * 10},
        "doNotCall": {"doNotCall": "maybe"},
    }
    for name, patch in cases.items():
        r = await client.post("/api/crm/contacts", json={**base, **patch}, headers=team.headers)
        assert r.status_code == 400, (name, r.text)
        body = r.json()
        assert body["success"] is False and name in body["details"], (name, body)
    r = await client.post("/api/crm/contacts", json={"teamId": team.id}, headers=team.headers)
    assert r.status_code == 400 and r.json()["success"] is False


async def test_list_filters_and_search(client: httpx.AsyncClient, team: TeamCtx,
                                       company: str) -> None:
    a = await make_contact(client, team, company, firstName="Ada", lastName="Lovelace",
                           email="ada@analytical.org", phone="+14155551234",
                           leadStatus="qualified", tags=["vip"])
    b = await make_contact(client, team, company, firstName="Bob", lastName="Smith",
                           email="bob@example.com", doNotCall=True)
    c = await make_contact(client, team, company, firstName="Cy", lastName="Twombly",
                           phone="+12025550123")

    async def ids(**params: str) -> list[str]:
        r = await client.get("/api/crm/contacts", params={"teamId": team.id, **params},
                             headers=team.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["contacts"])
        return [x["id"] for x in body["contacts"]]

    assert set(await ids()) == {a["id"], b["id"], c["id"]}
    assert await ids(search="lovel") == [a["id"]]
    assert await ids(search="LOVELACE") == [a["id"]]
    assert await ids(search="415 555") == [a["id"]]
    assert await ids(search="(202) 555-0123") == [c["id"]]
    assert await ids(search="bob@exa") == [b["id"]]
    assert await ids(search="Ad") == [a["id"]]
    assert await ids(search="ada lovelace") == [a["id"]]
    assert await ids(search="%") == []
    assert await ids(search="'; DROP TABLE contacts; --") == []
    assert await ids(search='"\\') == []
    assert await ids(leadStatus="qualified") == [a["id"]]
    assert await ids(doNotCall="true") == [b["id"]]
    assert set(await ids(hasPhone="true")) == {a["id"], c["id"]}
    assert await ids(hasPhone="false") == [b["id"]]
    assert await ids(tag="vip") == [a["id"]]
    assert await ids(hasPhone="true", leadStatus="qualified") == [a["id"]]
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "limit": 2},
                         headers=team.headers)
    page = r.json()
    assert page["count"] == 3 and page["limit"] == 2 and len(page["contacts"]) == 2
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "limit": 2,
                                                      "offset": 2}, headers=team.headers)
    assert len(r.json()["contacts"]) == 1 and r.json()["offset"] == 2
    for bad in ({"limit": "x"}, {"offset": "-1"}, {"hasPhone": "perhaps"},
                {"leadStatus": "hot"}, {"companyId": "nope"}):
        r = await client.get("/api/crm/contacts", params={"teamId": team.id, **bad},
                             headers=team.headers)
        assert r.status_code == 400, bad


async def test_patch_and_delete(client: httpx.AsyncClient, team: TeamCtx, company: str) -> None:
    c = await make_contact(client, team, company, customFields={"a": 1, "b": 2}, tags=["x"])
    r = await client.patch(f"/api/crm/contacts/{c['id']}", headers=team.headers,
                           json={"lastName": "Lee", "customFields": {"b": None, "c": 3},
                                 "notes": "called", "phone": "415-555-0000"})
    assert r.status_code == 200, r.text
    u = r.json()["contact"]
    assert u["last_name"] == "Lee" and u["notes"] == "called"
    assert u["custom_fields"] == {"a": 1, "c": 3}
    assert u["phone"] == "+14155550000"
    assert u["created_at"] == c["created_at"]
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "search": "lee"},
                         headers=team.headers)
    assert [x["id"] for x in r.json()["contacts"]] == [c["id"]]
    r = await client.patch(f"/api/crm/contacts/{c['id']}", headers=team.headers,
                           json={"firstName": None})
    assert r.status_code == 400
    r = await client.delete(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True}
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.status_code == 404


async def test_unknown_and_wrong_prefix_ids_are_404(client: httpx.AsyncClient,
                                                    team: TeamCtx) -> None:
    for bad in ("cont_01jzzzzzzzzzzzzzzzzzzzzzzz", "comp_01m81x4gbvdj8dkmnwwwqav0yh", "x",
                "cont_" + "0" * 26):
        r = await client.get(f"/api/crm/contacts/{bad}", headers=team.headers)
        assert r.status_code == 404, bad
        assert r.json() == {"success": False, "error": "Contact not found"}


async def test_auth_required(client: httpx.AsyncClient, team: TeamCtx) -> None:
    for headers in ({}, {"Authorization": "Bearer tk_live_nope"}, {"Authorization": "Basic x"}):
        r = await client.get("/api/crm/contacts", params={"teamId": team.id}, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"success": False, "error": "Unauthorized"}


async def test_idempotency_key(client: httpx.AsyncClient, team: TeamCtx, company: str) -> None:
    body = {"teamId": team.id, "companyId": company, "firstName": "I", "lastName": "D"}
    h = {**team.headers, "Idempotency-Key": "abc-123"}
    r1 = await client.post("/api/crm/contacts", json=body, headers=h)
    r2 = await client.post("/api/crm/contacts", json=body, headers=h)
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    assert r2.headers.get("idempotent-replayed") == "true"
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "search": "i d"},
                         headers=team.headers)
    assert r.json()["count"] == 1
    r3 = await client.post("/api/crm/contacts", json={**body, "firstName": "J"}, headers=h)
    assert r3.status_code == 409


async def test_search_pages_keep_the_count(client: httpx.AsyncClient, team: TeamCtx,
                                           company: str) -> None:
    made = [await make_contact(client, team, company, firstName=f"Pagey{i}",
                               lastName="Searchfield") for i in range(5)]
    await make_contact(client, team, company, firstName="Other", lastName="Person")
    newest_first = [c["id"] for c in reversed(made)]

    async def page(**params: Any) -> dict[str, Any]:
        r = await client.get("/api/crm/contacts", headers=team.headers,
                             params={"teamId": team.id, "search": "searchfield", **params})
        assert r.status_code == 200, r.text
        return r.json()

    first = await page(limit=2)
    assert first["count"] == 5 and [c["id"] for c in first["contacts"]] == newest_first[:2]
    middle = await page(limit=2, offset=2)
    assert middle["count"] == 5 and [c["id"] for c in middle["contacts"]] == newest_first[2:4]
    past = await page(limit=2, offset=10)
    assert past["count"] == 5 and past["contacts"] == []
    none = await page(search="no-such-person-anywhere")
    assert none["count"] == 0 and none["contacts"] == []
    assert (await page(leadStatus="qualified"))["count"] == 0


async def test_search_follows_every_write(client: httpx.AsyncClient, team: TeamCtx,
                                          other_team: TeamCtx, company: str) -> None:
    """The search index (FTS5 on SQLite, the contact_search table on PostgreSQL, both kept
    by triggers) follows creates, renames, imports, merges, deletes and company cascades,
    and one team's search never finds another team's contacts."""

    async def found(q: str, t: TeamCtx = team, **params: str) -> list[str]:
        r = await client.get("/api/crm/contacts", headers=t.headers,
                             params={"teamId": t.id, "search": q, **params})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(r.json()["contacts"])
        return sorted(c["first_name"] for c in r.json()["contacts"])

    a = await make_contact(client, team, company, firstName="Quillon", lastName="Barrow",
                           email="quillon@example.com", phone="+14155550111")
    theirs = await make_company(client, other_team, "Theirs")
    await make_contact(client, other_team, theirs, firstName="Quillon", lastName="Other")
    assert await found("quillon") == ["Quillon"]
    assert await found("quillon", other_team) == ["Quillon"]
    assert await found("quillon", leadStatus="new") == ["Quillon"]  # with a filter too
    r = await client.patch(f"/api/crm/contacts/{a['id']}", headers=team.headers,
                           json={"firstName": "Zephyrine", "phone": "+14155550999",
                                 "email": "zeph@example.com"})
    assert r.status_code == 200, r.text
    assert await found("quillon") == [] and await found("zephyr") == ["Zephyrine"]
    assert await found("555 0999") == ["Zephyrine"] and await found("555 0111") == []
    # Import: a new row, and a row merged into the contact above by phone (new email).
    csv = ("First Name,Last Name,Phone,Email\n"
           "Marigold,Finch,+14155550222,\n"
           "Zephyrine,Barrow,+14155550999,zeph@newmail.example\n")
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id,
                                                              "companyId": company},
                          content=csv.encode(), headers={**team.headers,
                                                         "Content-Type": "text/csv"})
    assert r.status_code == 200 and (r.json()["imported"], r.json()["updated"]) == (1, 1)
    assert await found("marigold") == ["Marigold"]
    assert await found("newmail") == ["Zephyrine"] and await found("quillon@") == []
    r = await client.delete(f"/api/crm/contacts/{a['id']}", headers=team.headers)
    assert r.status_code == 200, r.text
    assert await found("zephyr") == []
    # A company deleted with its contacts takes them out of the search.
    r = await client.delete(f"/api/crm/companies/{company}", headers=team.headers,
                            params={"cascade": "true"})
    assert r.status_code == 200, r.text
    assert await found("marigold") == []
    assert await found("quillon", other_team) == ["Quillon"]
