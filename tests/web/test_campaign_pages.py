"""Campaign pages: create with the whole configuration, errors beside fields, add contacts,
dry run and run, pause/resume/cancel, and the live dashboard's event stream."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from callfleet.crm import service as crm
from callfleet.teams.principal import Principal
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday
from tests.conftest import DbHandle, TeamCtx
from tests.e2e.test_server import free_port
from tests.web.helpers import WebClient, make_user


async def _setup(database: DbHandle, team: TeamCtx, contacts: int = 3) -> dict[str, Any]:
    p = Principal(team.id, team.slug, "test")
    async with database.db.session() as s:
        company = await crm.create_company(s, p, {"name": "Dialed Co"}, "US")
        await s.commit()
    for i in range(contacts):
        await crm.create_contact(database.db, p, {
            "company_id": company["id"], "first_name": f"C{i}", "last_name": "Dialed",
            "phone": f"+1212555{1000 + i:04d}", "timezone": "America/New_York"}, "US")
    assistant, numbers = await assistant_with_numbers(database, team)
    return {"company": company["id"], "assistant": assistant, "numbers": numbers}


def campaign_form(refs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Spring outreach", "assistantId": refs["assistant"],
        "companyId": refs["company"], "fromNumberIds": refs["numbers"],
        "callWindowStart": "00:00", "callWindowEnd": "23:59",
        "callWindowTimezone": "America/New_York",
        "callWindowDays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "maxConcurrentCalls": "2", "maxAttemptsPerContact": "2", "retryDelayMinutes": "30",
        "retryBackoff": "fixed", "audience": "manual", "useContactTimezone": "on",
        "retryOnError": "on", "maxAttemptsBusy": "1",
    }
    form.update(extra)
    return form


async def test_create_run_and_control_a_campaign(app: Any, database: DbHandle,
                                                 team: TeamCtx) -> None:
    fresh_monday(app)
    refs = await _setup(database, team)
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "member"))
        empty = await c.get("/campaigns")
        assert "No campaigns yet" in empty.text
        form = await c.get("/campaigns/new")
        assert "Dialed Co" in form.text and 'name="callWindowDays"' in form.text
        bad = await c.post("/campaigns/new", campaign_form(
            refs, name="", maxConcurrentCalls="0", callWindowTimezone="Nowhere/City"))
        assert bad.status_code == 400
        assert 'id="e-maxConcurrentCalls"' in bad.text
        assert 'value="Nowhere/City"' in bad.text  # what was typed stays
        bad = await c.post("/campaigns/new", campaign_form(refs, callWindowTimezone="Nowhere/X"))
        assert bad.status_code == 400 and 'id="e-callWindowTimezone"' in bad.text
        r = await c.post("/campaigns/new", campaign_form(refs))
        assert r.status_code == 303, r.text
        cid = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
        page = await c.get(r.headers["location"])
        assert "Campaign created" in page.text and 'sse-connect="/campaigns/' in page.text
        assert "No contacts in this campaign yet" in page.text

        r = await c.post(f"/campaigns/{cid}/contacts")
        assert r.status_code == 303 and r.headers["location"].endswith("?added=3")
        dry = await c.post(f"/campaigns/{cid}/run", {"dryRun": "on"})
        assert dry.status_code == 200 and "Dry run: would start 2 calls" in dry.text
        assert ">draft<" in dry.text
        ran = await c.post(f"/campaigns/{cid}/run")
        assert ran.status_code == 200 and "Started 2 calls" in ran.text
        assert ">running<" in ran.text
        listed = await c.get("/campaigns?status=running")
        assert "Spring outreach" in listed.text
        # Settings cannot change while running: the page says why.
        r = await c.post(f"/campaigns/{cid}/edit", campaign_form(refs, name="Renamed"))
        assert r.status_code == 409 and "Pause the campaign" in r.text
        assert (await c.post(f"/campaigns/{cid}/pause")).status_code == 303
        assert ">paused<" in (await c.get(f"/campaigns/{cid}")).text
        r = await c.post(f"/campaigns/{cid}/edit", campaign_form(refs, name="Renamed"))
        assert r.status_code == 303
        assert (await c.post(f"/campaigns/{cid}/resume")).status_code == 303
        assert (await c.post(f"/campaigns/{cid}/cancel")).status_code == 303
        page = await c.get(f"/campaigns/{cid}")
        assert "Renamed" in page.text and ">cancelled<" in page.text
        assert "Run now" not in page.text
        r = await c.post(f"/campaigns/{cid}/resume")
        assert r.status_code == 409
        assert (await c.post(f"/campaigns/{cid}/delete")).status_code == 303
        assert (await c.get(f"/campaigns/{cid}")).status_code == 404


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """The test's app behind a real uvicorn on a free port (httpx's ASGI transport buffers a
    whole response, so it cannot read an event stream as it arrives)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_live_dashboard_pushes_changes(app: Any, database: DbHandle,
                                            team: TeamCtx) -> None:
    """The event stream sends the dashboard at once, then again after a change."""
    fresh_monday(app)
    refs = await _setup(database, team, contacts=2)
    async with served(app) as url, WebClient(app) as c:
        c.http = httpx.AsyncClient(base_url=url)
        await c.sign_in(await make_user(database, team, "member"))
        r = await c.post("/campaigns/new", campaign_form(refs, name="Live one"))
        cid = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
        await c.post(f"/campaigns/{cid}/contacts")
        events: list[str] = []

        async def read() -> None:
            async with c.http.stream("GET", f"/campaigns/{cid}/live") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                buffer = ""
                async for chunk in stream.aiter_text():
                    buffer += chunk
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        if block.startswith("event: dashboard"):
                            events.append(block)
                            if len(events) == 2:
                                return

        reader = asyncio.create_task(read())
        for _ in range(200):
            if events:
                break
            await asyncio.sleep(0.05)
        assert events and ">draft<" in events[0] and "data: " in events[0]
        assert (await c.post(f"/campaigns/{cid}/run")).status_code == 200
        await asyncio.wait_for(reader, timeout=10)
        assert ">running<" in events[1]
        assert re.search(r'id="stat-called">\d', events[1])


async def test_another_teams_stream_is_a_404(app: Any, database: DbHandle, team: TeamCtx,
                                             other_team: TeamCtx) -> None:
    refs = await _setup(database, team, contacts=1)
    async with WebClient(app) as a, WebClient(app) as b:
        await a.sign_in(await make_user(database, team, "member"))
        r = await a.post("/campaigns/new", campaign_form(refs, name="Private"))
        cid = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
        await b.sign_in(await make_user(database, other_team, "owner"))
        assert (await b.get(f"/campaigns/{cid}/live")).status_code == 404
        assert (await b.post(f"/campaigns/{cid}/run")).status_code == 404
        assert (await b.post(f"/campaigns/{cid}/pause")).status_code == 404
