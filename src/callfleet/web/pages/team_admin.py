"""Settings that manage the team's integrations and dialing rules: API keys (owners and
admins; a new key is shown once), webhooks (endpoints, delivery log, retry, test), the
do-not-call list, and calling hours."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from callfleet.compliance import service as compliance
from callfleet.crm import fields as crm_fields
from callfleet.errors import ApiError
from callfleet.teams import service as teams
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import (
    checked,
    field_errors,
    form_lists,
    int_param,
    parse_body,
    query_text,
    text_values,
)
from callfleet.web.render import page
from callfleet.webhooks import service as webhooks
from callfleet.webhooks.outbox import EVENT_TYPES
from callfleet.webhooks.schemas import WebhookIn
from callfleet.webhooks.secrets import secret_box

router = APIRouter(include_in_schema=False)


def _page(ctx: Ctx, template: str, *, status: int = 200, **context: Any) -> Response:
    return page(ctx.request, template, user=ctx.user, status=status, **context)


# ---------------------------------------------------------------- API keys


async def _keys_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                     new_key: dict[str, Any] | None = None) -> Response:
    ctx.require("api_keys")
    keys, _ = await teams.list_keys(ctx.s, ctx.p, 200, 0)
    flash = "Key revoked." if "revoked" in ctx.request.query_params else None
    return _page(ctx, "settings/api_keys.html", status=status, keys=keys, new_key=new_key,
                 errors=errors or {}, flash=flash)


@router.get("/settings/api-keys")
async def keys_page(ctx: Viewer) -> Response:
    return await _keys_page(ctx)


@router.post("/settings/api-keys")
async def create_key(ctx: Editor) -> Response:
    ctx.require("api_keys")
    form = await read_form(ctx.request)
    values = text_values(form, ("name",))
    try:
        key, token = await teams.create_key(
            ctx.s, ctx.p.team_id, name=values.get("name"),
            scopes=["read"] if checked(form, "readOnly") else None)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _keys_page(ctx, status=400, errors=field_errors(exc))
    await ctx.s.commit()
    return await _keys_page(ctx, new_key=teams.key_out(key, token))


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(key_id: str, ctx: Editor) -> Response:
    ctx.require("api_keys")
    await teams.revoke_key(ctx.s, ctx.p, key_id)
    await ctx.s.commit()
    ctx.request.app.state.auth_cache.drop_key(key_id)
    return RedirectResponse("/settings/api-keys?revoked=1", status_code=303)


# ---------------------------------------------------------------- webhooks


def _box(ctx: Ctx) -> Any:
    return secret_box(ctx.request.app.state.settings)


async def _hooks_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                      values: dict[str, Any] | None = None,
                      created: dict[str, Any] | None = None) -> Response:
    ctx.require("webhooks")
    items, _ = await webhooks.list_endpoints(ctx.s, ctx.p, 100, 0)
    flash = "Webhook deleted." if "deleted" in ctx.request.query_params else None
    return _page(ctx, "settings/webhooks.html", status=status, webhooks=items,
                 event_types=EVENT_TYPES, errors=errors or {}, created=created,
                 values=values or {"events": []}, flash=flash)


def _hook_body(form: Any) -> dict[str, Any]:
    values = text_values(form, ("url", "description"))
    events = form_lists(form, "events")["events"]
    return {"url": values.get("url", "").strip(), "description": values.get("description") or None,
            "events": events or ["*"], "enabled": checked(form, "enabled")}


@router.get("/settings/webhooks")
async def hooks_page(ctx: Viewer) -> Response:
    return await _hooks_page(ctx)


@router.post("/settings/webhooks")
async def create_hook(ctx: Editor) -> Response:
    ctx.require("webhooks")
    form = await read_form(ctx.request)
    body = _hook_body(form)
    try:
        data = parse_body(WebhookIn, body).model_dump(exclude_unset=True)
        created = await webhooks.create_endpoint(ctx.s, ctx.p, data, _box(ctx))
    except ApiError as exc:
        await ctx.s.rollback()
        return await _hooks_page(ctx, status=400, errors=field_errors(exc), values=body)
    await ctx.s.commit()
    return await _hooks_page(ctx, created=created)


async def _hook_page(ctx: Ctx, webhook_id: str, *, status: int = 200,
                     errors: dict[str, str] | None = None, flash: str | None = None
                     ) -> Response:
    ctx.require("webhooks")
    hook = await webhooks.get_endpoint(ctx.s, ctx.p, webhook_id)
    params = ctx.request.query_params
    offset = int_param(params.get("offset"), 0)
    status_filter = query_text(params, "status")
    try:
        deliveries, total = await webhooks.list_deliveries(
            ctx.s, ctx.p, webhook_id, status=status_filter, event_type=None, limit=50,
            offset=offset)
    except ApiError as exc:
        deliveries, total, errors = [], 0, field_errors(exc)
        status = 400
    flash = flash or ("Saved." if "saved" in params else
                      "Delivery queued again." if "retried" in params else
                      "Test event queued." if "tested" in params else None)
    return _page(ctx, "settings/webhook.html", status=status, hook=hook,
                 deliveries=deliveries, total=total, offset=offset,
                 filters={"status": status_filter}, event_types=EVENT_TYPES,
                 values={"url": hook["url"], "description": hook["description"] or "",
                         "events": hook["events"], "enabled": hook["enabled"]},
                 errors=errors or {}, flash=flash)


@router.get("/settings/webhooks/{webhook_id}")
async def hook_page(webhook_id: str, ctx: Viewer) -> Response:
    return await _hook_page(ctx, webhook_id)


@router.post("/settings/webhooks/{webhook_id}")
async def update_hook(webhook_id: str, ctx: Editor) -> Response:
    ctx.require("webhooks")
    form = await read_form(ctx.request)
    try:
        data = parse_body(WebhookIn, _hook_body(form)).model_dump(exclude_unset=True)
        await webhooks.update_endpoint(ctx.s, ctx.p, webhook_id, data, _box(ctx))
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        return await _hook_page(ctx, webhook_id, status=400, errors=field_errors(exc))
    return await ctx.done(f"/settings/webhooks/{webhook_id}?saved=1")


@router.post("/settings/webhooks/{webhook_id}/delete")
async def delete_hook(webhook_id: str, ctx: Editor) -> Response:
    ctx.require("webhooks")
    await webhooks.delete_endpoint(ctx.s, ctx.p, webhook_id)
    return await ctx.done("/settings/webhooks?deleted=1")


@router.post("/settings/webhooks/{webhook_id}/test")
async def test_hook(webhook_id: str, ctx: Editor) -> Response:
    ctx.require("webhooks")
    await webhooks.test_delivery(ctx.s, ctx.p, webhook_id, ctx.request.app.state.clock.now())
    return await ctx.done(f"/settings/webhooks/{webhook_id}?tested=1")


@router.post("/settings/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry(webhook_id: str, delivery_id: str, ctx: Editor) -> Response:
    ctx.require("webhooks")
    try:
        await webhooks.retry_delivery(ctx.s, ctx.p, webhook_id, delivery_id,
                                      ctx.request.app.state.clock.now())
    except ApiError as exc:
        if exc.status != 409:
            raise
        await ctx.s.rollback()
        return await _hook_page(ctx, webhook_id, status=409, errors={"_form": exc.error})
    return await ctx.done(f"/settings/webhooks/{webhook_id}?retried=1")


# ---------------------------------------------------------------- do-not-call list


async def _dnc_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                    values: dict[str, Any] | None = None) -> Response:
    params = ctx.request.query_params
    search = query_text(params, "search")
    offset = int_param(params.get("offset"), 0)
    entries, total = await compliance.list_entries(ctx.s, ctx.p, search, 50, offset)
    flash = ("Number added." if "added" in params else
             "Number removed." if "removed" in params else None)
    return _page(ctx, "settings/dnc.html", status=status, entries=entries, total=total,
                 offset=offset, filters={"search": search}, errors=errors or {},
                 values=values or {}, flash=flash)


@router.get("/settings/dnc")
async def dnc_page(ctx: Viewer) -> Response:
    return await _dnc_page(ctx)


@router.post("/settings/dnc")
async def add_dnc(ctx: Editor) -> Response:
    values = text_values(await read_form(ctx.request), ("phone", "reason"))
    region = ctx.region
    try:
        try:
            phone = crm_fields.normalize_phone(values.get("phone"), region)
        except ValueError as exc:
            raise ApiError(400, f"phone {exc}", {"phone": f"phone {exc}"}) from None
        if phone is None:
            raise ApiError(400, "phone is required", {"phone": "phone is required"})
        await compliance.add_entry(ctx.s, ctx.p, phone, values.get("reason"))
    except ApiError as exc:
        await ctx.s.rollback()
        errors = field_errors(exc)
        if "_form" in errors:
            errors = {"phone": errors["_form"]}
        return await _dnc_page(ctx, status=400 if exc.status != 409 else 409, errors=errors,
                               values=values)
    return await ctx.done("/settings/dnc?added=1")


@router.post("/settings/dnc/{entry_id}/remove")
async def remove_dnc(entry_id: str, ctx: Editor) -> Response:
    await compliance.remove_entry(ctx.s, ctx.p, entry_id)
    return await ctx.done("/settings/dnc?removed=1")


# ---------------------------------------------------------------- calling hours


async def _hours_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                      values: dict[str, Any] | None = None) -> Response:
    team = await teams.get_team(ctx.s, ctx.p.team_id)
    assert team is not None
    out = teams.team_out(team)
    settings = ctx.request.app.state.settings
    current = out["settings"]
    return _page(ctx, "settings/hours.html", status=status, errors=errors or {},
                 values=values or {k: current.get(k) or "" for k in (
                     "legal_hours_start", "legal_hours_end", "max_concurrent_calls",
                     "calls_per_second")},
                 floor=(settings.legal_hours_start, settings.legal_hours_end),
                 may_edit=ctx.user.role in ("owner", "admin"),
                 flash="Saved." if "saved" in ctx.request.query_params else None)


@router.get("/settings/calling-hours")
async def hours_page(ctx: Viewer) -> Response:
    return await _hours_page(ctx)


@router.post("/settings/calling-hours")
async def update_hours(ctx: Editor) -> Response:
    ctx.require("team")
    values = text_values(await read_form(ctx.request), (
        "legal_hours_start", "legal_hours_end", "max_concurrent_calls", "calls_per_second"))
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in ("legal_hours_start", "legal_hours_end"):
        changes[key] = values.get(key, "").strip() or None
    for key, kind in (("max_concurrent_calls", int), ("calls_per_second", float)):
        raw = values.get(key, "").strip()
        try:
            number = kind(raw) if raw else None
        except ValueError:
            errors[key] = "Must be a number"
            continue
        if number is not None and number <= 0:
            errors[key] = "Must be more than 0"
        changes[key] = number
    settings = ctx.request.app.state.settings
    try:
        if errors:
            raise ApiError(400, "Some values are not valid", errors)
        await teams.update_team(ctx.s, ctx.p.team_id, None, changes,
                                (settings.legal_hours_start, settings.legal_hours_end))
    except ApiError as exc:
        await ctx.s.rollback()
        mapped = {"legalHoursStart": "legal_hours_start", "legalHoursEnd": "legal_hours_end"}
        errors = {mapped.get(k, k): v for k, v in field_errors(exc).items()}
        return await _hours_page(ctx, status=400, errors=errors, values=values)
    return await ctx.done("/settings/calling-hours?saved=1")
