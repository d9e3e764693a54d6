"""A signed-in user of team B gets 404 for every page of team A's objects, GET and POST.

Every web route with an id in its path is enumerated from the app, so a new page without a
row in IDS fails this test. Afterwards A's objects, re-read, are unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.campaigns import service as campaigns
from callfleet.compliance import service as compliance
from callfleet.crm import service as crm
from callfleet.crm.models import ContactImport
from callfleet.db.base import utcnow
from callfleet.teams import service as teams
from callfleet.teams import signin, users
from callfleet.teams.principal import Principal
from callfleet.webhooks import service as webhooks
from callfleet.webhooks.secrets import secret_box
from tests.campaigns.helpers import assistant_with_numbers
from tests.conftest import DbHandle, new_team
from tests.web.helpers import WebClient, make_user

# Path parameter -> which of team A's objects fills it.
IDS = {"contact_id": "contact", "company_id": "company", "cf_id": "cf", "user_id": "user",
       "link_id": "invite", "token": None, "campaign_id": "campaign",
       "assistant_id": "assistant", "number_id": "number", "call_id": "call",
       "action": "action", "key_id": "key", "webhook_id": "webhook",
       "delivery_id": "delivery", "entry_id": "dnc", "import_id": "import"}


def page_routes(app: Any) -> list[tuple[str, str]]:
    """Every (METHOD, path) outside /api, walking included routers."""
    found: list[tuple[str, str]] = []

    def add(path: str, methods: Any) -> None:
        if not path.startswith("/api"):
            found.extend((m, path) for m in sorted(methods or ()) if m not in ("HEAD", "OPTIONS"))

    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                add(ctx.path, getattr(ctx.original_route, "methods", None))
        elif isinstance(route, APIRoute):
            add(route.path, route.methods)
    return found


async def test_team_b_gets_404_for_team_a_pages(app: Any, database: DbHandle) -> None:
    a = await new_team(database, "TenantA")
    b = await new_team(database, "TenantB")
    pa = Principal(a.id, a.slug, "test")
    async with database.db.session() as s:
        company = await crm.create_company(s, pa, {"name": "A-Secret Co"}, "US")
        cf = await crm.create_custom_field(s, pa, {"key": "a_secret", "name": "A Secret",
                                                   "type": "text"})
        await s.commit()
    contact = await crm.create_contact(database.db, pa, {
        "company_id": company["id"], "first_name": "Alice", "last_name": "A-Secret",
        "phone": "+14155550100"}, "US")
    a_owner = await make_user(database, a, "owner")
    async with database.db.session() as s:
        a_user = await users.user_by_email(s, a_owner)
        assert a_user is not None
        await signin.create_link(s, a.id, purpose="invite", role="member")
        invite = (await signin.pending_invites(s, pa))[0]
        await s.commit()
    assistant, numbers = await assistant_with_numbers(database, a)
    async with database.db.session() as s:
        campaign = await campaigns.create_campaign(s, pa, {
            "assistant_id": assistant, "company_id": company["id"], "from_number_ids": numbers,
            "name": "A-Secret campaign"}, utcnow())
        call = Call(id=ids.new_id("call"), team_id=a.id, contact_id=contact["id"],
                    from_number="+16465550100", to_number="+14155550100", status="ended",
                    outcome="answered", carrier="sim", created_at=utcnow(),
                    updated_at=utcnow(), analysis={"summary": "A-Secret summary"})
        s.add(call)
        key, _ = await teams.create_key(s, a.id, name="A-Secret key")
        hook = await webhooks.create_endpoint(s, pa, {"url": "https://a.example.com/hook"},
                                              secret_box(app.state.settings))
        delivery = await webhooks.test_delivery(s, pa, hook["id"], utcnow())
        entry = await compliance.add_entry(s, pa, "+14155550199", "A-Secret reason")
        imp = ContactImport(id=ids.new_id("imp"), team_id=a.id, filename="A-Secret.csv",
                            path="/nonexistent/A-Secret.csv", status="done", on_duplicate="skip",
                            mapping={}, total_rows=0, processed=0, imported=0, updated=0,
                            skipped=0, failed=0, errors=[], created_at=utcnow(),
                            updated_at=utcnow())
        s.add(imp)
        await s.commit()
    objects = {"contact": contact["id"], "company": company["id"], "cf": cf["id"],
               "user": a_user.id, "invite": invite.id, "campaign": campaign["id"],
               "assistant": assistant, "number": numbers[0], "call": call.id,
               "action": "pause", "key": key.id, "webhook": hook["id"],
               "delivery": delivery["id"], "dnc": entry.id, "import": imp.id}

    b_admin = await make_user(database, b, "owner")
    checked = 0
    async with WebClient(app) as c:
        await c.sign_in(b_admin)
        for method, path in page_routes(app):
            params = re.findall(r"{(\w+)}", path)
            if not params:
                continue
            assert all(p in IDS for p in params), f"add {path} to IDS"
            if "token" in params:
                continue  # one-time links are covered in test_auth
            url = path
            for p in params:
                url = url.replace("{" + p + "}", objects[IDS[p]])  # type: ignore[index]
            if method == "GET":
                r = await c.get(url)
            else:
                r = await c.post(url, {"name": "B-was-here", "firstName": "B", "lastName": "B",
                                       "role": "member", "cascade": "on", "type": "text"})
            assert r.status_code == 404, (method, url, r.status_code, r.text[:500])
            assert "A-Secret" not in r.text and "A Secret" not in r.text, (method, url)
            checked += 1
    assert checked >= 40, checked

    async with database.db.session() as s:
        assert (await crm.get_contact(s, pa, contact["id"]))["last_name"] == "A-Secret"
        assert (await crm.get_company(s, pa, company["id"]))["name"] == "A-Secret Co"
        assert (await crm.get_custom_field(s, pa, cf["id"]))["name"] == "A Secret"
        members = await users.list_members(s, pa)
        assert [m.email for m in members] == [a_owner] and members[0].role == "owner"
        assert len(await signin.pending_invites(s, pa)) == 1
        assert (await campaigns.owned(s, pa, campaign["id"])).status == "draft"
        assert (await s.get(Call, call.id)) is not None
