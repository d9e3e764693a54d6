"""Contacts, companies and custom fields through the web pages, as a signed-in user would use
them: forms, errors beside fields, search, paging, empty states."""

from __future__ import annotations

import re
from typing import Any

from callfleet.crm import service as crm
from callfleet.teams.principal import Principal
from tests.conftest import DbHandle, TeamCtx
from tests.web.helpers import WebClient, make_user


def created_id(location: str) -> str:
    return location.split("?")[0].rsplit("/", 1)[1]


async def signed_in(app: Any, database: DbHandle, team: TeamCtx, role: str = "member",
                    ) -> WebClient:
    c = WebClient(app)
    await c.sign_in(await make_user(database, team, role))
    return c


async def test_empty_states_say_what_to_do_next(app: Any, database: DbHandle,
                                                team: TeamCtx) -> None:
    async with await signed_in(app, database, team) as c:
        contacts = await c.get("/contacts")
        companies = await c.get("/companies")
        new_contact = await c.get("/contacts/new")
    assert "No contacts yet" in contacts.text and 'href="/contacts/new"' in contacts.text
    assert "No companies yet" in companies.text and 'href="/companies/new"' in companies.text
    assert "Create a company first" in new_contact.text


async def test_company_and_contact_forms(app: Any, database: DbHandle, team: TeamCtx) -> None:
    async with await signed_in(app, database, team) as c:
        bad = await c.post("/companies/new", {"name": "", "industry": "Toys"})
        assert bad.status_code == 400
        assert re.search(r'id="f-name"[^>]*aria-invalid="true"', bad.text)
        assert 'id="e-name">Is required' in bad.text
        assert 'value="Toys"' in bad.text  # what was typed stays in the form
        bad = await c.post("/companies/new", {"name": "Initech", "country": "D1"})
        assert 'id="e-country"' in bad.text and "ISO-3166" in bad.text

        r = await c.post("/companies/new", {"name": "Initech", "industry": "Software",
                                            "country": "de"})
        assert r.status_code == 303
        company = created_id(r.headers["location"])
        page = await c.get(r.headers["location"])
        assert "Company created." in page.text and "Initech" in page.text

        # A contact with a bad phone, a bad time zone and no last name: every error at
        # once, each beside its field.
        bad = await c.post("/contacts/new", {"companyId": company, "firstName": "Sarah",
                                             "lastName": "", "phone": "12",
                                             "timezone": "Mars/Olympus", "leadStatus": "new"})
        assert bad.status_code == 400
        assert re.search(r'<p class="field-error" id="e-phone">Is not a valid phone number',
                         bad.text)
        assert 'id="e-timezone"' in bad.text and 'id="e-lastName">Is required' in bad.text
        assert 'href="#f-phone"' in bad.text  # the summary links to the field
        r = await c.post("/contacts/new", {
            "companyId": company, "firstName": "Sarah", "lastName": "Chen",
            "phone": "(415) 555-1234", "email": "Sarah@Example.com", "leadStatus": "qualified",
            "tags": "enterprise, warm", "doNotCall": "on", "timezone": "America/Los_Angeles"})
        assert r.status_code == 303, r.text
        contact = created_id(r.headers["location"])
        page = (await c.get(f"/contacts/{contact}")).text
        assert "+14155551234" in page and "Sarah@example.com" in page
        assert "Do not call" in page and ">qualified<" in page
        assert '<span class="tag">warm</span>' in page

        # Edit: clear the email, uncheck do-not-call.
        form = (await c.get(f"/contacts/{contact}/edit")).text
        assert 'value="+14155551234"' in form and "checked" in form
        r = await c.post(f"/contacts/{contact}/edit", {
            "companyId": company, "firstName": "Sarah", "lastName": "Chen-Lee",
            "phone": "+14155551234", "email": "", "leadStatus": "customer", "tags": "vip"})
        assert r.status_code == 303
    p = Principal(team.id, team.slug, "test")
    async with database.db.session() as s:
        saved = await crm.get_contact(s, p, contact)
    assert saved["last_name"] == "Chen-Lee" and saved["email"] is None
    assert saved["do_not_call"] is False and saved["tags"] == ["vip"]
    assert saved["lead_status"] == "customer"


