"""Companies: the list, the company page with its contacts, create, edit and delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from callfleet.crm import service as crm
from callfleet.crm.models import Company
from callfleet.crm.views import company_out
from callfleet.errors import ApiError
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import (
    checked,
    compact,
    custom_form_values,
    field_errors,
    int_param,
    text_values,
)
from callfleet.web.listing import list_page
from callfleet.web.pages.contacts import custom_definitions
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
COMPANY_FIELDS = {
    "name": "name", "website": "website", "industry": "industry",
    "companySize": "company_size", "phone": "phone", "addressLine1": "address_line1",
    "addressLine2": "address_line2", "city": "city", "state": "state",
    "postalCode": "postal_code", "country": "country", "notes": "notes",
}



@router.get("/companies")
async def companies_page(ctx: Viewer) -> Response:
    async def fetch(f: dict[str, str | None], offset: int) -> tuple[list[dict[str, Any]], int]:
        return await crm.list_companies(ctx.s, ctx.p, search=f["search"],
                                        industry=f["industry"], limit=PAGE_SIZE, offset=offset)

    return await list_page(ctx, path="/companies", name="companies",
                           filters=("search", "industry"), fetch=fetch, page_size=PAGE_SIZE)


def company_data(form: Any, definitions: list[dict[str, Any]], *, editing: bool,
                 current_custom: dict[str, Any] | None = None) -> dict[str, Any]:
    values = text_values(form)
    data: dict[str, Any] = {v: values[k] for k, v in COMPANY_FIELDS.items() if k in values}
    keys = [d["key"] for d in definitions] + list(current_custom or {})
    custom = {k: (values.get(f"custom.{k}") or None) for k in dict.fromkeys(keys)
              if f"custom.{k}" in values}
    if not editing:
        data, custom = compact(data), compact(custom)
    if custom:
        data["custom_fields"] = custom
    return data


async def _form_page(ctx: Ctx, *, company: dict[str, Any] | None, values: dict[str, Any],
                     errors: dict[str, str] | None = None, status: int = 200) -> Response:
    return page(ctx.request, "companies/form.html", user=ctx.user, status=status,
                company=company, values=values, errors=errors or {},
                definitions=await custom_definitions(ctx, "company"))


@router.get("/companies/new")
async def new_company_page(ctx: Viewer) -> Response:
    return await _form_page(ctx, company=None, values={})


@router.post("/companies/new")
async def create_company(ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    data = company_data(form, await custom_definitions(ctx, "company"), editing=False)
    try:
        company = await crm.create_company(ctx.s, ctx.p, data, ctx.region)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _form_page(ctx, company=None, values=text_values(form),
                                errors=field_errors(exc), status=400)
    return await ctx.done(f"/companies/{company['id']}?created=1")


async def _detail(ctx: Ctx, company_id: str, **extra: Any) -> Response:
    row = await ctx.p.scope.get(ctx.s, Company, company_id)
    offset = int_param(ctx.request.query_params.get("offset"), 0)
    contacts, total = await crm.list_contacts(
        ctx.s, ctx.p, company_id=company_id, search=None, lead_status=None, do_not_call=None,
        has_phone=None, tag=None, limit=PAGE_SIZE, offset=offset)
    # The unfiltered list's total is the company's contact count: counted once, not twice.
    company = company_out(row, total)
    definitions = {d["key"]: d for d in await custom_definitions(ctx, "company")}
    params = ctx.request.query_params
    flash = ("Company created." if "created" in params
             else "Changes saved." if "saved" in params else None)
    return page(ctx.request, "companies/detail.html", user=ctx.user, company=company,
                contacts=contacts, total=total, offset=offset, page_size=PAGE_SIZE,
                definitions=definitions, flash=flash, **extra)


@router.get("/companies/{company_id}")
async def company_page(company_id: str, ctx: Viewer) -> Response:
    return await _detail(ctx, company_id)


@router.get("/companies/{company_id}/edit")
async def edit_company_page(company_id: str, ctx: Viewer) -> Response:
    company = await crm.get_company(ctx.s, ctx.p, company_id)
    values: dict[str, Any] = {k: company.get(v) or "" for k, v in COMPANY_FIELDS.items()}
    values.update(custom_form_values(company.get("custom_fields")))
    return await _form_page(ctx, company=company, values=values)


@router.post("/companies/{company_id}/edit")
async def update_company(company_id: str, ctx: Editor) -> Response:
    company = await crm.get_company(ctx.s, ctx.p, company_id)
    form = await read_form(ctx.request)
    data = company_data(form, await custom_definitions(ctx, "company"), editing=True,
                        current_custom=company.get("custom_fields"))
    try:
        await crm.update_company(ctx.s, ctx.p, company_id, data, ctx.region)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _form_page(ctx, company=company, values=text_values(form),
                                errors=field_errors(exc), status=400)
    return await ctx.done(f"/companies/{company_id}?saved=1")


@router.post("/companies/{company_id}/delete")
async def delete_company(company_id: str, ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    try:
        await crm.delete_company(ctx.s, ctx.p, company_id, checked(form, "cascade"))
    except ApiError as exc:
        if exc.status != 409:
            raise
        await ctx.s.rollback()
        return await _detail(ctx, company_id, status=409, errors={"_form": exc.error})
    return await ctx.done("/companies?deleted=1")
