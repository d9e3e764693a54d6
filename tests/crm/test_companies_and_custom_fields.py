"""Companies, custom field definitions (and their coercion of values), the team and API keys."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import delete, update

from callfleet import ids
from callfleet.crm.models import CustomFieldDefinition
from callfleet.teams.models import Team
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact, new_team

ID = r"[0-7][0-9a-hjkmnp-tv-z]{25}"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
COMPANY_KEYS = {
    "id", "team_id", "name", "website", "industry", "company_size", "phone", "address_line1",
    "address_line2", "city", "state", "postal_code", "country", "notes", "custom_fields",
    "contact_count", "created_at", "updated_at",
}


async def _companies(client: httpx.AsyncClient, t: TeamCtx, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/crm/companies", params={"teamId": t.id, **params},
                         headers=t.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "companies", "count", "limit", "offset"}
    return dict(body)


async def _define(client: httpx.AsyncClient, t: TeamCtx, **fields: Any) -> dict[str, Any]:
    r = await client.post("/api/crm/custom-fields", json={"teamId": t.id, **fields},
                          headers=t.headers)
    assert r.status_code == 201, r.text
    return dict(r.json()["custom_field"])


# ---------------------------------------------------------------- companies


async def test_company_create_get_patch(client: httpx.AsyncClient, team: TeamCtx) -> None:
    body = {
        "teamId": team.id, "name": "Initech", "website": "https://initech.example",
        "industry": "Software", "companySize": "51-200", "phone": "(415) 555-0100",
        "addressLine1": "1 Infinite Loop", "addressLine2": "Suite 2", "city": "Austin",
        "state": "TX", "postalCode": "73301", "country": "us", "notes": "TPS reports",
        "customFields": {"tier": "gold"},
    }
    r = await client.post("/api/crm/companies", json=body, headers=team.headers)
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"success", "company"} and r.json()["success"] is True
    c = r.json()["company"]
    assert set(c) == COMPANY_KEYS
    assert re.match(rf"^comp_{ID}$", c["id"])
    assert c["team_id"] == team.id and c["name"] == "Initech"
    assert c["website"] == "https://initech.example" and c["industry"] == "Software"
    assert c["company_size"] == "51-200" and c["phone"] == "+14155550100"
    assert c["address_line1"] == "1 Infinite Loop" and c["address_line2"] == "Suite 2"
    assert (c["city"], c["state"], c["postal_code"]) == ("Austin", "TX", "73301")
    assert c["country"] == "US" and c["notes"] == "TPS reports"
    assert c["custom_fields"] == {"tier": "gold"} and c["contact_count"] == 0
    assert TS.match(c["created_at"]) and TS.match(c["updated_at"])

    r = await client.get(f"/api/crm/companies/{c['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True, "company": c}

    r = await client.patch(f"/api/crm/companies/{c['id']}", headers=team.headers,
                           json={"name": "Initrode", "customFields": {"size": 3},
                                 "website": None})
    assert r.status_code == 200, r.text
    u = r.json()["company"]
    assert u["name"] == "Initrode" and u["website"] is None and u["industry"] == "Software"
    assert u["custom_fields"] == {"tier": "gold", "size": 3}
    assert u["created_at"] == c["created_at"]
    r = await client.get("/api/crm/companies/" + c["id"], headers=team.headers)
    assert r.json()["company"] == u

    for bad in ({"name": ""}, {"country": "USA"}, {"phone": "12"}, {"name": None}):
        r = await client.patch(f"/api/crm/companies/{c['id']}", json=bad, headers=team.headers)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["success"] is False


async def test_company_create_validation_and_ownership(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx
) -> None:
    for bad, field in (({"name": "X", "country": "Germany"}, "country"),
                       ({"name": "  "}, "name"), ({}, "name"),
                       ({"name": "X", "phone": "not a phone"}, "phone")):
        r = await client.post("/api/crm/companies", json={"teamId": team.id, **bad},
                              headers=team.headers)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["success"] is False and field in r.json()["details"], r.json()
    r = await client.post("/api/crm/companies", json={"name": "X"}, headers=team.headers)
    assert r.status_code == 400
    r = await client.post("/api/crm/companies", json={"teamId": other_team.id, "name": "X"},
                          headers=team.headers)
    assert r.status_code == 403
    r = await client.post("/api/crm/companies", content=b"{nope",
                          headers={**team.headers, "Content-Type": "application/json"})
    assert r.status_code == 400

    theirs = await make_company(client, other_team, "Globex Inc")
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"/api/crm/companies/{theirs}", headers=team.headers,
                                 json={"name": "Mine"} if method == "PATCH" else None)
        assert r.status_code == 403, (method, r.text)
    r = await client.get(f"/api/crm/companies/{theirs}/contacts", headers=team.headers)
    assert r.status_code == 403
    for unknown in ("comp_01jzzzzzzzzzzzzzzzzzzzzzzz", "cont_01jzzzzzzzzzzzzzzzzzzzzzzz", "x"):
        r = await client.get(f"/api/crm/companies/{unknown}", headers=team.headers)
        assert r.status_code == 404
        assert r.json() == {"success": False, "error": "Company not found"}
        r = await client.get(f"/api/crm/companies/{unknown}/contacts", headers=team.headers)
        assert r.status_code == 404
    r = await client.get("/api/crm/companies", params={"teamId": other_team.id},
                         headers=team.headers)
    assert r.status_code == 403
    # The other team's company is untouched and invisible in our list.
    r = await client.get(f"/api/crm/companies/{theirs}", headers=other_team.headers)
    assert r.json()["company"]["name"] == "Globex Inc"
    assert theirs not in [c["id"] for c in (await _companies(client, team))["companies"]]


async def test_company_list_search_industry_and_contact_count(
    client: httpx.AsyncClient, team: TeamCtx
) -> None:
    specs = [
        ("Acme Rockets", "https://acme-rockets.example", "Aerospace"),
        ("Blue Origin Labs", "https://blue.example", "aerospace"),
        ("Cyberdyne", "https://skynet.example", "Robotics"),
        ("Data_Corp 100%", None, None),
    ]
    ids: dict[str, str] = {}
    for name, website, industry in specs:
        r = await client.post("/api/crm/companies", headers=team.headers, json={
            "teamId": team.id, "name": name, "website": website, "industry": industry})
        assert r.status_code == 201, r.text
        ids[name] = r.json()["company"]["id"]
    for _ in range(3):
        await make_contact(client, team, ids["Cyberdyne"])
    await make_contact(client, team, ids["Acme Rockets"])

    async def names(**params: Any) -> set[str]:
        body = await _companies(client, team, **params)
        assert body["count"] == len(body["companies"])
        return {c["name"] for c in body["companies"]}

    everything = await _companies(client, team)
    assert everything["count"] == 4 and everything["limit"] == 50 and everything["offset"] == 0
    counts = {c["name"]: c["contact_count"] for c in everything["companies"]}
    assert counts == {"Acme Rockets": 1, "Blue Origin Labs": 0, "Cyberdyne": 3,
                      "Data_Corp 100%": 0}
    assert all(set(c) == COMPANY_KEYS for c in everything["companies"])

    assert await names(search="ROCKET") == {"Acme Rockets"}
    assert await names(search="skynet") == {"Cyberdyne"}          # website
    assert await names(search=".example") == {"Acme Rockets", "Blue Origin Labs", "Cyberdyne"}
    assert await names(search="labs") == {"Blue Origin Labs"}
    assert await names(search="%") == {"Data_Corp 100%"}            # literal, not a wildcard
    assert await names(search="a_c") == {"Data_Corp 100%"}
    assert await names(search="nothing-like-this") == set()
    assert await names(industry="aerospace") == {"Acme Rockets", "Blue Origin Labs"}
    assert await names(industry="Robotics") == {"Cyberdyne"}
    assert await names(industry="aero") == set()                    # an exact match filter
    assert await names(industry="AEROSPACE", search="blue") == {"Blue Origin Labs"}

    page = await _companies(client, team, limit=3, offset=2)
    assert page["count"] == 4 and page["limit"] == 3 and page["offset"] == 2
    assert len(page["companies"]) == 2

    r = await client.get(f"/api/crm/companies/{ids['Cyberdyne']}", headers=team.headers)
    assert r.json()["company"]["contact_count"] == 3


async def test_company_contacts_and_delete(client: httpx.AsyncClient, team: TeamCtx) -> None:
    full = await make_company(client, team, "Full Co")
    empty = await make_company(client, team, "Empty Co")
    other = await make_company(client, team, "Other Co")
    mine = [await make_contact(client, team, full, firstName=f"P{i}", lastName="X")
            for i in range(3)]
    elsewhere = await make_contact(client, team, other)

    r = await client.get(f"/api/crm/companies/{full}/contacts", headers=team.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "contacts", "count", "limit", "offset"}
    assert body["count"] == 3
    assert {c["id"] for c in body["contacts"]} == {c["id"] for c in mine}
    assert all(c["company_id"] == full for c in body["contacts"])
    r = await client.get(f"/api/crm/companies/{full}/contacts", params={"limit": 2, "offset": 2},
                         headers=team.headers)
    assert r.json()["count"] == 3 and len(r.json()["contacts"]) == 1
    r = await client.get(f"/api/crm/companies/{empty}/contacts", headers=team.headers)
    assert r.json()["count"] == 0 and r.json()["contacts"] == []

    r = await client.delete(f"/api/crm/companies/{full}", headers=team.headers)
    assert r.status_code == 409
    assert r.json()["success"] is False and "3" in r.json()["error"]
    r = await client.delete(f"/api/crm/companies/{full}", params={"cascade": "false"},
                            headers=team.headers)
    assert r.status_code == 409
    r = await client.get(f"/api/crm/contacts/{mine[0]['id']}", headers=team.headers)
    assert r.status_code == 200  # nothing was deleted by the refused requests
    r = await client.delete(f"/api/crm/companies/{full}", params={"cascade": "maybe"},
                            headers=team.headers)
    assert r.status_code == 400

    r = await client.delete(f"/api/crm/companies/{full}", params={"cascade": "true"},
                            headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True}
    for c in mine:
        r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
        assert r.status_code == 404
    r = await client.get(f"/api/crm/companies/{full}", headers=team.headers)
    assert r.status_code == 404
    r = await client.get(f"/api/crm/contacts/{elsewhere['id']}", headers=team.headers)
    assert r.status_code == 200

    r = await client.delete(f"/api/crm/companies/{empty}", headers=team.headers)
    assert r.status_code == 200
    r = await client.delete(f"/api/crm/companies/{empty}", headers=team.headers)
    assert r.status_code == 404
    assert {c["id"] for c in (await _companies(client, team))["companies"]} == {other}


# ---------------------------------------------------------------- custom field definitions


async def test_custom_field_crud(client: httpx.AsyncClient, team: TeamCtx,
                                 other_team: TeamCtx) -> None:
    d = await _define(client, team, key="budget_usd", name="Budget (USD)", type="number",
                      entityType="contact", description="Yearly budget")
    assert re.match(rf"^cf_{ID}$", d["id"])
    assert {k: d[k] for k in ("team_id", "key", "name", "type", "options", "entity_type",
                              "description", "required")} == {
        "team_id": team.id, "key": "budget_usd", "name": "Budget (USD)", "type": "number",
        "options": None, "entity_type": "contact", "description": "Yearly budget",
        "required": False,
    }
    assert TS.match(d["created_at"]) and TS.match(d["updated_at"])
    r = await client.get(f"/api/crm/custom-fields/{d['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True, "custom_field": d}

    # Unique per team + entity type.
    r = await client.post("/api/crm/custom-fields", headers=team.headers, json={
        "teamId": team.id, "key": "budget_usd", "name": "Again", "type": "text"})
    assert r.status_code == 409 and r.json()["success"] is False
    company_def = await _define(client, team, key="budget_usd", name="Budget", type="number",
                                entityType="company")
    assert company_def["entity_type"] == "company"
    theirs = await _define(client, other_team, key="budget_usd", name="Theirs", type="text")
    assert theirs["team_id"] == other_team.id

    sel = await _define(client, team, key="tier", name="Tier", type="select",
                        options=["Gold", "Silver", "Gold", " "])
    assert sel["options"] == ["Gold", "Silver"] and sel["entity_type"] == "contact"

    bad_bodies = [
        ({"key": "Budget USD", "name": "x", "type": "text"}, "key"),
        ({"key": "1st", "name": "x", "type": "text"}, "key"),
        ({"name": "x", "type": "text"}, "key"),
        ({"key": "plan", "name": "x", "type": "select"}, "options"),
        ({"key": "plan", "name": "x", "type": "select", "options": []}, "options"),
        ({"key": "plan", "name": "x", "type": "money"}, "type"),
        ({"key": "plan", "name": "x"}, "type"),
        ({"key": "plan", "type": "text"}, "name"),
        ({"key": "plan", "name": "x", "type": "text", "entityType": "deal"}, "entityType"),
    ]
    for bad, field in bad_bodies:
        r = await client.post("/api/crm/custom-fields", json={"teamId": team.id, **bad},
                              headers=team.headers)
        assert r.status_code == 400, (bad, r.text)
        assert field in r.json().get("details", {}), (bad, r.json())
    r = await client.post("/api/crm/custom-fields", headers=team.headers, json={
        "teamId": other_team.id, "key": "plan", "name": "x", "type": "text"})
    assert r.status_code == 403

    r = await client.get("/api/crm/custom-fields", params={"teamId": team.id},
                         headers=team.headers)
    body = r.json()
    assert set(body) == {"success", "custom_fields", "count", "limit", "offset"}
    assert body["count"] == 3
    assert {x["id"] for x in body["custom_fields"]} == {d["id"], company_def["id"], sel["id"]}
    r = await client.get("/api/crm/custom-fields",
                         params={"teamId": team.id, "entityType": "company"},
                         headers=team.headers)
    assert [x["id"] for x in r.json()["custom_fields"]] == [company_def["id"]]
    r = await client.get("/api/crm/custom-fields",
                         params={"teamId": team.id, "entityType": "deal"}, headers=team.headers)
    assert r.status_code == 400

    r = await client.patch(f"/api/crm/custom-fields/{sel['id']}", headers=team.headers,
                           json={"name": "Plan tier", "options": ["Gold", "Silver", "Bronze"]})
    assert r.status_code == 200, r.text
    patched = r.json()["custom_field"]
    assert patched["name"] == "Plan tier" and patched["options"] == ["Gold", "Silver", "Bronze"]
    assert patched["key"] == "tier" and patched["type"] == "select"
    r = await client.patch(f"/api/crm/custom-fields/{sel['id']}", headers=team.headers,
                           json={"key": "plan"})
    assert r.status_code == 400
    r = await client.patch(f"/api/crm/custom-fields/{sel['id']}", headers=team.headers,
                           json={"options": []})
    assert r.status_code == 400
    r = await client.patch(f"/api/crm/custom-fields/{theirs['id']}", headers=team.headers,
                           json={"name": "mine"})
    assert r.status_code == 403
    r = await client.get(f"/api/crm/custom-fields/{theirs['id']}", headers=team.headers)
    assert r.status_code == 403

    r = await client.delete(f"/api/crm/custom-fields/{d['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True}
    r = await client.get(f"/api/crm/custom-fields/{d['id']}", headers=team.headers)
    assert r.status_code == 404
    for unknown in ("cf_01jzzzzzzzzzzzzzzzzzzzzzzz", "comp_01jzzzzzzzzzzzzzzzzzzzzzzz"):
        r = await client.get(f"/api/crm/custom-fields/{unknown}", headers=team.headers)
        assert r.status_code == 404
    # The key is free again once its definition is deleted.
    await _define(client, team, key="budget_usd", name="Budget", type="text")


async def test_defined_custom_fields_coerce_contact_values(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    await _define(client, team, key="budget", name="Budget", type="number")
    await _define(client, team, key="renewal", name="Renewal", type="date")
    await _define(client, team, key="active", name="Active", type="boolean")
    await _define(client, team, key="tier", name="Tier", type="select",
                  options=["Gold", "Silver"])
    await _define(client, team, key="label", name="Label", type="text")

    c = await make_contact(client, team, company, customFields={
        "budget": "1,200", "renewal": "2025-03-01T10:00:00Z", "active": "yes", "tier": "gold",
        "label": 42, "free_form": {"any": ["thing"]},
    })
    assert c["custom_fields"] == {
        "budget": 1200, "renewal": "2025-03-01", "active": True, "tier": "Gold",
        "label": "42", "free_form": {"any": ["thing"]},
    }
    assert isinstance(c["custom_fields"]["budget"], int)
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.json()["contact"]["custom_fields"] == c["custom_fields"]

    c2 = await make_contact(client, team, company, customFields={
        "budget": 99.5, "renewal": "2024-12-31", "active": False, "tier": "Silver"})
    assert c2["custom_fields"] == {"budget": 99.5, "renewal": "2024-12-31", "active": False,
                                   "tier": "Silver"}

    base = {"teamId": team.id, "companyId": company, "firstName": "A", "lastName": "B"}
    bad_values = [
        {"budget": "lots"}, {"budget": True}, {"renewal": "31/12/2024"}, {"renewal": 20240101},
        {"active": "perhaps"}, {"tier": "Platinum"}, {"label": {"nested": 1}},
    ]
    for custom in bad_values:
        r = await client.post("/api/crm/contacts", json={**base, "customFields": custom},
                              headers=team.headers)
        assert r.status_code == 400, (custom, r.text)
        body = r.json()
        assert body["success"] is False and "customFields" in body["details"], body
        assert next(iter(custom)) in body["error"], body

    # PATCH: coerced the same way; a bad value changes nothing.
    r = await client.patch(f"/api/crm/contacts/{c['id']}", headers=team.headers,
                           json={"customFields": {"budget": "$2,500.50", "tier": "SILVER",
                                                  "active": None}})
    assert r.status_code == 200, r.text
    assert r.json()["contact"]["custom_fields"] == {
        "budget": 2500.5, "renewal": "2025-03-01", "tier": "Silver", "label": "42",
        "free_form": {"any": ["thing"]},
    }
    r = await client.patch(f"/api/crm/contacts/{c['id']}", headers=team.headers,
                           json={"customFields": {"budget": "n/a", "label": "changed"}})
    assert r.status_code == 400 and "budget" in r.json()["error"]
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.json()["contact"]["custom_fields"]["budget"] == 2500.5
    assert r.json()["contact"]["custom_fields"]["label"] == "42"


async def _change_definitions_elsewhere(database: DbHandle, team_id: str,
                                        add: dict[str, Any] | None = None) -> None:
    """What another process's definition write leaves in the database: the definitions
    changed and the team's ``custom_fields_version`` bumped (this process's remembered copy
    is not told)."""
    async with database.db.session() as s:
        if add is None:
            await s.execute(delete(CustomFieldDefinition)
                            .where(CustomFieldDefinition.team_id == team_id))
        else:
            s.add(CustomFieldDefinition(id=ids.new_id("cf"), team_id=team_id,
                                        entity_type="contact", **add))
        await s.execute(update(Team).where(Team.id == team_id)
                        .values(custom_fields_version=Team.custom_fields_version + 1))
        await s.commit()


async def test_definitions_changed_by_another_process_apply_to_the_next_create(
    client: httpx.AsyncClient, team: TeamCtx, company: str, database: DbHandle
) -> None:
    """Creates check custom fields against definitions the process remembers; its single
    insert is refused when the team's definitions changed since, and the values are checked
    again. So a definition added or removed by another process applies to the next create."""
    c = await make_contact(client, team, company, customFields={"budget": "1,200"})
    assert c["custom_fields"] == {"budget": "1,200"}  # no definition: free-form
    await _change_definitions_elsewhere(database, team.id, {"key": "budget", "name": "Budget",
                                                            "type": "number"})
    c = await make_contact(client, team, company, customFields={"budget": "1,200"})
    assert c["custom_fields"] == {"budget": 1200}
    r = await client.post("/api/crm/contacts", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "firstName": "A", "lastName": "B",
        "customFields": {"budget": "lots"}})
    assert r.status_code == 400 and "customFields" in r.json()["details"], r.text
    # Removed elsewhere: the remembered number definition must not refuse free text.
    await _change_definitions_elsewhere(database, team.id)
    c = await make_contact(client, team, company, customFields={"budget": "lots"})
    assert c["custom_fields"] == {"budget": "lots"}
    # ... and through the transactional (Idempotency-Key) path too.
    await _change_definitions_elsewhere(database, team.id, {"key": "budget", "name": "Budget",
                                                            "type": "number"})
    r = await client.post("/api/crm/contacts", headers={**team.headers, "Idempotency-Key": "k1"},
                          json={"teamId": team.id, "companyId": company, "firstName": "A",
                                "lastName": "B", "customFields": {"budget": "7"}})
    assert r.status_code == 201 and r.json()["contact"]["custom_fields"] == {"budget": 7}, r.text


async def test_company_custom_field_definitions_apply_to_companies_only(
    client: httpx.AsyncClient, team: TeamCtx
) -> None:
    await _define(client, team, key="employees", name="Employees", type="number",
                  entityType="company")
    r = await client.post("/api/crm/companies", headers=team.headers, json={
        "teamId": team.id, "name": "Hooli", "customFields": {"employees": "1,000"}})
    assert r.status_code == 201, r.text
    company = r.json()["company"]
    assert company["custom_fields"] == {"employees": 1000}
    r = await client.post("/api/crm/companies", headers=team.headers, json={
        "teamId": team.id, "name": "Hooli 2", "customFields": {"employees": "many"}})
    assert r.status_code == 400 and "customFields" in r.json()["details"]
    r = await client.patch(f"/api/crm/companies/{company['id']}", headers=team.headers,
                           json={"customFields": {"employees": "many"}})
    assert r.status_code == 400
    # A contact's custom field of the same key is free-form: the definition is for companies.
    c = await make_contact(client, team, company["id"], customFields={"employees": "many"})
    assert c["custom_fields"] == {"employees": "many"}


# ---------------------------------------------------------------- team and API keys


async def test_team_and_api_keys(client: httpx.AsyncClient, database: DbHandle) -> None:
    team = await new_team(database, "Keys Inc")
    other = await new_team(database, "Other Keys")

    r = await client.get("/api/team", headers=team.headers)
    assert r.status_code == 200
    t = r.json()
    assert t["success"] is True
    assert {k: t["team"][k] for k in ("id", "slug", "account_slug", "name")} == {
        "id": team.id, "slug": team.slug, "account_slug": team.slug, "name": "Keys Inc"}
    assert TS.match(t["team"]["created_at"])

    r = await client.get("/api/api-keys", headers=team.headers)
    assert r.status_code == 200
    listed = r.json()
    assert set(listed) == {"success", "api_keys", "count", "limit", "offset"}
    assert listed["count"] == 1
    first = listed["api_keys"][0]
    assert re.match(rf"^key_{ID}$", first["id"]) and first["team_id"] == team.id
    assert first["prefix"] == team.key[:12] and "key" not in first
    assert team.key not in r.text

    r = await client.post("/api/api-keys", json={"name": "reporting", "scopes": ["read"]},
                          headers=team.headers)
    assert r.status_code == 201, r.text
    ro = r.json()["api_key"]
    assert re.match(r"^tk_live_[A-Za-z0-9]{20,}$", ro["key"])
    assert ro["name"] == "reporting" and ro["scopes"] == ["read"] and ro["revoked_at"] is None
    assert ro["prefix"] == ro["key"][:12]
    r = await client.post("/api/api-keys", json={"name": "worker"}, headers=team.headers)
    assert r.status_code == 201
    rw = r.json()["api_key"]
    ro_h = {"Authorization": f"Bearer {ro['key']}"}
    rw_h = {"Authorization": f"Bearer {rw['key']}"}

    r = await client.get("/api/api-keys", headers=team.headers)
    assert r.json()["count"] == 3
    assert ro["key"] not in r.text and rw["key"] not in r.text
    assert all("key" not in k for k in r.json()["api_keys"])
    r = await client.get("/api/api-keys", headers=other.headers)
    assert r.json()["count"] == 1  # only their own

    r = await client.post("/api/api-keys", json={"name": " ci\u0000 key "}, headers=team.headers)
    assert r.status_code == 201 and r.json()["api_key"]["name"] == "ci key"
    await client.delete(f"/api/api-keys/{r.json()['api_key']['id']}", headers=team.headers)
    for bad in ({"scopes": ["admin"]}, {"expiresAt": "2000-01-01T00:00:00Z"},
                {"scopes": "read"}):
        r = await client.post("/api/api-keys", json=bad, headers=team.headers)
        assert r.status_code == 400, (bad, r.text)

    # A read-only key reads, but every write is 403.
    r = await client.get("/api/crm/companies", params={"teamId": team.id}, headers=ro_h)
    assert r.status_code == 200
    r = await client.post("/api/crm/companies", json={"teamId": team.id, "name": "X"},
                          headers=ro_h)
    assert r.status_code == 403 and r.json()["success"] is False
    r = await client.post("/api/api-keys", json={"name": "escalate"}, headers=ro_h)
    assert r.status_code == 403
    r = await client.delete(f"/api/api-keys/{rw['id']}", headers=ro_h)
    assert r.status_code == 403
    company = await make_company(client, team)
    r = await client.post("/api/crm/contacts", headers=ro_h, json={
        "teamId": team.id, "companyId": company, "firstName": "A", "lastName": "B"})
    assert r.status_code == 403

    # The write key works until revoked, then gets 401 at once.
    r = await client.post("/api/crm/companies", json={"teamId": team.id, "name": "Y"},
                          headers=rw_h)
    assert r.status_code == 201
    r = await client.delete(f"/api/api-keys/{rw['id']}", headers=other.headers)
    assert r.status_code == 403
    for unknown in ("key_01jzzzzzzzzzzzzzzzzzzzzzzz", "team_01jzzzzzzzzzzzzzzzzzzzzzzz"):
        r = await client.delete(f"/api/api-keys/{unknown}", headers=team.headers)
        assert r.status_code == 404
    r = await client.delete(f"/api/api-keys/{rw['id']}", headers=team.headers)
    assert r.status_code == 200, r.text
    revoked = r.json()["api_key"]
    assert revoked["id"] == rw["id"] and TS.match(revoked["revoked_at"])
    assert "key" not in revoked
    for method, url in (("GET", "/api/team"), ("POST", "/api/crm/companies")):
        r = await client.request(method, url, headers=rw_h,
                                 json={"teamId": team.id, "name": "Z"} if method == "POST"
                                 else None)
        assert r.status_code == 401, (method, url)
        assert r.json() == {"success": False, "error": "Unauthorized"}
    r = await client.get("/api/team", headers=team.headers)
    assert r.status_code == 200
    r = await client.get("/api/api-keys", headers=team.headers)
    state = {k["id"]: k["revoked_at"] for k in r.json()["api_keys"]}
    assert state[rw["id"]] == revoked["revoked_at"] and state[ro["id"]] is None


async def test_nul_characters_are_dropped_or_rejected_never_500(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    # PostgreSQL stores no NUL in text or JSONB; the API must not turn one into a 500.
    c = await make_contact(client, team, company, firstName="A\u0000da", notes="x\u0000y",
                           customFields={"k": "v\u0000", "deep": [{"x\u0000": "y\u0000"}]})
    assert c["first_name"] == "Ada" and c["notes"] == "xy"
    assert c["custom_fields"] == {"k": "v", "deep": [{"x": "y"}]}
    r = await client.post("/api/crm/companies", headers=team.headers, json={
        "teamId": team.id, "name": "Nul\u0000Co", "customFields": {"k": "v\u0000"}})
    assert r.status_code == 201, r.text
    assert r.json()["company"]["name"] == "NulCo"
    assert r.json()["company"]["custom_fields"] == {"k": "v"}
    r = await client.post("/api/crm/contacts", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "firstName": "A", "lastName": "B",
        "email": "a\u0000b@example.com"})
    assert r.status_code == 400 and "email" in r.json()["details"]
    r = await client.post("/api/crm/contacts", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "firstName": "A", "lastName": "B",
        "customFields": {"bad\u0000key": 1}})
    assert r.status_code == 400 and "customFields" in r.json()["details"]

    for path, param in (("/api/crm/contacts", "search"), ("/api/crm/contacts", "tag"),
                        ("/api/crm/companies", "search"), ("/api/crm/companies", "industry")):
        for value in ("ab\u0000c", "\u0000"):
            r = await client.get(path, params={"teamId": team.id, param: value},
                                 headers=team.headers)
            assert r.status_code == 400, (path, param, r.text)
            assert r.json()["success"] is False and param in r.json()["details"]
