"""Campaigns: the list, create and edit with the whole configuration, dry run and run,
pause/resume/cancel, and the campaign page, which is its live dashboard (server-sent events:
the page's dashboard is re-rendered and pushed within a second of a change)."""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response, StreamingResponse

from callfleet.assistants import service as assistants
from callfleet.calls.models import Call
from callfleet.campaigns import enrollments, lifecycle
from callfleet.campaigns import service as campaigns
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.campaigns.run import run_campaign
from callfleet.campaigns.schemas import CampaignIn
from callfleet.campaigns.views import campaign_out
from callfleet.crm import lookups
from callfleet.dialer import rules
from callfleet.errors import ApiError
from callfleet.numbers import service as numbers
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.signin import SignedIn
from callfleet.web.auth import Ctx, Editor, Viewer, acting, read_form
from callfleet.web.forms import (
    checked,
    field_errors,
    form_lists,
    int_param,
    non_blank,
    parse_body,
    query_text,
    text_values,
    time_zones,
)
from callfleet.web.render import SECURITY_HEADERS, fragment, page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
LIVE_POLL_SECONDS = 0.5   # how often a live dashboard checks for a change
LIVE_MAX_SECONDS = 55.0   # a stream ends by itself; the browser reconnects (server restarts)
DAYS = [("mon", "Mon"), ("tue", "Tue"), ("wed", "Wed"), ("thu", "Thu"), ("fri", "Fri"),
        ("sat", "Sat"), ("sun", "Sun")]
RETRY_OUTCOMES = [("NoAnswer", "No answer"), ("Busy", "Busy"), ("Voicemail", "Voicemail"),
                  ("Error", "Error")]
NUMBER_FIELDS = (
    "maxConcurrentCalls", "maxAttemptsPerContact", "retryDelayMinutes",
    "retryBackoffMultiplier", "retryBackoffMaxMinutes",
    *(f"retryDelayMinutes{o}" for o, _ in RETRY_OUTCOMES),
    *(f"maxAttempts{o}" for o, _ in RETRY_OUTCOMES),
)
TEXT_FIELDS = ("name", "description", "assistantId", "companyId", "scheduledStartAt",
               "callWindowStart", "callWindowEnd", "callWindowTimezone", "audience",
               "retryBackoff", "voicemailAction")
FLAGS = ("useContactTimezone", "noAutoComplete", "retryOnError")


def now_of(request: Request) -> datetime:
    return request.app.state.clock.now()  # type: ignore[no-any-return]


@router.get("/campaigns")
async def campaigns_page(ctx: Viewer) -> Response:
    params = ctx.request.query_params
    status = query_text(params, "status")
    offset = int_param(params.get("offset"), 0)
    errors: dict[str, str] = {}
    try:
        items, total = await campaigns.list_campaigns(
            ctx.s, ctx.p, status=status, assistant_id=None, deleted=None, limit=PAGE_SIZE,
            offset=offset)
    except ApiError as exc:
        items, total, errors = [], 0, field_errors(exc)
    return page(ctx.request, "campaigns/list.html", user=ctx.user, campaigns=items,
                total=total, offset=offset, page_size=PAGE_SIZE, filters={"status": status},
                statuses=rules.CAMPAIGN_STATUSES, errors=errors, status=400 if errors else 200)


# ---------------------------------------------------------------- create and edit


def campaign_form_data(form: Any, *, editing: bool) -> dict[str, Any]:
    """The API's request body from the form (camelCase); blank fields are not sent."""
    values = text_values(form)
    body: dict[str, Any] = non_blank({k: values.get(k, "") for k in TEXT_FIELDS + NUMBER_FIELDS})
    lists = form_lists(form, "fromNumberIds", "callWindowDays")
    body["fromNumberIds"] = lists["fromNumberIds"]
    body["callWindowDays"] = lists["callWindowDays"]
    for flag in FLAGS:
        body[flag] = checked(form, flag)
    if editing:
        for key in ("description", "scheduledStartAt"):
            body.setdefault(key, None)
    return body


