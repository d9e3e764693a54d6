"""Contacts: the searchable table, the contact page, create and edit.

The table runs the API's own list query (``crm.service.list_contacts``: the search index,
the filters, the deep-page plan), so it is as fast at a million contacts as the API is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from callfleet.calls import lookups as call_lookups
from callfleet.crm import fields as crm_fields
from callfleet.crm import lookups
from callfleet.crm import service as crm
from callfleet.errors import ApiError
from callfleet.recordings import delete_recordings
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import (
    checked,
    compact,
    custom_form_values,
    field_errors,
    query_text,
    text_values,
    time_zones,
)
from callfleet.web.listing import list_page
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
FILTERS = ("search", "leadStatus", "companyId", "doNotCall", "hasPhone", "tag")
# Form field (the API's name) -> the service's key.
CONTACT_FIELDS = {
    "companyId": "company_id", "firstName": "first_name", "lastName": "last_name",
    "email": "email", "phone": "phone", "phoneSecondary": "phone_secondary",
    "jobTitle": "job_title", "leadStatus": "lead_status", "source": "source",
    "timezone": "timezone", "preferredContactMethod": "preferred_contact_method",
    "notes": "notes", "tags": "tags",
}
YES_NO = {"true": True, "false": False}



@router.get("/contacts")
async def contacts_page(ctx: Viewer) -> Response:
    async def fetch(f: dict[str, str | None], offset: int) -> tuple[list[dict[str, Any]], int]:
        return await crm.list_contacts(
            ctx.s, ctx.p, company_id=f["companyId"], search=f["search"],
            lead_status=f["leadStatus"], do_not_call=YES_NO.get(f["doNotCall"] or ""),
            has_phone=YES_NO.get(f["hasPhone"] or ""), tag=f["tag"], limit=PAGE_SIZE,
            offset=offset)

    async def names(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"company_names": await lookups.company_names(
            ctx.s, ctx.p, (c["company_id"] for c in items))}

    async def choices() -> dict[str, Any]:
        return {"companies": (await lookups.company_choices(ctx.s, ctx.p, 500))[0]}

    return await list_page(ctx, path="/contacts", name="contacts", filters=FILTERS,
                           fetch=fetch, page_size=PAGE_SIZE, decorate=names, full=choices,
                           extra={"lead_statuses": crm_fields.LEAD_STATUSES})


async def company_ref(ctx: Ctx, company_id: str) -> dict[str, str]:
    """The contact's company as a page links it: id and name (no contact count: counting a
    company of a million contacts is the company page's work, not the contact's)."""
    names = await lookups.company_names(ctx.s, ctx.p, [company_id])
    return {"id": company_id, "name": names.get(company_id, company_id)}


async def custom_definitions(ctx: Ctx, entity: str) -> list[dict[str, Any]]:
    """The team's custom field definitions of ``contact`` or ``company``."""
    items, _ = await crm.list_custom_fields(ctx.s, ctx.p, entity, 500, 0)
    return items


def contact_data(form: Any, definitions: list[dict[str, Any]], *, editing: bool,
                 current_custom: dict[str, Any] | None = None) -> dict[str, Any]:
    """The service's input from the form: on create, blank fields are left out; on edit,
    a blank field clears the value (and a blank custom field removes it)."""
    values = text_values(form)
    data: dict[str, Any] = {CONTACT_FIELDS[k]: values.get(k, "") for k in CONTACT_FIELDS
                            if k in values}
    data["do_not_call"] = checked(form, "doNotCall")
    keys = [d["key"] for d in definitions] + [k for k in (current_custom or {})
                                              if k not in {d["key"] for d in definitions}]
    custom = {k: (values.get(f"custom.{k}") or None) for k in keys if f"custom.{k}" in values}
    if editing:
        if custom:
            data["custom_fields"] = custom
        return data
    data = compact(data)
    data["do_not_call"] = checked(form, "doNotCall")
    custom = compact(custom)
    if custom:
        data["custom_fields"] = custom
    return data


def precheck(data: dict[str, Any], region: str, *, editing: bool) -> dict[str, str]:
    """Every field's error at once (the service stops at the first): each value through the
    API's own normaliser, one field at a time."""
    errors: dict[str, str] = {}
    for key in ("first_name", "last_name", "company_id"):
        if (editing and key not in data) or (data.get(key) or "").strip():
            continue
        name = next(k for k, v in CONTACT_FIELDS.items() if v == key)
        errors[name] = "Is required"
    for key, value in data.items():
        if key in ("first_name", "last_name", "company_id", "custom_fields"):
            continue
        try:
            crm.contact_values({key: value}, region)
        except ApiError as exc:
            errors.update(field_errors(exc))
    return errors


