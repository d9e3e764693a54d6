"""AI-voice duties: the telemarketing assistant check and the abandonment rate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.compliance.duties import abandonment, assistant_problems
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday
from tests.compliance.test_dialing import COMPLIANT_GREETING, campaign, phone
from tests.conftest import DbHandle, TeamCtx, make_company


def test_assistant_problems() -> None:
    ok = {"business_name": "Acme Solar", "callback_number": "+12125550100", "recording": False}
    assert assistant_problems(COMPLIANT_GREETING, **ok) == []
    assert len(assistant_problems("Hi there!", **ok)) == 2
    assert "business" in assistant_problems("Hi, say stop to opt out.", **ok)[0]
    assert "opt-out" in assistant_problems("Hi, Acme Solar here.", **ok)[0]
    assert "callback" in assistant_problems(
        COMPLIANT_GREETING, business_name="Acme Solar", callback_number=None,
        recording=False)[0]
    assert "recorded" in assistant_problems(COMPLIANT_GREETING, **{**ok, "recording": True})[0]
    assert assistant_problems(COMPLIANT_GREETING + " This call is recorded.",
                              **{**ok, "recording": True}) == []
    # The business's words in order, not a substring of another word.
    assert assistant_problems("Acmes Solarium: press 9 to opt out", **ok)


def test_abandonment_counts_greetings_later_than_two_seconds() -> None:
    a = abandonment([
        [{"role": "assistant", "time": 0.0}],
        [{"role": "user", "time": 0.5}, {"role": "assistant", "time": 2.5}],
        [{"role": "user", "time": 0.5}],
        None,
        [{"role": "assistant", "time": 2.0}],
    ])
    assert (a.answered, a.abandoned, a.rate) == (5, 3, 0.6)
    assert a.as_dict()["over_limit"] and abandonment([]).rate == 0.0


async def test_a_telemarketing_campaign_needs_a_compliant_assistant(
        client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    company = await make_company(client, team)
    assistant, numbers = await assistant_with_numbers(database, team)
    body = {"teamId": team.id, "assistantId": assistant, "companyId": company,
            "fromNumberIds": numbers, "name": "Sales", "purpose": "telemarketing"}
    r = await client.post("/api/crm/campaigns", json=body, headers=team.headers)
    assert r.status_code == 400 and "assistantId" in r.text and "opt-out" in r.text
    async with database.db.session() as s:
        await s.execute(update(Assistant).where(Assistant.id == assistant)
                        .values(first_message=COMPLIANT_GREETING))
        await s.commit()
    r = await client.post("/api/crm/campaigns", json=body, headers=team.headers)
    assert r.status_code == 400 and "callback number" in r.text
    r = await client.patch("/api/compliance/settings", json={
        "businessName": "Acme Solar", "callbackNumber": "(212) 555-0100"}, headers=team.headers)
    assert r.json()["settings"]["callback_number"] == "+12125550100"
    r = await client.post("/api/crm/campaigns", json=body, headers=team.headers)
    assert r.status_code == 201, r.text
    # Informational campaigns are not held to the telemarketing duties.
    other, numbers2 = await assistant_with_numbers(database, team)
    r = await client.post("/api/crm/campaigns", json={
        **body, "assistantId": other, "fromNumberIds": numbers2, "purpose": "informational"},
        headers=team.headers)
    assert r.status_code == 201


async def test_dashboard_shows_the_abandonment_rate(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app, hour_utc=16)
    number = phone(212)
    await app.state.carrier.set_profile(number, ["answer"], persona="interested",
                                        ring_seconds=1)
    cid, _ = await campaign(client, database, team, [{"phone": number}])
    for _ in range(30):
        await app.state.dialer.tick()
        app.state.clock.advance(seconds=10)
    r = await client.get(f"/api/crm/campaigns/{cid}/dashboard", headers=team.headers)
    a = r.json()["dashboard"]["abandonment"]
    assert a["answered"] == 1 and a["abandoned"] == 0 and a["max_rate"] == 0.03
    async with database.db.session() as s:
        await s.execute(update(Call).where(Call.campaign_id == cid).values(
            **Call.transcript_columns([{"role": "user", "text": "Hello?", "time": 0.4},
                                       {"role": "assistant", "text": "Hi", "time": 3.1}]),
            answered_at=app.state.clock.now() - timedelta(days=1)))
        await s.commit()
    r = await client.get(f"/api/crm/campaigns/{cid}/dashboard", headers=team.headers)
    a = r.json()["dashboard"]["abandonment"]
    assert (a["abandoned"], a["rate"], a["over_limit"]) == (1, 1.0, True)
    # The dashboard counts the greeting stored with the messages, whichever way they are
    # written: the same answer as judging every transcript whole.
    for i, messages in enumerate(TRANSCRIPTS * 2):
        async with database.db.session() as s:
            if i < len(TRANSCRIPTS):  # as the conversation and voice paths end a call
                call = await s.scalar(select(Call).where(Call.campaign_id == cid))
                assert call is not None
                call.messages = messages
            else:  # as their in-progress writes do (one statement)
                await s.execute(update(Call).where(Call.campaign_id == cid)
                                .values(**Call.transcript_columns(messages)))
            await s.commit()
        r = await client.get(f"/api/crm/campaigns/{cid}/dashboard", headers=team.headers)
        a = r.json()["dashboard"]["abandonment"]
        assert (a["answered"], a["abandoned"]) == (1, abandonment([messages]).abandoned), \
            messages


TRANSCRIPTS: list[Any] = [
    [], [{"role": "assistant", "text": "Hi", "time": 0}],
    [{"role": "assistant", "time": 2.0}], [{"role": "assistant", "time": 2.01}],
    [{"role": "assistant", "time": 3}], [{"role": "assistant"}],
    [{"role": "assistant", "time": None}], [{"role": "assistant", "time": True}],
    [{"role": "assistant", "time": "1.5"}], [{"role": "assistant", "time": "2.5"}],
    [{"role": "assistant", "time": "soon"}], [{"role": "assistant", "time": ""}],
    [{"role": "assistant", "time": [1]}], [{"role": "assistant", "time": {}}],
    [{"role": "user", "time": 0.5}], [{"role": "user", "time": 0.5},
                                     {"role": "assistant", "time": 1.0}],
    [{"role": "user", "time": 0.5}, {"role": "assistant", "time": 2.5}],
    [{"role": "user"}, {"role": "user"}, {"role": "assistant", "time": 1.2}],
    [{"role": "user"}, {"role": "user"}, {"role": "assistant", "time": 2.2}],
    [{"role": "system"}, {"role": "user"}], [{"role": 7}, {"role": "assistant", "time": 1}],
]
