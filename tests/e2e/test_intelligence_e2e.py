"""Post-call intelligence end to end, in-process: a campaign of 34 contacts whose scripted
callees reveal known facts (email, interest level, preferred callback day, budget, team size,
readiness to buy). After the campaign and the analysis loop, every contact holds exactly the
facts its callee gave, opted-out contacts are on the DNC list, and lead statuses moved as SPEC
5 says — once with the deterministic policy (no LLM) and once through a local
OpenAI-compatible server (the real ``openai`` client talking to ``tests.conversation.fake_llm``).

The expected facts are written out here from the persona rules documented in
``conversation/personas.py`` (not computed by calling that module).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign
from callfleet.compliance.models import DncEntry
from callfleet.conversation.analysis.worker import AnalysisWorker
from callfleet.conversation.models import CallJob
from callfleet.conversation.worker import ConversationWorker
from callfleet.webhooks.outbox import OutboxEvent
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday, us_phone
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact
from tests.conversation.fake_llm import FakeLLM, interviewer

PERSONAS = ["interested", "busy_now", "callback", "gives_email", "asks_price", "refuses",
            "opt_out", "gives_info"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
FIELDS = [
    {"key": "email", "type": "email", "target": "email",
     "description": "What's the best email to send you the details?"},
    {"key": "interest_level", "type": "select", "options": ["high", "medium", "low", "none"],
     "description": "How interested are you: high, medium, low or none?"},
    {"key": "callback_day", "type": "select", "options": DAYS,
     "description": "Which day is best for a callback?"},
    {"key": "budget", "type": "number", "description": "What's your monthly budget?"},
    {"key": "team_size", "type": "number", "description": "How many people are on your team?"},
    {"key": "lead_status", "type": "select", "options": ["qualified", "unqualified"],
     "target": "lead_status", "description": "Are you ready to buy this quarter?"},
]


def expected(persona: str, first: str, phone: str) -> dict[str, Any]:
    """What each callee says about themselves (the persona rules, written out)."""
    budget = 1000 + 500 * (int(phone[-1]) % 5)
    return {
        "interested": {"interest_level": "high", "lead_status": "qualified"},
        "busy_now": {"interest_level": "medium", "callback_day": "friday"},
        "callback": {"interest_level": "medium", "callback_day": "thursday"},
        "gives_email": {"email": f"{first.lower()}.{phone[-4:]}@example.com",
                        "interest_level": "medium"},
        "asks_price": {"interest_level": "medium"},
        "refuses": {},
        "opt_out": {},
        "gives_info": {"interest_level": "high", "budget": budget, "team_size": 50,
                       "lead_status": "qualified"},
    }[persona]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLM]:
    fake = FakeLLM().start()
    yield fake
    fake.stop()


async def _setup(app: Any, client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                 base: int) -> tuple[str, list[dict[str, Any]]]:
    h = t.headers
    for key, ftype, options in (("interest_level", "select", ["high", "medium", "low", "none"]),
                                ("callback_day", "select", DAYS), ("budget", "number", None),
                                ("team_size", "number", None)):
        body: dict[str, Any] = {"key": key, "name": key, "type": ftype,
                                "entityType": "contact"}
        if options:
            body["options"] = options
        r = await client.post("/api/crm/custom-fields", json={"teamId": t.id, **body},
                              headers=h)
        assert r.status_code == 201, r.text
    company = await make_company(client, t, "Initech")
    assistant, numbers = await assistant_with_numbers(database, t)
    r = await client.patch(f"/api/assistants/{assistant}", headers=h, json={
        "systemPrompt": "You are Ava from {{company.name}}, calling {{contact.first_name}}.",
        "firstMessage": "Hi {{contact.first_name}}, this is Ava from {{company.name}}.",
        "endCall": {"enabled": True, "triggerPhrases": [], "closingPhrase": "Thanks, bye!"},
        "infoExtraction": {"enabled": True, "fields": FIELDS},
        "successCriteria": "The contact told us their budget",
    })
    assert r.status_code == 200, r.text
    people: list[dict[str, Any]] = []
    carrier = app.state.carrier
    for i in range(34):
        phone = us_phone(base + i)
        first = f"Pat{chr(97 + i % 26)}{i}"
        persona = PERSONAS[i % len(PERSONAS)] if i < 32 else None
        await carrier.set_profile(phone, ["answer"] if persona else ["no_answer"],
                                  persona=persona, ring_seconds=6)
        c = await make_contact(client, t, company, firstName=first, lastName="Quinn",
                               phone=phone)
        people.append({"id": c["id"], "first": first, "phone": phone, "persona": persona})
    r = await client.post("/api/crm/campaigns", headers=h, json={
        "teamId": t.id, "assistantId": assistant, "companyId": company,
        "fromNumberIds": numbers, "name": "Intelligence E2E", "callWindowStart": "00:00",
        "callWindowEnd": "23:59", "callWindowTimezone": "America/New_York",
        "maxConcurrentCalls": 50, "maxAttemptsPerContact": 1})
    assert r.status_code == 201, r.text
    cid = r.json()["campaign"]["id"]
    r = await client.post(f"/api/crm/campaigns/{cid}/contacts",
                          json={"contactIds": [p["id"] for p in people]}, headers=h)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=h)
    assert r.status_code == 200, r.text
    return cid, people


async def _run(app: Any, database: DbHandle, cid: str) -> None:
    settings = app.state.settings
    conv = ConversationWorker(database.db, app.state.clock, app.state.carrier, settings,
                              "e2e-conversations")
    analysis = AnalysisWorker(database.db, app.state.clock, settings, "e2e-analysis")
    try:
        for _ in range(400):
            await app.state.dialer.tick()
            await conv.tick()
            await analysis.tick()
            async with database.db.session(write=False) as s:
                status = await s.scalar(select(Campaign.status).where(Campaign.id == cid))
                open_jobs = await s.scalar(
                    select(func.count()).select_from(CallJob).join(Call, Call.id == CallJob.call_id)
                    .where(Call.campaign_id == cid, CallJob.status.in_(("pending", "running"))))
            if status == "completed" and not open_jobs:
                return
            app.state.clock.advance(seconds=5)
        raise AssertionError("the campaign and its analyses did not finish")
    finally:
        await conv.http.aclose()


async def _check(client: httpx.AsyncClient, database: DbHandle, t: TeamCtx, cid: str,
                 people: list[dict[str, Any]], method: str) -> None:
    h = t.headers
    async with database.db.session(write=False) as s:
        calls = {c.contact_id: c for c in await s.scalars(
            select(Call).where(Call.campaign_id == cid))}
        dnc = set(await s.scalars(select(DncEntry.phone_number).where(DncEntry.team_id == t.id)))
        analyzed = Counter(await s.scalars(select(OutboxEvent.subject_id).where(
            OutboxEvent.team_id == t.id, OutboxEvent.type == "call.analyzed")))
        jobs = list(await s.scalars(select(CallJob).join(Call, Call.id == CallJob.call_id)
                                    .where(Call.campaign_id == cid, CallJob.kind == "analysis")))
    assert len(calls) == 34
    answered = [p for p in people if p["persona"]]
    assert all(j.status == "done" for j in jobs) and len(jobs) == len(answered) == 32
    # exactly one call.analyzed per analysed call
    assert sorted(analyzed.values()) == [1] * 32
    for p in people:
        r = await client.get(f"/api/crm/contacts/{p['id']}", headers=h)
        contact = r.json()["contact"]
        call = calls[p["id"]]
        if p["persona"] is None:
            assert call.outcome == "no_answer"
            assert contact["lead_status"] == "new" and contact["custom_fields"] == {}
            continue
        want = expected(p["persona"], p["first"], p["phone"])
        custom_want = {k: v for k, v in want.items() if k not in ("email", "lead_status")}
        assert contact["custom_fields"] == custom_want, (p["persona"], contact)
        assert contact["email"] == want.get("email"), p["persona"]
        if p["persona"] == "opt_out":
            assert call.outcome == "opted_out"
            assert contact["do_not_call"] is True
            assert contact["lead_status"] == "do_not_contact"
            assert p["phone"] in dnc
        else:
            assert call.outcome == "answered", (p["persona"], call.ended_reason)
            assert contact["lead_status"] == want.get("lead_status", "contacted")
            assert p["phone"] not in dnc
        r = await client.get(f"/api/calls/{call.id}", headers=h)
        detail = r.json()["call"]
        a = detail["analysis"]
        assert a["method"] == method and a["summary"]
        assert {k: v["value"] for k, v in a["extracted_data"].items()} == want
        for key, item in a["extracted_data"].items():
            assert item["target"] == ("email" if key == "email" else
                                      "lead_status" if key == "lead_status" else
                                      "custom_fields")
        if "lead_status" in want:
            assert a["extracted_data"]["lead_status"]["previous"] == "contacted"
        if "budget" in want:
            assert a["success_evaluation"] is True
        assert detail["messages"][0]["text"] == f"Hi {p['first']}, this is Ava from Initech."
        assert "call.analyzed" in [e["type"] for e in detail["events"]]


async def test_deterministic_campaign_writes_the_callees_facts(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    cid, people = await _setup(app, client, database, team, 8000)
    await _run(app, database, cid)
    await _check(client, database, team, cid, people, "deterministic")


async def test_llm_campaign_writes_the_callees_facts(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        llm_server: FakeLLM) -> None:
    fresh_monday(app)
    llm_server.reset()
    llm_server.policy = interviewer
    r = await client.patch("/api/team", headers=team.headers, json={"settings": {
        "llmBaseUrl": llm_server.url, "llmApiKey": "sk-team-secret", "llmModel": "fake-model"}})
    assert r.status_code == 200, r.text
    assert "sk-team-secret" not in r.text and r.json()["team"]["settings"]["llm_api_key_set"]
    cid, people = await _setup(app, client, database, team, 8100)
    await _run(app, database, cid)
    await _check(client, database, team, cid, people, "llm")
    # The conversations really went through the model: its questions, its end_call.
    chats = [b for b in llm_server.requests if not b.get("response_format")]
    analyses = [b for b in llm_server.requests if b.get("response_format")]
    assert len(analyses) == 32 and len(chats) > 32 * 3
    assert all(b["model"] == "fake-model" for b in llm_server.requests)
    async with database.db.session(write=False) as s:
        calls = list(await s.scalars(select(Call).where(Call.campaign_id == cid,
                                                        Call.outcome == "answered")))
    assert calls and all((c.call_metadata or {}).get("conversation") == "llm" for c in calls)
    ended = Counter(c.ended_reason for c in calls)
    assert ended["assistant_ended_call"] > 0  # the model's end_call tool