async def _form_page(ctx: Ctx, *, contact: dict[str, Any] | None, values: dict[str, Any],
                     errors: dict[str, str] | None = None, status: int = 200) -> Response:
    companies, more = await lookups.company_choices(ctx.s, ctx.p)
    return page(ctx.request, "contacts/form.html", user=ctx.user, status=status,
                contact=contact, values=values, errors=errors or {},
                definitions=await custom_definitions(ctx, "contact"), companies=companies,
                more_companies=more, lead_statuses=crm_fields.LEAD_STATUSES,
                time_zones=time_zones())


def _form_values(contact: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {k: contact.get(v) or "" for k, v in CONTACT_FIELDS.items()}
    values["tags"] = ", ".join(contact.get("tags") or [])
    values["doNotCall"] = contact.get("do_not_call")
    values.update(custom_form_values(contact.get("custom_fields")))
    return values


@router.get("/contacts/new")
async def new_contact_page(ctx: Viewer) -> Response:
    company = query_text(ctx.request.query_params, "companyId") or ""
    return await _form_page(ctx, contact=None, values={"companyId": company,
                                                       "leadStatus": "new"})


@router.post("/contacts/new")
async def create_contact(ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    definitions = await custom_definitions(ctx, "contact")
    data = contact_data(form, definitions, editing=False)
    errors = precheck(data, ctx.region, editing=False)
    if errors:
        return await _form_page(ctx, contact=None, values=text_values(form), errors=errors,
                                status=400)
    try:
        contact = await crm.create_contact(ctx.request.app.state.db, ctx.p, data,
                                           ctx.region, ctx.s)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _form_page(ctx, contact=None, values=text_values(form),
                                errors=field_errors(exc), status=400)
    return await ctx.done(f"/contacts/{contact['id']}?created=1")


@router.get("/contacts/{contact_id}")
async def contact_page(contact_id: str, ctx: Viewer) -> Response:
    contact = await crm.get_contact(ctx.s, ctx.p, contact_id)
    company = await company_ref(ctx, contact["company_id"])
    definitions = {d["key"]: d for d in await custom_definitions(ctx, "contact")}
    params = ctx.request.query_params
    flash = ("Contact created." if "created" in params
             else "Changes saved." if "saved" in params
             else "The values that call wrote were undone." if "reverted" in params else None)
    learned = await call_lookups.extractions_for_contact(ctx.s, ctx.p, contact_id)
    return page(ctx.request, "contacts/detail.html", user=ctx.user, contact=contact,
                company=company, definitions=definitions, flash=flash, learned=learned)


@router.get("/contacts/{contact_id}/edit")
async def edit_contact_page(contact_id: str, ctx: Viewer) -> Response:
    contact = await crm.get_contact(ctx.s, ctx.p, contact_id)
    return await _form_page(ctx, contact=contact, values=_form_values(contact))


@router.post("/contacts/{contact_id}/edit")
async def update_contact(contact_id: str, ctx: Editor) -> Response:
    contact = await crm.get_contact(ctx.s, ctx.p, contact_id)
    form = await read_form(ctx.request)
    data = contact_data(form, await custom_definitions(ctx, "contact"), editing=True,
                        current_custom=contact.get("custom_fields"))
    errors = precheck(data, ctx.region, editing=True)
    try:
        if errors:
            raise ApiError(400, "Invalid contact")
        await crm.update_contact(ctx.s, ctx.p, contact_id, data, ctx.region)
    except ApiError as exc:
        await ctx.s.rollback()
        values = text_values(form)
        values["doNotCall"] = checked(form, "doNotCall")
        return await _form_page(ctx, contact=contact, values=values,
                                errors=errors or field_errors(exc), status=400)
    return await ctx.done(f"/contacts/{contact_id}?saved=1")


@router.post("/contacts/{contact_id}/delete")
async def delete_contact(contact_id: str, ctx: Editor) -> Response:
    try:
        recorded = await crm.delete_contact(ctx.s, ctx.p, contact_id)
    except ApiError as exc:
        if exc.status != 409:
            raise
        await ctx.s.rollback()
        contact = await crm.get_contact(ctx.s, ctx.p, contact_id)
        company = await company_ref(ctx, contact["company_id"])
        definitions = {d["key"]: d for d in await custom_definitions(ctx, "contact")}
        return page(ctx.request, "contacts/detail.html", user=ctx.user, status=409,
                    contact=contact, company=company, definitions=definitions,
                    errors={"_form": exc.error}, learned=[])
    done = await ctx.done("/contacts?deleted=1")
    await delete_recordings(ctx.request.app.state.recordings, recorded)
    return done
