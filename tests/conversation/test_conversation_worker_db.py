"""LLM conversations run by the conversation worker, outside the carrier-event transaction:
queued on answer, run, written, hung up; resumed after a crash; ended cleanly after repeated
crashes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from callfleet.calls.models import Call, CallEvent
from callfleet.conversation import jobs
from callfleet.conversation.models import CallJob
from callfleet.conversation.worker import ConversationWorker
from tests.campaigns.helpers import drive, fresh_monday, setup_campaign, us_phone
from tests.conftest import DbHandle, TeamCtx
from tests.conversation.fake_llm import FakeLLM

# The fake LLM and tool receivers listen on 127.0.0.1.
pytestmark = pytest.mark.usefixtures("allow_loopback")


def _worker(app: Any, name: str) -> ConversationWorker:
    async def no_sleep(_: float) -> None:
        return None

    return ConversationWorker(app.state.dialer.db, app.state.clock, app.state.carrier,
                              app.state.settings, name, sleep=no_sleep)


async def _answered_call(app: Any, client: httpx.AsyncClient, database: DbHandle,
                         t: TeamCtx, fake: FakeLLM, n: int, **assistant: Any) -> tuple[str, str]:
    """A campaign of one contact whose call was answered and queued for the model."""
    fresh_monday(app)
    r = await client.patch("/api/team", headers=t.headers, json={"settings": {
        "llmBaseUrl": fake.url, "llmModel": "fake"}})
    assert r.status_code == 200
    phone = us_phone(n)
    await app.state.carrier.set_profile(phone, ["answer"], persona="gives_email",
                                        ring_seconds=6)
    cid, _contacts = await setup_campaign(client, database, t, [
        {"firstName": "Lee", "lastName": "Park", "phone": phone}], maxAttemptsPerContact=1)
    if assistant:
        r = await client.get(f"/api/crm/campaigns/{cid}", headers=t.headers)
        a_id = r.json()["campaign"]["assistant_id"]
        r = await client.patch(f"/api/assistants/{a_id}", headers=t.headers, json=assistant)
        assert r.status_code == 200, r.text
    r = await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=t.headers)
    assert r.status_code == 200

    async def queued() -> bool:
        async with database.db.session(write=False) as s:
            return await s.scalar(select(CallJob.call_id).join(Call, Call.id == CallJob.call_id)
                                  .where(Call.campaign_id == cid,
                                         CallJob.kind == "conversation")) is not None

    await drive(app, queued, step=timedelta(seconds=2))
    async with database.db.session(write=False) as s:
        call = await s.scalar(select(Call).where(Call.campaign_id == cid))
    assert call is not None
    return cid, call.id


async def _call(database: DbHandle, call_id: str) -> Call:
    async with database.db.session(write=False) as s:
        call = await s.get(Call, call_id)
    assert call is not None
    return call


async def test_conversation_runs_outside_the_event_transaction(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "What's the best email to send you the details?"},
                  {"tool": "end_call", "args": {}})
    _cid, call_id = await _answered_call(
        app, client, database, team, fake_llm, 9100,
        endCall={"enabled": True, "closingPhrase": "Bye, Lee!"},
        systemPrompt="Call {{contact.first_name}} about {{contact.custom.plan}}.")
    call = await _call(database, call_id)
    # Answered and waiting for the model: nothing said yet, the call is still live.
    assert call.status == "in_progress" and call.messages == []
    assert call.call_metadata["conversation"] == "llm"
    assert call.call_metadata["llm"] == {"base_url": fake_llm.url, "model": "fake",
                                         "source": "team"}
    assert await _worker(app, "conv").tick() >= 1
    call = await _call(database, call_id)
    assert [m["role"] for m in call.messages][:3] == ["assistant", "user", "assistant"]
    assert "lee.9100@example.com" in call.transcript
    assert call.messages[-1]["text"] == "Bye, Lee!"
    assert call.call_metadata["conversation_ended_reason"] == "assistant_ended_call"
    assert call.call_metadata["unknown_variables"] == ["contact.custom.plan"]
    system = fake_llm.requests[0]["messages"][0]["content"]
    assert system.startswith("Call Lee about .")
    # The carrier was asked to hang up; its "ended" event ends the call.
    for _ in range(40):
        app.state.clock.advance(seconds=5)
        await app.state.dialer.tick()
        if (await _call(database, call_id)).status == "ended":
            break
    call = await _call(database, call_id)
    assert call.status == "ended" and call.outcome == "answered"
    assert call.ended_reason == "assistant_ended_call"
    assert 0 < call.duration_seconds < 120


async def test_transfer_is_recorded_on_the_call(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        fake_llm: FakeLLM) -> None:
    fake_llm.push({"tool": "transfer_call", "args": {"department": "Billing"}})
    _, call_id = await _answered_call(
        app, client, database, team, fake_llm, 9110,
        callTransfer={"enabled": True, "departments": [
            {"name": "Billing", "mode": "cold", "phoneNumber": "+12125550100"}]})
    await _worker(app, "conv").tick()
    call = await _call(database, call_id)
    t = call.call_metadata["transfer"]
    assert (t["department"], t["mode"], t["result"]) == ("Billing", "cold", "completed")
    assert call.call_metadata["conversation_ended_reason"] == "assistant_forwarded_call"
    async with database.db.session(write=False) as s:
        kinds = list(await s.scalars(select(CallEvent.type).where(CallEvent.call_id == call_id)))
    assert "call.transferred" in kinds


async def test_a_crashed_conversation_resumes_from_its_messages(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        fake_llm: FakeLLM) -> None:
    _, call_id = await _answered_call(app, client, database, team, fake_llm, 9120,
                                      endCall={"enabled": True})
    # A worker claimed it, said two turns, and died.
    now = app.state.clock.now()
    claimed = await jobs.claim(database.db, "conversation", "dead", now,
                               timedelta(seconds=60), 1000)
    assert call_id in claimed
    partial = [{"role": "assistant", "text": "Hi Lee, this is Ava.", "time": 0.0},
               {"role": "user", "text": "Hello, yes.", "time": 3.0}]
    async with database.db.session() as s:
        await s.execute(update(Call).where(Call.id == call_id).values(messages=partial))
        await s.commit()
    w = _worker(app, "alive")
    fake_llm.push({"text": "What's the best email to send you the details?"},
                  {"tool": "end_call", "args": {}})
    await w.tick()
    assert (await _call(database, call_id)).messages == partial  # lease still held
    app.state.clock.advance(seconds=61)
    await w.tick()
    call = await _call(database, call_id)
    texts = [m["text"] for m in call.messages]
    assert texts[:3] == ["Hi Lee, this is Ava.", "Hello, yes.",
                         "What's the best email to send you the details?"]
    assert texts.count("Hi Lee, this is Ava.") == 1  # not started over
    assert texts[3] == "Sure, my email is lee.9120@example.com."
    # The model saw the stored turns.
    assert [m["content"] for m in fake_llm.requests[0]["messages"][1:]] == [
        "Hi Lee, this is Ava.", "Hello, yes."]
    async with database.db.session(write=False) as s:
        job = await s.get(CallJob, (call_id, "conversation"))
    assert job is not None and job.status == "done" and job.attempts == 2


async def test_repeated_crashes_end_the_call_cleanly(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        fake_llm: FakeLLM) -> None:
    _, call_id = await _answered_call(app, client, database, team, fake_llm, 9130)
    async with database.db.session() as s:
        await s.execute(update(CallJob).where(CallJob.call_id == call_id)
                        .values(attempts=app.state.settings.conversation_max_attempts))
        await s.commit()
    await _worker(app, "last").tick()
    call = await _call(database, call_id)
    assert call.call_metadata["conversation_outcome"] == "failed"
    assert call.call_metadata["conversation_ended_reason"] == "assistant_error"
    assert "technical difficulties" in call.messages[-1]["text"]
    assert fake_llm.requests == []
    for _ in range(10):
        app.state.clock.advance(seconds=5)
        await app.state.dialer.tick()
    call = await _call(database, call_id)
    assert (call.status, call.outcome, call.ended_reason) == (
        "ended", "failed", "assistant_error")
