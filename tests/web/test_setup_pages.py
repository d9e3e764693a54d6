"""Assistants, phone numbers and calls through the web pages: a new assistant from a
template, its editor, buying and assigning a number, a test call, the call page and undoing
what an analysis wrote into a contact."""

from __future__ import annotations

import re
from typing import Any

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.crm import service as crm
from callfleet.db.base import utcnow
from callfleet.teams.principal import Principal
from tests.campaigns.helpers import fresh_monday
from tests.conftest import DbHandle, TeamCtx
from tests.web.helpers import WebClient, make_user


async def test_assistant_number_and_test_call(app: Any, database: DbHandle,
                                              team: TeamCtx) -> None:
    fresh_monday(app)
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "member"))
        assert "No assistants yet" in (await c.get("/assistants")).text
        bad = await c.post("/assistants/new", {"name": "", "templateId": "outbound-setter"})
        assert bad.status_code == 400 and 'id="e-name"' in bad.text
        r = await c.post("/assistants/new", {"name": "Ava", "templateId": "outbound-setter"})
        assert r.status_code == 303
        aid = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
        editor = (await c.get(r.headers["location"])).text
        assert "{{contact.first_name}}" in editor  # the variables are explained
        first = re.search(r'<textarea id="f-firstMessage"[^>]*>([^<]*)</textarea>', editor)
        assert first and first[1].strip()  # the template filled it in

        form = {"name": "Ava 2", "type": "outbound", "outboundEnabled": "on",
                "systemPrompt": "You book demos for {{company.name}}.",
                "firstMessage": "Hi {{contact.first_name}}, this is Ava.", "temperature": "0.5",
                "maxTokens": "300", "voicemailAction": "hangup",
                "infoExtraction.enabled": "on",
                "infoExtraction.fields.0.key": "budget",
                "infoExtraction.fields.0.type": "number",
                "infoExtraction.fields.0.target": "custom_fields",
                "endCall.enabled": "on", "endCall.triggerPhrases": "bye\nnot interested",
                "successCriteria": "A demo is booked."}
        bad = await c.post(f"/assistants/{aid}", {**form, "temperature": "7"})
        assert bad.status_code == 400 and 'id="e-temperature"' in bad.text
        r = await c.post(f"/assistants/{aid}", form)
        assert r.status_code == 303, r.text
        editor = (await c.get(f"/assistants/{aid}")).text
        assert 'value="budget"' in editor and "not interested" in editor
        assert "Assign an active phone number" in editor

        # Buy a number from the simulated carrier and give it to the assistant.
        found = await c.get("/phone-numbers?countryCode=US&areaCode=&numberType=local")
        offer = re.search(r'name="phoneNumber" value="(\+1\d{10})"', found.text)
        assert offer, found.text
        bad = await c.get("/phone-numbers?countryCode=USA&numberType=local")
        assert bad.status_code == 400 and 'id="e-countryCode"' in bad.text
        r = await c.post("/phone-numbers/buy", {"phoneNumber": offer[1]})
        assert r.status_code == 303
        listed = (await c.get("/phone-numbers")).text
        pn = re.search(r'action="/phone-numbers/(pn_\w+)/assign"', listed)
        assert pn and offer[1] in listed
        r = await c.post(f"/phone-numbers/{pn[1]}/assign", {"assistantId": aid})
        assert r.status_code == 303
        assert f'<option value="{aid}" selected>' in (await c.get("/phone-numbers")).text

        # A test call from the editor lands on the call's page.
        bad = await c.post(f"/assistants/{aid}/test-call", {"toNumber": "12"})
        assert bad.status_code == 400 and 'id="e-toNumber"' in bad.text
        r = await c.post(f"/assistants/{aid}/test-call", {"toNumber": "+12125550199"})
        assert r.status_code == 303 and r.headers["location"].startswith("/calls/call_")
        call_page = await c.get(r.headers["location"])
        assert "Test call placed." in call_page.text and "+12125550199" in call_page.text
        calls = (await c.get("/calls")).text
        assert "+12125550199" in calls
        # Releasing the number: allowed, it is in no running campaign.
        r = await c.post(f"/phone-numbers/{pn[1]}/release")
        assert r.status_code == 303
        assert "No phone numbers yet" in (await c.get("/phone-numbers")).text


async def test_call_page_and_undo_from_the_contact(app: Any, database: DbHandle,
                                                  team: TeamCtx) -> None:
    p = Principal(team.id, team.slug, "test")
    async with database.db.session() as s:
        company = await crm.create_company(s, p, {"name": "Undo Co"}, "US")
        await s.commit()
    contact = await crm.create_contact(database.db, p, {
        "company_id": company["id"], "first_name": "Una", "last_name": "Doe",
        "phone": "+12125550142", "custom_fields": {"budget": 5000}}, "US")
    now = utcnow()
    async with database.db.session() as s:
        call = Call(
            id=ids.new_id("call"), team_id=team.id, direction="outbound",
            contact_id=contact["id"], from_number="+16465550100", to_number="+12125550142",
            status="ended", outcome="answered", ended_reason="assistant_ended_call",
            started_at=now, answered_at=now, ended_at=now, duration_seconds=42.0,
            carrier="sim", messages=[
                {"role": "assistant", "text": "Hi Una, this is Ava.", "time": 0.0},
                {"role": "user", "text": "Our budget is 12000.", "time": 2.5,
                 "latency_ms": 640}],
            analysis={"summary": "Budget confirmed.", "success_evaluation": True,
                      "extracted_data": {"budget": {"value": 12000, "previous": 5000,
                                                    "target": "custom_fields",
                                                    "changed": True, "written": 12000}}},
            created_at=now, updated_at=now)
        s.add(call)
        await crm.update_contact(s, p, contact["id"], {"custom_fields": {"budget": 12000}},
                                 "US")
        await s.commit()
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "member"))
        page = (await c.get(f"/calls/{call.id}")).text
        assert "Our budget is 12000." in page and "Budget confirmed." in page
        assert "responded in 640 ms" in page
        assert page.index("Hi Una") < page.index("Our budget")  # a conversation, in order
        contact_page = (await c.get(f"/contacts/{contact['id']}")).text
        assert "Learned from calls" in contact_page and "12000" in contact_page
        r = await c.post(f"/calls/{call.id}/undo?back=/contacts/{contact['id']}")
        assert r.status_code == 303
        assert r.headers["location"] == f"/contacts/{contact['id']}?reverted=1"
        after = (await c.get(r.headers["location"])).text
        assert "The values that call wrote were undone." in after
        assert "<dd>5000</dd>" in after
        again = await c.post(f"/calls/{call.id}/undo")
        assert again.status_code == 409 and "already reverted" in again.text