async def test_custom_fields_in_settings_and_forms(app: Any, database: DbHandle,
                                                   team: TeamCtx) -> None:
    async with await signed_in(app, database, team, "admin") as c:
        bad = await c.post("/settings/custom-fields", {"entityType": "contact", "name": "Plan",
                                                       "key": "Plan Name", "type": "select"})
        assert bad.status_code == 400 and 'id="e-key"' in bad.text
        r = await c.post("/settings/custom-fields", {
            "entityType": "contact", "name": "Plan", "key": "plan", "type": "select",
            "options": "Basic\nPro"})
        assert r.status_code == 303
        r = await c.post("/settings/custom-fields", {
            "entityType": "contact", "name": "Seats", "key": "seats", "type": "number"})
        assert r.status_code == 303
        listed = (await c.get("/settings/custom-fields")).text
        assert "Plan" in listed and "Basic, Pro" in listed
        cf = re.search(r'href="/settings/custom-fields/(cf_\w+)">Seats', listed)
        assert cf

        r = await c.post("/companies/new", {"name": "Hooli"})
        company = created_id(r.headers["location"])
        form = (await c.get("/contacts/new")).text
        assert 'name="custom.plan"' in form and "<option value=\"Pro\"" in form
        bad = await c.post("/contacts/new", {"companyId": company, "firstName": "A",
                                             "lastName": "B", "leadStatus": "new",
                                             "custom.seats": "many", "custom.plan": "Pro"})
        assert bad.status_code == 400
        assert re.search(r'id="e-custom.seats">Must be a number', bad.text), bad.text
        r = await c.post("/contacts/new", {"companyId": company, "firstName": "A",
                                           "lastName": "B", "leadStatus": "new",
                                           "custom.seats": "12", "custom.plan": "pro"})
        assert r.status_code == 303
        page = (await c.get(r.headers["location"])).text
        assert "<dt>Seats</dt>" in page and "<dd>12</dd>" in page and "<dd>Pro</dd>" in page

        r = await c.post(f"/settings/custom-fields/{cf[1]}", {"name": "Licensed seats",
                                                               "type": "number"})
        assert r.status_code == 303
        assert "Licensed seats" in (await c.get("/settings/custom-fields")).text
        r = await c.post(f"/settings/custom-fields/{cf[1]}/delete")
        assert r.status_code == 303
        assert "Licensed seats" not in (await c.get("/settings/custom-fields")).text


async def test_search_filters_and_paging(app: Any, database: DbHandle, team: TeamCtx) -> None:
    p = Principal(team.id, team.slug, "test")
    async with database.db.session() as s:
        company = await crm.create_company(s, p, {"name": "Pager Co"}, "US")
        await s.commit()
    for i in range(55):
        await crm.create_contact(database.db, p, {
            "company_id": company["id"], "first_name": f"Person{i:02d}", "last_name": "Paged",
            "phone": f"+1415555{1000 + i:04d}", "lead_status": "qualified" if i < 5 else "new",
            "tags": ["gold"] if i % 10 == 0 else []}, "US")
    async with await signed_in(app, database, team) as c:
        first = (await c.get("/contacts")).text
        assert "Showing 1–50 of 55" in first and 'rel="next"' in first
        second = (await c.get("/contacts?offset=50")).text
        assert "Showing 51–55 of 55" in second and 'rel="prev"' in second
        assert "Person04" in second  # newest first: the oldest five on page two
        found = await c.get("/contacts?search=415%20555%201003",
                            headers={"HX-Request": "true", "HX-Target": "contact-results"})
        assert found.text.lstrip().startswith('<section id="contact-results"')
        assert "<nav" not in found.text.split("contact-results", 1)[0]  # only the fragment
        assert "Person03" in found.text and "Person04" not in found.text
        qualified = (await c.get("/contacts?leadStatus=qualified")).text
        assert "5 contacts" in qualified
        tagged = (await c.get("/contacts?tag=gold&hasPhone=true")).text
        assert "6 contacts" in tagged
        none = (await c.get("/contacts?search=zzzzzz")).text
        assert "No contacts match" in none
        bad = await c.get("/contacts?leadStatus=bogus")
        assert bad.status_code == 400 and "leadStatus" in bad.text
        nonsense = await c.get("/contacts?offset=abc")
        assert nonsense.status_code == 200
        company_page = (await c.get(f"/companies/{company['id']}")).text
        assert "Showing 1–50 of 55" in company_page
        companies = (await c.get("/companies?search=pager")).text
        assert "Pager Co" in companies and ">55<" in companies


async def test_delete_contact_and_company(app: Any, database: DbHandle, team: TeamCtx) -> None:
    async with await signed_in(app, database, team) as c:
        r = await c.post("/companies/new", {"name": "Doomed"})
        company = created_id(r.headers["location"])
        r = await c.post("/contacts/new", {"companyId": company, "firstName": "A",
                                           "lastName": "B", "leadStatus": "new"})
        contact = created_id(r.headers["location"])
        refused = await c.post(f"/companies/{company}/delete")
        assert refused.status_code == 409 and "has 1 contacts" in refused.text
        r = await c.post(f"/contacts/{contact}/delete")
        assert r.status_code == 303 and r.headers["location"] == "/contacts?deleted=1"
        assert (await c.get(f"/contacts/{contact}")).status_code == 404
        r = await c.post(f"/companies/{company}/delete", {"cascade": "on"})
        assert r.status_code == 303
        assert (await c.get(f"/companies/{company}")).status_code == 404
