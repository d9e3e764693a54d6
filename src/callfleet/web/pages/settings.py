"""Settings: the team, members and invitations, custom fields, and your own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from callfleet.crm import fields as crm_fields
from callfleet.crm import service as crm
from callfleet.errors import ApiError
from callfleet.teams import service as teams
from callfleet.teams import signin, users
from callfleet.teams.models import ROLES, User
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import checked, field_errors, text_values
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)


def _settings_page(ctx: Ctx, template: str, *, status: int = 200, **context: Any) -> Response:
    return page(ctx.request, template, user=ctx.user, status=status, **context)


def _saved(ctx: Ctx) -> str | None:
    return "Changes saved." if "saved" in ctx.request.query_params else None


@router.get("/settings")
async def settings_home() -> Response:
    return RedirectResponse("/settings/team", status_code=303)


# ---------------------------------------------------------------- team


async def _team_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                     values: dict[str, Any] | None = None) -> Response:
    team = await teams.get_team(ctx.s, ctx.p.team_id)
    assert team is not None
    out = teams.team_out(team)
    return _settings_page(ctx, "settings/team.html", status=status, team=out,
                          errors=errors or {}, values=values or {"name": out["name"]},
                          flash=_saved(ctx), may_edit=users.can(ctx.user.role, "team"))


@router.get("/settings/team")
async def team_page(ctx: Viewer) -> Response:
    return await _team_page(ctx)


@router.post("/settings/team")
async def update_team(ctx: Editor) -> Response:
    ctx.require("team")
    values = text_values(await read_form(ctx.request), ("name",))
    settings = ctx.request.app.state.settings
    try:
        await teams.update_team(ctx.s, ctx.p.team_id, values.get("name", ""), {},
                                (settings.legal_hours_start, settings.legal_hours_end))
    except ApiError as exc:
        await ctx.s.rollback()
        return await _team_page(ctx, status=400, errors=field_errors(exc), values=values)
    return await ctx.done("/settings/team?saved=1")


# ---------------------------------------------------------------- members and invitations


async def _members_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                        invite_url: str | None = None, flash: str | None = None) -> Response:
    return _settings_page(
        ctx, "settings/members.html", status=status, errors=errors or {},
        members=await users.list_members(ctx.s, ctx.p),
        invites=await signin.pending_invites(ctx.s, ctx.p), roles=ROLES,
        may_manage=users.can(ctx.user.role, "members"),
        may_grant_owner=users.can(ctx.user.role, "owners"),
        invite_url=invite_url, flash=flash or _saved(ctx))


@router.get("/settings/members")
async def members_page(ctx: Viewer) -> Response:
    return await _members_page(ctx)


def link_url(ctx: Ctx, token: str) -> str:
    return str(ctx.request.base_url).rstrip("/") + f"/signin/{token}"


@router.post("/settings/members/invite")
async def invite(ctx: Editor) -> Response:
    ctx.require("members")
    values = text_values(await read_form(ctx.request), ("email", "role"))
    try:
        role = users.check_role(values.get("role"))
        if role == "owner":
            ctx.require("owners")
        email = users.normalize_email(values["email"]) if values.get("email") else None
        token = await signin.create_link(ctx.s, ctx.p.team_id, purpose="invite", role=role,
                                         email=email, created_by=ctx.user.user_id)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _members_page(ctx, status=400, errors=field_errors(exc))
    await ctx.s.commit()
    return await _members_page(ctx, invite_url=link_url(ctx, token),
                               flash="Invitation created. Copy the link now: it is shown once.")


@router.post("/settings/invites/{link_id}/revoke")
async def revoke_invite(link_id: str, ctx: Editor) -> Response:
    ctx.require("members")
    await signin.revoke_invite(ctx.s, ctx.p, link_id)
    return await ctx.done("/settings/members?saved=1")


@router.post("/settings/members/{user_id}/role")
async def change_role(user_id: str, ctx: Editor) -> Response:
    values = text_values(await read_form(ctx.request), ("role",))
    try:
        await users.change_role(ctx.s, ctx.p, ctx.user.role, user_id, values.get("role"))
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        return await _members_page(ctx, status=exc.status, errors=field_errors(exc))
    return await ctx.done("/settings/members?saved=1")


@router.post("/settings/members/{user_id}/remove")
async def remove_member(user_id: str, ctx: Editor) -> Response:
    try:
        await users.remove_member(ctx.s, ctx.p, ctx.user.role, user_id)
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        return await _members_page(ctx, status=exc.status, errors=field_errors(exc))
    await ctx.s.commit()
    if user_id == ctx.user.user_id:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/settings/members?saved=1", status_code=303)


# ---------------------------------------------------------------- custom fields


async def _fields_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                       values: dict[str, Any] | None = None) -> Response:
    items, _ = await crm.list_custom_fields(ctx.s, ctx.p, None, 1000, 0)
    params = ctx.request.query_params
    flash = ("Custom field created." if "created" in params
             else "Custom field deleted." if "deleted" in params else _saved(ctx))
    return _settings_page(ctx, "settings/custom_fields.html", status=status, fields=items,
                          errors=errors or {}, values=values or {"entityType": "contact",
                                                                 "type": "text"},
                          types=crm_fields.FIELD_TYPES, entity_types=crm_fields.ENTITY_TYPES,
                          flash=flash)


def field_data(form: Any) -> dict[str, Any]:
    values = text_values(form, ("key", "name", "type", "options", "entityType", "description"))
    data: dict[str, Any] = {
        "key": values.get("key"), "name": values.get("name"), "type": values.get("type"),
        "entity_type": values.get("entityType"), "description": values.get("description"),
        "required": checked(form, "required"),
    }
    if "options" in values:
        lines = values["options"].replace(",", "\n").splitlines()
        data["options"] = [o.strip() for o in lines if o.strip()][:500]
    return data


@router.get("/settings/custom-fields")
async def custom_fields_page(ctx: Viewer) -> Response:
    return await _fields_page(ctx)


@router.post("/settings/custom-fields")
async def create_custom_field(ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    try:
        await crm.create_custom_field(ctx.s, ctx.p, field_data(form))
    except ApiError as exc:
        await ctx.s.rollback()
        return await _fields_page(ctx, status=400, errors=field_errors(exc),
                                  values=text_values(form))
    return await ctx.done("/settings/custom-fields?created=1")


async def _field_form(ctx: Ctx, cf_id: str, *, status: int = 200,
                      errors: dict[str, str] | None = None,
                      values: dict[str, Any] | None = None) -> Response:
    definition = await crm.get_custom_field(ctx.s, ctx.p, cf_id)
    if values is None:
        values = {"name": definition["name"], "type": definition["type"],
                  "options": "\n".join(definition["options"] or []),
                  "description": definition["description"] or "",
                  "required": definition["required"]}
    return _settings_page(ctx, "settings/custom_field_edit.html", status=status,
                          field=definition, values=values, errors=errors or {},
                          types=crm_fields.FIELD_TYPES)


@router.get("/settings/custom-fields/{cf_id}")
async def custom_field_page(cf_id: str, ctx: Viewer) -> Response:
    return await _field_form(ctx, cf_id)


@router.post("/settings/custom-fields/{cf_id}")
async def update_custom_field(cf_id: str, ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    data = field_data(form)
    data.pop("key", None)
    data.pop("entity_type", None)
    try:
        await crm.update_custom_field(ctx.s, ctx.p, cf_id, data)
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        values = text_values(form)
        values["required"] = checked(form, "required")
        return await _field_form(ctx, cf_id, status=400, errors=field_errors(exc),
                                 values=values)
    return await ctx.done("/settings/custom-fields?saved=1")


@router.post("/settings/custom-fields/{cf_id}/delete")
async def delete_custom_field(cf_id: str, ctx: Editor) -> Response:
    await crm.delete_custom_field(ctx.s, ctx.p, cf_id)
    return await ctx.done("/settings/custom-fields?deleted=1")


# ---------------------------------------------------------------- your account


async def _account_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                        flash: str | None = None) -> Response:
    return _settings_page(ctx, "settings/account.html", status=status, errors=errors or {},
                          flash=flash)


@router.get("/settings/account")
async def account_page(ctx: Viewer) -> Response:
    return await _account_page(ctx)


@router.post("/settings/account/password")
async def change_password(ctx: Editor) -> Response:
    values = text_values(await read_form(ctx.request), ("current", "password"))
    user = await ctx.s.get(User, ctx.user.user_id)
    assert user is not None
    if not await users.password_matches(user.password_hash, values.get("current", "")):
        return await _account_page(ctx, status=400,
                                   errors={"current": "The current password is not correct"})
    try:
        await users.set_password(ctx.s, user, values.get("password"),
                                 keep_session=ctx.user.session_id)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _account_page(ctx, status=400, errors=field_errors(exc))
    await ctx.s.commit()
    return await _account_page(ctx, flash="Password changed. Your other sessions were signed "
                                          "out.")
