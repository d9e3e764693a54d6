"""``callfleet demo``: a whole campaign on the simulated carrier, watched live.

Creates a demo team with a company of contacts spread over US and European time zones
(some without a phone, some do-not-call), an assistant from the outbound-setter template,
numbers bought from the simulated carrier, and a campaign; runs it with the simulated clock
sped up so a day of calling passes in seconds, waits until every answered call is analysed
and every webhook delivery is settled, and prints the outcome.

The simulated day is placed in the past (it starts at 08:30 New York time two days before the
last New York calling day that is already over), so everything it records has happened by the
time it exits: a server started afterwards, on real time, shows a finished campaign, not calls
from the future or jobs waiting for it.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy import func, select

from callfleet import ids
from callfleet.app import build_dialer, create_app
from callfleet.assistants.models import Assistant
from callfleet.assistants.templates import template_defaults
from callfleet.calls.models import Call
from callfleet.campaigns import service as campaigns
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.campaigns.run import run_campaign
from callfleet.campaigns.views import NO_COUNTERS
from callfleet.clock import real_now, set_scale, shared_clock
from callfleet.config import Settings
from callfleet.conversation.models import CallJob
from callfleet.crm import fields as F
from callfleet.crm.models import Company, Contact
from callfleet.db.base import iso, utcnow
from callfleet.db.migrate import migrate
from callfleet.db.session import open_database
from callfleet.numbers.models import PhoneNumber
from callfleet.recordings import recording_path
from callfleet.teams.principal import Principal, TeamScope
from callfleet.teams.service import create_team
from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.outbox import OutboxEvent
from callfleet.worker import run_background

FIRST = ["Ava", "Liam", "Emma", "Noah", "Mia", "Lucas", "Sofia", "Ben", "Lena", "Jonas",
         "Chloe", "Hugo", "Grace", "Oscar", "Ines", "Felix", "Ruby", "Leon", "Clara", "Theo"]
LAST = ["Smith", "Garcia", "Chen", "Müller", "Dubois", "Rossi", "Brown", "Kowalski", "Novak",
        "Schmidt", "Martin", "Taylor", "Wilson", "Lefebvre", "Weber", "Jones", "Moreau"]
# (time zone or None to infer it from the number, phone factory)
ZONES: list[tuple[str | None, Any]] = [
    ("America/New_York", lambda r: f"+1212{r.randint(2000000, 9999999)}"),
    ("America/Chicago", lambda r: f"+1312{r.randint(2000000, 9999999)}"),
    ("America/Denver", lambda r: f"+1303{r.randint(2000000, 9999999)}"),
    ("America/Los_Angeles", lambda r: f"+1415{r.randint(2000000, 9999999)}"),
    (None, lambda r: f"+1206{r.randint(2000000, 9999999)}"),  # Seattle, inferred
    ("Europe/London", lambda r: f"+442079460{r.randint(0, 999):03d}"),
    ("Europe/Berlin", lambda r: f"+4930{r.randint(1000000, 99999999)}"),
    (None, lambda r: f"+331{r.randint(40000000, 49999999)}"),  # Paris, inferred
]


DEMO_ZONE = ZoneInfo("America/New_York")
DRAIN_SECONDS = 120.0


def demo_start(now: datetime) -> datetime:
    """08:30 New York time, two days before the last New York day whose legal calling hours
    (to 21:00) are over at ``now``: a campaign of up to two calling days ends before ``now``."""
    local = now.astimezone(DEMO_ZONE)
    last_over = local.date() if local.time() >= clock_time(21, 0) else \
        local.date() - timedelta(days=1)
    start_day = last_over - timedelta(days=1)
    return datetime.combine(start_day, clock_time(8, 30), DEMO_ZONE).astimezone(UTC)


async def run_demo(settings: Settings, contacts: int, timeout: float, console: Console) -> int:
    db = open_database(settings.resolved_database_url(), pool_size=10)
    await migrate(db)
    clock = await shared_clock(db, settings.time_scale, start=demo_start(real_now()))
    dialer = await build_dialer(settings, db, clock)
    rng = random.Random(7)
    async with db.session() as s:
        team, token = await create_team(s, "Demo Team")
        p = Principal(team.id, team.slug, "cli")
        company = Company(id=ids.new_id("comp"), team_id=team.id, name="Northwind Traders",
                          name_lower="northwind traders", custom_fields={},
                          created_at=utcnow(), updated_at=utcnow())
        s.add(company)
        await s.flush()
        made = tries = 0
        while made < contacts:
            tries += 1
            assert tries < contacts * 10, "demo phone factories produce invalid numbers"
            zone, phone_of = ZONES[made % len(ZONES)]
            first, last = rng.choice(FIRST), rng.choice(LAST)
            try:
                phone = F.normalize_phone(phone_of(rng), "US")
            except ValueError:
                continue
            no_phone = made % 25 == 3
            c = Contact(
                id=ids.new_id("cont"), team_id=team.id, company_id=company.id,
                first_name=first, last_name=last,
                email=f"{first}.{last}{made}@example.com".lower().replace("ü", "u"),
                phone=None if no_phone else phone, timezone=zone,
                lead_status="new", do_not_call=made % 20 == 7, custom_fields={}, tags=["demo"],
                created_at=utcnow(), updated_at=utcnow(),
            )
            c.email_lower = c.email
            c.search_text = F.search_text(first, last, c.email, c.phone, None)
            s.add(c)
            made += 1
        defaults = template_defaults("outbound-setter", "Northwind Traders")
        assistant = Assistant(id=ids.new_id("asst"), team_id=team.id, name="Ava (setter)",
                              template_id="outbound-setter", created_at=utcnow(),
                              updated_at=utcnow(), **defaults)
        s.add(assistant)
        await s.flush()
        number_ids = []
        for country, area in (("US", "212"), ("GB", None)):
            offer = (await dialer.carrier.search_numbers(country, area, "local", 1))[0]
            ref = await dialer.carrier.purchase_number(offer.phone_number)
            pn = PhoneNumber(id=ids.new_id("pn"), team_id=team.id,
                             phone_number=offer.phone_number, provider="sim", status="active",
                             assistant_id=assistant.id, country_code=country,
                             number_type="local", monthly_price=offer.monthly_price,
                             provider_ref=ref, capabilities=list(offer.features),
                             created_at=utcnow(), updated_at=utcnow())
            s.add(pn)
            number_ids.append(pn.id)
        await s.flush()
        contact_ids = list(await s.scalars(p.scope.select(Contact.id).where(
            Contact.company_id == company.id)))
        created = await campaigns.create_campaign(s, p, {
            "assistant_id": assistant.id, "company_id": company.id,
            "from_number_ids": number_ids, "name": "Demo outreach",
            "description": "Qualify Northwind's leads", "call_window_start": "09:00",
            "call_window_end": "18:00", "call_window_timezone": "America/New_York",
            "max_concurrent_calls": 10, "max_attempts_per_contact": 3,
            "retry_delay_minutes": 60, "voicemail_action": "leave_message",
        }, clock.now())
        await campaigns.add_contacts(s, p, created["id"], contact_ids, None)
        await s.commit()
    campaign_id = created["id"]
    console.print(f"[bold]Demo team[/bold] {team.id} ({team.slug}), API key [bold]{token}[/]")
    console.print(f"{contacts} contacts over {len(ZONES)} time zones; simulated time runs "
                  f"{clock.scale:g}× real time (starts {iso(clock.now())}, in the past so the "
                  "whole campaign has happened by the time the demo ends).")
    result = await run_campaign(db, dialer, p, campaign_id, None, False)
    console.print(f"run: {result['message']}; {result['failed']} contacts cannot be called")
    stop = asyncio.Event()
    # Everything a worker runs: the dialer, the conversation and analysis loops, webhooks.
    task = asyncio.create_task(run_background(settings, db, dialer, stop))
    started = time.monotonic()
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"))
    bar = progress.add_task("contacts done", total=contacts)
    status = "running"
    try:
        with Live(console=console, refresh_per_second=8) as live:
            while time.monotonic() - started < timeout:
                snap = await _snapshot(db, campaign_id)
                status = snap["status"]
                progress.update(bar, completed=snap["done"])
                live.update(Group(progress, _status_table(snap, iso(clock.now()) or "")))
                if status in ("completed", "cancelled", "paused"):
                    break
                if clock.now() >= real_now() - timedelta(minutes=1):
                    console.print("The simulated day reached the present; stopping here.")
                    break
                await asyncio.sleep(0.25)
        # From here on simulated time runs at real speed: nothing the demo still records
        # (analysis, deliveries) can move past the present.
        await set_scale(db, clock, 1.0)
        await _drain(db, team.id, console)
    finally:
        stop.set()
        await task
    snap = await _snapshot(db, campaign_id)
    console.print(_outcome_table(snap))
    elapsed = time.monotonic() - started
    console.print(f"Campaign {campaign_id} is [bold]{snap['status']}[/bold] after "
                  f"{elapsed:.1f} s real time; {snap['analyzed']} of {snap['answered']} "
                  "answered calls analysed.")
    console.print(
        "\nQuery it through the API (start the server with [bold]callfleet serve[/bold]):\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'http://127.0.0.1:8000/api/crm/campaigns/{campaign_id}'\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'http://127.0.0.1:8000/api/crm/campaigns/{campaign_id}/dashboard'\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'http://127.0.0.1:8000/api/calls?campaignId={campaign_id}&outcome=answered'\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'http://127.0.0.1:8000/api/crm/contacts?teamId={team.id}&leadStatus=contacted'",
        soft_wrap=True,
    )
    await db.dispose()
    return 0 if snap["status"] == "completed" else 1


async def _backlog(db: Any, team_id: str) -> tuple[int, int]:
    """(analyses not yet written, events or webhook deliveries not yet settled) of a team."""
    async with db.session(write=False) as s:
        scope = TeamScope(team_id)
        jobs = await s.scalar(scope.count(CallJob).where(
            CallJob.status.in_(("pending", "running"))))
        events = await s.scalar(scope.count(OutboxEvent).where(
            OutboxEvent.dispatched_at.is_(None)))
        deliveries = await s.scalar(scope.count(WebhookDelivery).where(
            WebhookDelivery.status.in_(("waiting", "pending", "sending"))))
    return int(jobs or 0), int(events or 0) + int(deliveries or 0)


async def _drain(db: Any, team_id: str, console: Console) -> None:
    """Wait, with progress, until every answered call is analysed and every event delivered
    (or ``DRAIN_SECONDS`` pass: a receiver that keeps failing is retried for a day)."""
    jobs, pending = await _backlog(db, team_id)
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"))
    analyses = progress.add_task("calls analysed", total=jobs)
    events = progress.add_task("events delivered", total=pending)
    started = time.monotonic()
    left_jobs, left_events = jobs, pending
    with Live(progress, console=console, refresh_per_second=8) as live:
        while time.monotonic() - started < DRAIN_SECONDS:
            left_jobs, left_events = await _backlog(db, team_id)
            progress.update(analyses, completed=jobs - min(jobs, left_jobs))
            progress.update(events, completed=pending - min(pending, left_events))
            live.refresh()
            if not left_jobs and not left_events:
                return
            await asyncio.sleep(0.2)
    console.print(f"Still waiting: {left_jobs} analyses and {left_events} events or "
                  "deliveries (they continue when a server or worker runs).")


async def _snapshot(db: Any, campaign_id: str) -> dict[str, Any]:
    async with db.session(write=False) as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        by_status = Counter({k: v for k, v in await s.execute(
            select(Enrollment.status, func.count()).where(Enrollment.campaign_id == campaign_id)
            .group_by(Enrollment.status))})
        by_outcome = Counter({k: v for k, v in await s.execute(
            select(Call.outcome, func.count()).where(Call.campaign_id == campaign_id)
            .group_by(Call.outcome))})
        reasons = Counter({k: v for k, v in await s.execute(
            select(Enrollment.reason, func.count()).where(
                Enrollment.campaign_id == campaign_id, Enrollment.status == "skipped")
            .group_by(Enrollment.reason))})
        count = (await campaigns.counters(s, [campaign_id])).get(campaign_id, NO_COUNTERS)
        analyzed = await s.scalar(select(func.count()).select_from(Call).where(
            Call.campaign_id == campaign_id,
            Call.analysis["analyzed_at"].as_string().is_not(None)))
    done = sum(by_status[k] for k in ("completed", "failed", "skipped", "cancelled"))
    return {"status": c.status, "active": c.active_calls, "by_status": by_status,
            "by_outcome": by_outcome, "done": done, "counters": count, "skipped": reasons,
            "answered": by_outcome.get("answered", 0) + by_outcome.get("opted_out", 0),
            "analyzed": int(analyzed or 0)}


def _status_table(snap: dict[str, Any], now: str) -> Table:
    t = Table(title=f"simulated time {now}", show_header=True)
    for col in ("status", "active calls", "pending", "calling", "completed", "failed",
                "skipped"):
        t.add_column(col)
    b = snap["by_status"]
    t.add_row(snap["status"], str(snap["active"]), *(str(b[k]) for k in (
        "pending", "calling", "completed", "failed", "skipped")))
    return t


def _outcome_table(snap: dict[str, Any]) -> Table:
    t = Table(title="Call outcomes", show_header=True)
    t.add_column("outcome")
    t.add_column("calls", justify="right")
    for outcome, n in sorted(snap["by_outcome"].items(), key=lambda kv: -kv[1]):
        t.add_row(str(outcome), str(n))
    c = snap["counters"]
    t.add_section()
    for key in ("total_contacts", "contacts_called", "contacts_answered",
                "contacts_completed", "contacts_skipped", "contacts_failed"):
        t.add_row(key, str(c[key]))
    for reason, n in snap["skipped"].items():
        t.add_row(f"skipped: {reason}", str(n))
    return t


VOICE_PERSONAS = ("interested", "gives_email", "refuses", "asks_price", "opt_out")


async def run_voice_demo(settings: Settings, calls: int, timeout: float,
                         console: Console) -> int:
    """Spoken calls, offline: the simulated network's callees pick up and talk over the media
    stream; the assistant listens with faster-whisper and speaks with Piper. Prints what was
    said and where to listen to the recordings."""
    port = free_port()
    settings = settings.model_copy(update={
        "carrier": "sim", "time_scale": 1.0, "sim_audio": True, "sim_mix": "answer=100",
        "sim_invalid_percent": 0.0, "legal_hours_start": "00:00", "legal_hours_end": "23:59",
        "voice_url": f"ws://127.0.0.1:{port}", "rate_limit_per_minute": 0})
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", ws_per_message_deflate=False))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise RuntimeError("the demo's server did not start")
        await asyncio.sleep(0.05)
    db, carrier = app.state.db, app.state.carrier
    async with db.session() as s:
        team, token = await create_team(s, "Voice Demo")
        company = Company(id=ids.new_id("comp"), team_id=team.id, name="Northwind Traders",
                          name_lower="northwind traders", custom_fields={},
                          created_at=utcnow(), updated_at=utcnow())
        s.add(company)
        await s.commit()
    base = f"http://127.0.0.1:{port}"
    placed: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        # The demo calls fictional numbers now, whatever the hour in New York: informational
        # calls, exempt from the telemarketing calling hours once the team's owner says so
        # (docs/compliance.md); the operator's legal hours still apply.
        (await http.patch("/api/compliance/settings",
                          json={"timeRulesForAllPurposes": False})).raise_for_status()
        defaults = template_defaults("outbound-setter", "Northwind Traders")
        assistant = (await http.post("/api/assistants", json={
            "teamId": team.id, "name": "Ava (voice)", "templateId": "outbound-setter",
            "voiceProvider": "local", "transcriberProvider": "local",
            "recordingEnabled": True})).json()["assistant"]
        offer = (await http.post("/api/phone-numbers/search", json={
            "filters": {"countryCode": "US", "areaCode": "212", "limit": 1}})).json()
        number = (await http.post("/api/phone-numbers/purchase", json={
            "teamId": team.id, "phoneNumber": offer["numbers"][0]["phoneNumber"]})).json()
        await http.put(f"/api/assistants/{assistant['id']}/phone-numbers",
                       json={"phoneNumberIds": [number["phone_number"]["id"]]})
        for i in range(calls):
            persona = VOICE_PERSONAS[i % len(VOICE_PERSONAS)]
            phone = f"+1415555{1200 + i:04d}"
            await carrier.set_profile(phone, ["answer"], persona=persona, ring_seconds=2,
                                      audio=True)
            contact = (await http.post("/api/crm/contacts", json={
                "teamId": team.id, "companyId": company.id, "firstName": FIRST[i % len(FIRST)],
                "lastName": LAST[i % len(LAST)], "phone": phone})).json()["contact"]
            r = await http.post("/api/crm/calls", json={
                "assistantId": assistant["id"], "toNumber": phone, "contactId": contact["id"]})
            placed.append((r.json()["call"]["id"], persona))
        console.print(f"[bold]Voice demo[/bold]: {calls} calls placed; the simulated callees "
                      f"pick up and talk (first message: {defaults['first_message']!r}).")
        started = time.monotonic()
        done: dict[str, dict[str, Any]] = {}
        while len(done) < len(placed) and time.monotonic() - started < timeout:
            for call_id, _ in placed:
                if call_id not in done:
                    call = (await http.get(f"/api/calls/{call_id}")).json()["call"]
                    if call["status"] == "ended":
                        done[call_id] = call
            await asyncio.sleep(0.5)
    server.should_exit = True
    await serving
    for call_id, persona in placed:
        call = done.get(call_id)
        if call is None:
            console.print(f"{call_id} ({persona}): still in progress after {timeout:g} s")
            continue
        console.print(f"\n[bold]{call_id}[/bold] ({persona}): {call['outcome']}, "
                      f"{call['ended_reason']}, {call['duration_seconds']} s")
        console.print(call["transcript"] or "", soft_wrap=True)
        path = recording_path(settings.data_dir, call_id)
        if path.exists():
            console.print(f"recording: {path}")
    console.print(
        "\nListen through the API too (start [bold]callfleet serve[/bold]):\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        "'http://127.0.0.1:8000/api/calls/<call id>/recording' -o call.wav", soft_wrap=True)
    return 0 if len(done) == len(placed) else 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
