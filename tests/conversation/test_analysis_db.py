"""Post-call analysis against the database: exactly once across lost leases and crashes, LLM
retries and fallback, write-back checks, undo, and the LLM settings API."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
from sqlalchemy import func, select

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.conversation import jobs
from callfleet.conversation.analysis.queue import mark_for_analysis
from callfleet.conversation.analysis.worker import AnalysisWorker
from callfleet.conversation.lines import lines_for
from callfleet.conversation.models import CallJob
from callfleet.conversation.script import run_scripted
from callfleet.db.base import utcnow
from callfleet.secrets import secret_box
from callfleet.teams.models import Team
from callfleet.webhooks.outbox import OutboxEvent
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact
from tests.conversation.fake_llm import FakeLLM

FIELDS = [
    {"key": "email", "type": "email", "target": "email",
     "description": "What's the best email to send you the details?"},
    {"key": "budget", "type": "number", "description": "What's your monthly budget?"},
    {"key": "team_size", "type": "number", "description": "How many people are on your team?"},
    {"key": "lead_status", "type": "select", "options": ["qualified", "unqualified"],
     "target": "lead_status", "description": "Are you ready to buy this quarter?"},
]
PHONE = "+12125550172"  # budget 1000 + 500 * (2 % 5) = 2000


async def _assistant(client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                     **extra: Any) -> str:
    assistant, _ = await assistant_with_numbers(database, t)
    r = await client.patch(f"/api/assistants/{assistant}", headers=t.headers, json={
        "infoExtraction": {"enabled": True, "fields": FIELDS},
        "successCriteria": "We learned the budget", **extra})
    assert r.status_code == 200, r.text
    return assistant


async def _ended_call(app: Any, database: DbHandle, t: TeamCtx, contact: dict[str, Any],
                      assistant: str, persona: str) -> str:
    now = app.state.clock.now()
    lines = lines_for(SimpleNamespace(
        first_message="Hi, this is Ava.", system_prompt="", voicemail_message=None,
        end_call={}, call_transfer={}, tools=[],
        info_extraction={"enabled": True, "fields": FIELDS}), {})
    r = run_scripted(lines=lines, persona=persona, contact=contact, number=PHONE)
    async with database.db.session() as s:
        call = Call(id=ids.new_id("call"), team_id=t.id, contact_id=contact["id"],
                    assistant_id=assistant, from_number="+16462000000", to_number=PHONE,
                    status="ended", outcome=r.outcome, ended_reason=r.ended_reason,
                    started_at=now, answered_at=now, ended_at=now, messages=r.messages,
                    analysis={}, call_metadata={}, created_at=utcnow(), updated_at=utcnow())
        s.add(call)
        await s.flush()
        mark_for_analysis(s, call, now)
        await s.commit()
    return call.id


async def _setup(app: Any, client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                 persona: str = "gives_info", **extra: Any) -> tuple[str, dict[str, Any]]:
    fresh_monday(app)
    company = await make_company(client, t)
    contact = await make_contact(client, t, company, firstName="Dana", phone=PHONE,
                                 email="old@example.com", customFields={"budget": 900})
    assistant = await _assistant(client, database, t, **extra)
    call_id = await _ended_call(app, database, t, contact, assistant, persona)
    return call_id, contact


def _worker(app: Any, name: str) -> AnalysisWorker:
    async def no_sleep(_: float) -> None:
        return None

    return AnalysisWorker(app.state.dialer.db, app.state.clock, app.state.settings, name,
                          sleep=no_sleep)


async def _count(database: DbHandle, type_: str, subject: str) -> int:
    async with database.db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.type == type_, OutboxEvent.subject_id == subject)) or 0)


async def _job(database: DbHandle, call_id: str) -> CallJob:
    async with database.db.session(write=False) as s:
        job = await s.get(CallJob, (call_id, "analysis"))
    assert job is not None
    return job


async def test_analysis_runs_once_and_writes_back(app: Any, client: httpx.AsyncClient,
                                                 database: DbHandle, team: TeamCtx) -> None:
    call_id, contact = await _setup(app, client, database, team)
    w = _worker(app, "w1")
    while await w.tick():  # other tests' leftovers may be due too
        pass
    r = await client.get(f"/api/crm/contacts/{contact['id']}", headers=team.headers)
    c = r.json()["contact"]
    # gives_info: budget and team size, qualified; no email given, so the old one stays
    assert c["custom_fields"] == {"budget": 2000, "team_size": 50}
    assert c["lead_status"] == "qualified" and c["email"] == "old@example.com"
    call = (await client.get(f"/api/calls/{call_id}", headers=team.headers)).json()["call"]
    a = call["analysis"]
    assert a["method"] == "deterministic" and "Dana" in a["summary"]
    assert a["success_evaluation"] is True and a["success_reason"] == "collected: budget"
    assert a["extracted_data"]["budget"] == {"value": 2000, "previous": 900,
                                             "target": "custom_fields", "changed": True,
                                             "confidence": a["extracted_data"]["budget"][
                                                 "confidence"]}
    assert a["extracted_data"]["lead_status"]["previous"] == "new"
    assert a["extracted_data"]["team_size"]["previous"] is None
    assert await _count(database, "call.analyzed", call_id) == 1
    assert await _count(database, "contact.updated", contact["id"]) == 1
    async with database.db.session(write=False) as s:
        analyzed = await s.scalar(select(OutboxEvent.data).where(
            OutboxEvent.type == "call.analyzed", OutboxEvent.subject_id == call_id))
    assert analyzed["analysis"]["success_evaluation"] is True  # Talkturo's boolean
    assert analyzed["analysis"]["success_reason"] == "collected: budget"
    job = await _job(database, call_id)
    assert job.status == "done" and job.attempts == 1
    # Done is done: later passes (and restarts) never analyse it again.
    app.state.clock.advance(hours=2)
    assert await _worker(app, "w2").tick() == 0
    assert await _count(database, "call.analyzed", call_id) == 1


async def test_a_worker_that_lost_its_lease_writes_nothing(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    call_id, _contact = await _setup(app, client, database, team)
    slow, fast = _worker(app, "slow"), _worker(app, "fast")
    claimed = await jobs.claim(database.db, "analysis", "slow", app.state.clock.now(),
                               timedelta(seconds=60), 1000)
    assert call_id in claimed
    taken_over: list[bool] = []

    async def stall(cid: str) -> None:
        # While "slow" computes, its lease expires and "fast" analyses the call.
        app.state.clock.advance(seconds=61)
        taken_over.append(await fast.handle(call_id) if await jobs.claim(
            database.db, "analysis", "fast", app.state.clock.now(), timedelta(seconds=60),
            1000) else False)

    slow.before_write = stall
    assert await slow.handle(call_id) is False
    assert taken_over == [True]
    assert await _count(database, "call.analyzed", call_id) == 1
    job = await _job(database, call_id)
    assert job.status == "done" and job.attempts == 2 and job.owner == "fast"


async def test_a_crash_before_commit_is_rerun_after_the_lease(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    call_id, contact = await _setup(app, client, database, team)
    # A worker claims the job and dies before writing anything.
    now = app.state.clock.now()
    await jobs.claim(database.db, "analysis", "dead", now, timedelta(seconds=60), 1000)
    w = _worker(app, "alive")
    await w.tick()
    assert (await _job(database, call_id)).status == "running"  # the lease still holds
    assert await _count(database, "call.analyzed", call_id) == 0
    app.state.clock.advance(seconds=61)
    while await w.tick():
        pass
    job = await _job(database, call_id)
    assert job.status == "done" and job.owner == "alive"
    assert await _count(database, "call.analyzed", call_id) == 1
    r = await client.get(f"/api/crm/contacts/{contact['id']}", headers=team.headers)
    assert r.json()["contact"]["custom_fields"]["budget"] == 2000


async def _team_llm(client: httpx.AsyncClient, t: TeamCtx, fake: FakeLLM) -> None:
    r = await client.patch("/api/team", headers=t.headers, json={"settings": {
        "llmBaseUrl": fake.url, "llmApiKey": "sk-secret", "llmModel": "fake"}})
    assert r.status_code == 200, r.text


async def test_llm_analysis_retries_then_falls_back(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        fake_llm: FakeLLM) -> None:
    await _team_llm(client, team, fake_llm)
    call_id, _contact = await _setup(app, client, database, team)
    fake_llm.policy = lambda body: {"status": 500}
    w = _worker(app, "w")
    await w.tick()
    job = await _job(database, call_id)
    assert job.status == "pending" and "failed after" in (job.last_error or "")
    for _ in range(3):
        app.state.clock.advance(minutes=10)
        await w.tick()
    job = await _job(database, call_id)
    assert job.status == "done" and job.attempts == 3
    call = (await client.get(f"/api/calls/{call_id}", headers=team.headers)).json()["call"]
    assert call["analysis"]["method"] == "deterministic_fallback"
    assert call["analysis"]["llm_error"]
    assert call["analysis"]["extracted_data"]["budget"]["value"] == 2000


async def test_llm_values_are_checked_before_writing(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        fake_llm: FakeLLM) -> None:
    await _team_llm(client, team, fake_llm)
    call_id, contact = await _setup(app, client, database, team)
    fake_llm.push({"json": {
        "summary": "Dana shared numbers.",
        "success_evaluation": {"success": True, "reason": "budget given"},
        "extracted_data": {"email": "not an email", "budget": 1500, "team_size": None,
                           "lead_status": "qualified"}}})
    while await _worker(app, "w").tick():
        pass
    sent = fake_llm.requests[0]
    schema = sent["response_format"]["json_schema"]["schema"]
    assert "extracted_data" in schema["properties"]
    assert "Transcript:" in sent["messages"][-1]["content"]
    call = (await client.get(f"/api/calls/{call_id}", headers=team.headers)).json()["call"]
    a = call["analysis"]
    assert a["method"] == "llm" and a["summary"] == "Dana shared numbers."
    assert a["success_evaluation"] is True and a["success_reason"] == "budget given"
    assert set(a["extracted_data"]) == {"budget", "lead_status"}  # the bad email is dropped
    c = (await client.get(f"/api/crm/contacts/{contact['id']}",
                          headers=team.headers)).json()["contact"]
    assert c["email"] == "old@example.com" and c["custom_fields"] == {"budget": 1500}
    assert c["lead_status"] == "qualified"


async def test_revert_restores_previous_values(app: Any, client: httpx.AsyncClient,
                                               database: DbHandle, team: TeamCtx,
                                               other_team: TeamCtx) -> None:
    call_id, contact = await _setup(app, client, database, team)
    while await _worker(app, "w").tick():
        pass
    h = team.headers
    # The user edits one value after the call; the revert leaves that one alone.
    r = await client.patch(f"/api/crm/contacts/{contact['id']}", headers=h,
                           json={"customFields": {"team_size": 55}})
    assert r.status_code == 200
    r = await client.post(f"/api/calls/{call_id}/analysis/revert", headers=other_team.headers)
    assert r.status_code in (403, 404)
    r = await client.post(f"/api/calls/{call_id}/analysis/revert", headers=h)
    assert r.status_code == 200, r.text
    a = r.json()["call"]["analysis"]
    assert sorted(a["reverted"]) == ["budget", "lead_status"]
    assert a["revert_skipped"] == {"team_size": "changed since the call; left as is"}
    c = (await client.get(f"/api/crm/contacts/{contact['id']}", headers=h)).json()["contact"]
    assert c["custom_fields"] == {"budget": 900, "team_size": 55}
    assert c["lead_status"] == "new"
    r = await client.post(f"/api/calls/{call_id}/analysis/revert", headers=h)
    assert r.status_code == 409 and "already" in r.json()["error"]


async def test_llm_settings_are_write_only(app: Any, client: httpx.AsyncClient,
                                           database: DbHandle, team: TeamCtx) -> None:
    h = team.headers
    r = await client.patch("/api/team", headers=h, json={"settings": {"llmBaseUrl": "ftp://x"}})
    assert r.status_code == 400 and "llmBaseUrl" in r.json()["error"]
    r = await client.patch("/api/team", headers=h, json={"settings": {
        "llmBaseUrl": "http://127.0.0.1:1/v1", "llmApiKey": "sk-very-secret"}})
    assert r.status_code == 200
    s = r.json()["team"]["settings"]
    assert s["llm_base_url"] == "http://127.0.0.1:1/v1" and s["llm_api_key_set"] is True
    r = await client.get("/api/team", headers=h)
    assert "sk-very-secret" not in r.text
    async with database.db.session(write=False) as s:  # encrypted at rest
        stored = (await s.get(Team, team.id)).settings["llm_api_key"]
    assert "sk-very-secret" not in stored and secret_box().decrypt(stored) == "sk-very-secret"
    r = await client.patch("/api/team", headers=h, json={"settings": {
        "llmBaseUrl": None, "llmApiKey": None}})
    assert r.json()["team"]["settings"]["llm_api_key_set"] is False
    assistant, _ = await assistant_with_numbers(database, team)
    r = await client.patch(f"/api/assistants/{assistant}", headers=h, json={
        "llmBaseUrl": "https://llm.example.com/v1", "llmApiKey": "sk-asst-secret",
        "tools": [{"name": "lookup", "url": "https://hooks.example.com/lookup",
                   "headers": {"Authorization": "Bearer hook-secret"}}]})
    assert r.status_code == 200, r.text
    body = r.json()["assistant"]
    assert body["llm_base_url"] == "https://llm.example.com/v1" and body["llm_api_key_set"]
    assert body["tools"][0]["header_names"] == ["Authorization"]
    assert "secret" not in r.text
    async with database.db.session(write=False) as s:
        stored = (await s.get(Assistant, assistant)).llm_api_key
    assert "sk-asst-secret" not in stored and secret_box().decrypt(stored) == "sk-asst-secret"
    r = await client.patch(f"/api/assistants/{assistant}", headers=h, json={
        "tools": [{"name": "end_call", "url": "https://x.example.com"}]})
    assert r.status_code == 400 and "tools.0.name" in r.json()["error"]
    r = await client.patch(f"/api/assistants/{assistant}", headers=h, json={
        "tools": [{"name": "ok", "url": "not a url"}]})
    assert r.status_code == 400 and "tools.0.url" in r.json()["error"]


async def test_success_evaluation_is_a_boolean_or_null(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    """Talkturo's shape: ``success_evaluation`` is true, false or null, the reason beside it,
    also for analyses stored before (an object with success and reason)."""
    call_id, _ = await _setup(app, client, database, team, successCriteria="")
    while await _worker(app, "w").tick():
        pass
    a = (await client.get(f"/api/calls/{call_id}", headers=team.headers)).json()["call"][
        "analysis"]
    assert a["success_evaluation"] is None
    assert a["success_reason"] == "no success criteria are set"
    async with database.db.session() as s:
        call = await s.get(Call, call_id)
        assert call is not None
        call.analysis = {**call.analysis, "success_evaluation": {
            "success": False, "reason": "not collected: budget"}}
        call.analysis.pop("success_reason")
        await s.commit()
    a = (await client.get(f"/api/calls/{call_id}", headers=team.headers)).json()["call"][
        "analysis"]
    assert a["success_evaluation"] is False and a["success_reason"] == "not collected: budget"