def to_service(body: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_body(CampaignIn, body)
    data = parsed.model_dump(exclude_unset=True)
    if data.get("scheduled_start_at") is not None and data["scheduled_start_at"].tzinfo is None:
        # datetime-local has no zone: it is read in the campaign's call window time zone.
        tz = zoneinfo.ZoneInfo(data.get("call_window_timezone") or "UTC")
        data["scheduled_start_at"] = data["scheduled_start_at"].replace(tzinfo=tz)
    return data


async def _choices(ctx: Ctx) -> dict[str, Any]:
    assistants_list, _ = await assistants.list_assistants(ctx.s, ctx.p, 200, 0)
    numbers_list, _ = await numbers.list_numbers(ctx.s, ctx.p, status="active",
                                                 assistant_id=None, limit=500, offset=0)
    companies, _ = await lookups.company_choices(ctx.s, ctx.p)
    outbound = [a for a in assistants_list if a.get("outbound_enabled", True)]
    return {"assistants": [(a["id"], a["name"]) for a in outbound],
            "numbers": [n for n in numbers_list if n["status"] == "active"],
            "companies": companies}


def _values_of(c: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": c["name"], "description": c.get("description") or "",
        "assistantId": c["assistant_id"], "companyId": c["company_id"],
        "fromNumberIds": c["from_number_ids"], "callWindowStart": c["call_window_start"],
        "callWindowEnd": c["call_window_end"], "callWindowTimezone": c["call_window_timezone"],
        "callWindowDays": c["call_window_days"], "audience": c["audience"],
        "useContactTimezone": c["use_contact_timezone"],
        "noAutoComplete": c["no_auto_complete"], "retryOnError": c["retry_on_error"],
        "maxConcurrentCalls": c["max_concurrent_calls"],
        "maxAttemptsPerContact": c["max_attempts_per_contact"],
        "retryDelayMinutes": c["retry_delay_minutes"], "retryBackoff": c["retry_backoff"],
        "retryBackoffMultiplier": c.get("retry_backoff_multiplier") or "",
        "retryBackoffMaxMinutes": c.get("retry_backoff_max_minutes") or "",
        "voicemailAction": c.get("voicemail_action") or "",
        "scheduledStartAt": (c.get("scheduled_start_at") or "")[:16],
    }
    for outcome, _ in RETRY_OUTCOMES:
        snake = "".join("_" + ch.lower() if ch.isupper() else ch for ch in outcome)
        values[f"retryDelayMinutes{outcome}"] = c.get(f"retry_delay_minutes{snake}") or ""
        values[f"maxAttempts{outcome}"] = c.get(f"max_attempts{snake}") or ""
    return values


DEFAULTS = {"callWindowStart": "09:00", "callWindowEnd": "17:00",
            "callWindowTimezone": "America/New_York", "callWindowDays": [d for d, _ in DAYS[:5]],
            "useContactTimezone": True, "retryOnError": True, "maxConcurrentCalls": 3,
            "maxAttemptsPerContact": 3, "retryDelayMinutes": 60, "audience": "manual",
            "retryBackoff": "fixed", "fromNumberIds": []}


async def _form(ctx: Ctx, *, campaign: dict[str, Any] | None, values: dict[str, Any],
                errors: dict[str, str] | None = None, status: int = 200) -> Response:
    return page(ctx.request, "campaigns/form.html", user=ctx.user, status=status,
                campaign=campaign, values=values, errors=errors or {}, days=DAYS,
                retry_outcomes=RETRY_OUTCOMES, time_zones=time_zones(),
                **await _choices(ctx))


def _form_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = text_values(form)
    values.update(form_lists(form, "fromNumberIds", "callWindowDays"))
    for flag in FLAGS:
        values[flag] = checked(form, flag)
    return values


@router.get("/campaigns/new")
async def new_campaign_page(ctx: Viewer) -> Response:
    return await _form(ctx, campaign=None, values=dict(DEFAULTS))


@router.post("/campaigns/new")
async def create_campaign(ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    try:
        data = to_service(campaign_form_data(form, editing=False))
        data.setdefault("from_number_ids", [])
        out = await campaigns.create_campaign(ctx.s, ctx.p, data, now_of(ctx.request))
    except ApiError as exc:
        await ctx.s.rollback()
        return await _form(ctx, campaign=None, values=_form_values(form),
                           errors=field_errors(exc), status=400)
    return await ctx.done(f"/campaigns/{out['id']}?created=1")


@router.get("/campaigns/{campaign_id}/edit")
async def edit_campaign_page(campaign_id: str, ctx: Viewer) -> Response:
    c = await campaigns.owned(ctx.s, ctx.p, campaign_id)
    out = await campaigns.render(ctx.s, c)
    return await _form(ctx, campaign=out, values=_values_of(out))


@router.post("/campaigns/{campaign_id}/edit")
async def update_campaign(campaign_id: str, ctx: Editor) -> Response:
    c = await campaigns.owned(ctx.s, ctx.p, campaign_id)
    current = await campaigns.render(ctx.s, c)
    form = await read_form(ctx.request)
    try:
        data = to_service(campaign_form_data(form, editing=True))
        await campaigns.update_campaign(ctx.s, ctx.p, campaign_id, data, now_of(ctx.request))
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        return await _form(ctx, campaign=current, values=_form_values(form),
                           errors=field_errors(exc), status=400 if exc.status != 409 else 409)
    return await ctx.done(f"/campaigns/{campaign_id}?saved=1")


# ---------------------------------------------------------------- the live dashboard


COUNTERS = ("total_contacts", "contacts_called", "contacts_completed", "contacts_answered",
            "contacts_skipped", "contacts_failed")


async def dashboard_context(ctx_s: Any, p: Any, campaign_id: str, now: datetime
                            ) -> dict[str, Any]:
    """The campaign and its dashboard; the dashboard's counters serve both (they are the
    expensive part: one pass over the campaign's enrollments)."""
    c = await campaigns.owned(ctx_s, p, campaign_id)
    board = await campaigns.dashboard(ctx_s, p, campaign_id, now)
    first = (c.from_number_ids or [None])[0]
    phone = await ctx_s.scalar(p.scope.select(PhoneNumber.phone_number)
                               .where(PhoneNumber.id == first)) if first else None
    campaign = campaign_out(c, {first: phone} if phone else {},
                            {k: board[k] for k in COUNTERS})
    outcomes = [(k, v) for k, v in board["calls_by_outcome"].items() if v]
    peak = max((v for _, v in outcomes), default=0)
    return {"campaign": campaign, "board": board, "outcomes": outcomes, "peak": peak,
            "now": now}


@router.get("/campaigns/{campaign_id}")
async def campaign_page(campaign_id: str, ctx: Viewer) -> Response:
    context = await dashboard_context(ctx.s, ctx.p, campaign_id, now_of(ctx.request))
    assistant = None
    try:
        assistant = await assistants.get_assistant(ctx.s, ctx.p,
                                                   context["campaign"]["assistant_id"])
    except ApiError:
        pass
    params = ctx.request.query_params
    flash = ("Campaign created. Add contacts, then run it." if "created" in params
             else "Changes saved." if "saved" in params else None)
    return page(ctx.request, "campaigns/detail.html", user=ctx.user, assistant=assistant,
                flash=flash, run_result=None, **context)


async def _fingerprint(s: Any, campaign_id: str) -> tuple[Any, ...]:
    """What changes when anything on the dashboard changes: the campaign row, and how many
    of its enrollments and calls are in each status (both read from their indexes alone)."""
    row = (await s.execute(select(Campaign.status, Campaign.active_calls, Campaign.updated_at)
                           .where(Campaign.id == campaign_id))).first()
    by_enrollment = sorted(await s.execute(
        select(Enrollment.status, func.count()).where(Enrollment.campaign_id == campaign_id)
        .group_by(Enrollment.status)))
    by_call = sorted(await s.execute(
        select(Call.status, func.count()).where(Call.campaign_id == campaign_id)
        .group_by(Call.status)))
    return (tuple(row or ()), tuple(map(tuple, by_enrollment)), tuple(map(tuple, by_call)))


def sse(event: str, html: str) -> bytes:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n\n".encode()


@router.get("/campaigns/{campaign_id}/live")
async def live(campaign_id: str, ctx: Viewer) -> Response:
    """The dashboard as a stream of server-sent events: the current state at once, then a
    new rendering whenever the campaign, its enrollments or its calls change."""
    request, p, user = ctx.request, ctx.p, ctx.user
    await campaigns.owned(ctx.s, p, campaign_id)  # 404 for another team's
    await ctx.s.close()  # the stream reads in sessions of its own; hold no connection
    db = request.app.state.db

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        last: tuple[Any, ...] | None = None
        started = time.monotonic()
        beat = started
        while time.monotonic() - started < LIVE_MAX_SECONDS:
            if await request.is_disconnected():
                return
            async with db.session(write=False) as s:
                mark = await _fingerprint(s, campaign_id)
                if mark != last:
                    context = await dashboard_context(s, p, campaign_id, now_of(request))
                    last = mark
                    yield sse("dashboard", fragment("campaigns/_dashboard.html", user=user,
                                                    **context))
                    beat = time.monotonic()
            if time.monotonic() - beat > 15:
                yield b": keep-alive\n\n"
                beat = time.monotonic()
            await asyncio.sleep(LIVE_POLL_SECONDS)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# ---------------------------------------------------------------- actions


@router.post("/campaigns/{campaign_id}/contacts")
async def add_company_contacts(campaign_id: str, ctx: Editor) -> Response:
    """Enroll every contact of the campaign's company (re-adding is a no-op)."""
    c = await campaigns.owned(ctx.s, ctx.p, campaign_id, for_update=True)
    if c.status in ("completed", "cancelled"):
        raise ApiError(409, f"Contacts cannot be added to a {c.status} campaign")
    added = await enrollments.enroll_company_contacts(ctx.s, c, now_of(ctx.request))
    return await ctx.done(f"/campaigns/{campaign_id}?added={added}")


@router.post("/campaigns/{campaign_id}/run")
async def run(campaign_id: str, request: Request) -> Response:
    """Run (or dry-run) now; the orchestration owns its transactions, so this handler holds
    no session of its own while it works."""
    user: SignedIn = await acting(request)
    form = await read_form(request)
    dry_run = checked(form, "dryRun")
    db = request.app.state.db
    try:
        result = await run_campaign(db, request.app.state.dialer, user.principal, campaign_id,
                                    None, dry_run)
        error = None
    except ApiError as exc:
        if exc.status == 404 or exc.status == 403:
            raise
        result, error = None, exc.error
    async with db.session(write=False) as s:
        context = await dashboard_context(s, user.principal, campaign_id, now_of(request))
        assistant = None
        try:
            assistant = await assistants.get_assistant(s, user.principal,
                                                       context["campaign"]["assistant_id"])
        except ApiError:
            pass
    return page(request, "campaigns/detail.html", user=user, assistant=assistant,
                run_result=result, status=409 if error else 200,
                errors={"_form": error} if error else {}, flash=None, **context)


@router.post("/campaigns/{campaign_id}/{action}")
async def act(campaign_id: str, action: str, ctx: Editor) -> Response:
    targets = {"pause": "paused", "resume": "running", "cancel": "cancelled"}
    if action == "delete":
        await campaigns.delete_campaign(ctx.s, ctx.p, campaign_id)
        await ctx.s.commit()
        return RedirectResponse("/campaigns?deleted=1", status_code=303)
    if action not in targets:
        raise ApiError(404, "Not found")
    c = await campaigns.owned(ctx.s, ctx.p, campaign_id, for_update=True)
    try:
        await lifecycle.transition(ctx.s, c, targets[action], now_of(ctx.request),
                                   reason=f"{targets[action]} from the web app by "
                                   f"{ctx.user.email}")
    except ApiError as exc:
        await ctx.s.rollback()
        context = await dashboard_context(ctx.s, ctx.p, campaign_id, now_of(ctx.request))
        return page(ctx.request, "campaigns/detail.html", user=ctx.user, assistant=None,
                    run_result=None, status=exc.status, errors={"_form": exc.error},
                    flash=None, **context)
    return await ctx.done(f"/campaigns/{campaign_id}")
