"""HTTP for the CRM: parse, call crm.service, wrap in the envelope. No SQL here."""

from __future__ import annotations

import tempfile
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError

from callfleet import csvio
from callfleet.api.deps import (
    Auth,
    Paging,
    Q,
    ReadSession,
    WriteSession,
    get_db,
    get_settings_dep,
    parse_bool,
)
from callfleet.api.errors import validation_details
from callfleet.api.idempotency import respond_created
from callfleet.api.limits import body_limit, read_body
from callfleet.api.responses import JSON
from callfleet.api.schemas import OkOut, errors
from callfleet.crm import importer
from callfleet.crm import service as svc
from callfleet.crm.schemas import (
    CompanyEnvelope,
    CompanyIn,
    CompanyList,
    ContactDetailEnvelope,
    ContactEnvelope,
    ContactImportIn,
    ContactIn,
    ContactList,
    CustomFieldEnvelope,
    CustomFieldIn,
    CustomFieldList,
    ImportResult,
)
from callfleet.errors import ApiError, bad_request
from callfleet.recordings import delete_recordings

router = APIRouter(prefix="/api/crm", tags=["crm"])


def _region(request: Request) -> str:
    return get_settings_dep(request).default_region



# ---------------------------------------------------------------- companies


@router.post("/companies", status_code=201, response_model=None,
             responses={201: {"model": CompanyEnvelope}, **errors(403, 404, 409)})
async def create_company(body: CompanyIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    p.check_team(body.team_id)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        return {"success": True, "company": await svc.create_company(s, p, data, _region(request))}

    return await respond_created(request, s, p, make)


@router.get("/companies", response_model=None, responses={200: {"model": CompanyList},
                                                           **errors(403)})
async def list_companies(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, search: Q = None,
    industry: Q = None,
) -> JSON:
    p.check_team(teamId)
    items, total = await svc.list_companies(
        s, p, search=search, industry=industry, limit=page.limit, offset=page.offset
    )
    return page.respond("companies", items, total)


@router.get("/companies/{company_id}", response_model=None,
            responses={200: {"model": CompanyEnvelope}, **errors(403, 404)})
async def get_company(company_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "company": await svc.get_company(s, p, company_id)})


@router.patch("/companies/{company_id}", response_model=None,
              responses={200: {"model": CompanyEnvelope}, **errors(403, 404)})
async def update_company(
    company_id: str, body: CompanyIn, p: Auth, s: WriteSession, request: Request
) -> JSON:
    p.check_team(body.team_id, required=False)
    data = body.model_dump(exclude_unset=True)
    out = await svc.update_company(s, p, company_id, data, _region(request))
    await s.commit()
    return JSON({"success": True, "company": out})


@router.delete("/companies/{company_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404, 409)})
async def delete_company(company_id: str, p: Auth, s: WriteSession, cascade: Q = None) -> JSON:
    await svc.delete_company(s, p, company_id, bool(parse_bool(cascade, "cascade")))
    await s.commit()
    return JSON({"success": True})


@router.get("/companies/{company_id}/contacts", response_model=None,
            responses={200: {"model": ContactList}, **errors(403, 404)})
async def company_contacts(company_id: str, p: Auth, s: ReadSession, page: Paging) -> JSON:
    await svc.get_company(s, p, company_id)
    items, total = await svc.list_contacts(
        s, p, company_id=company_id, search=None, lead_status=None, do_not_call=None,
        has_phone=None, tag=None, limit=page.limit, offset=page.offset,
    )
    return page.respond("contacts", items, total)


# ---------------------------------------------------------------- contacts


@router.post("/contacts", status_code=201, response_model=None,
             responses={201: {"model": ContactEnvelope}, **errors(403, 404, 409)})
async def create_contact(body: ContactIn, p: Auth, request: Request) -> JSON:
    p.check_team(body.team_id)
    data = body.model_dump(exclude_unset=True)
    db = get_db(request)
    if "idempotency-key" not in request.headers:
        # One statement in autocommit (crm.service.create_contact): no session at all.
        contact = await svc.create_contact(db, p, data, _region(request))
        return JSON({"success": True, "contact": contact}, status_code=201)
    async with db.session() as s:

        async def make() -> dict[str, Any]:
            return {"success": True,
                    "contact": await svc.create_contact(db, p, data, _region(request), s)}

        return await respond_created(request, s, p, make)


@router.get("/contacts", response_model=None, responses={200: {"model": ContactList},
                                                          **errors(403)})
async def list_contacts(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, companyId: Q = None,
    search: Q = None, leadStatus: Q = None, doNotCall: Q = None, hasPhone: Q = None,
    tag: Q = None, campaignId: Q = None,
) -> JSON:
    p.check_team(teamId)
    items, total = await svc.list_contacts(
        s, p, company_id=companyId, search=search, lead_status=leadStatus,
        do_not_call=parse_bool(doNotCall, "doNotCall"), has_phone=parse_bool(hasPhone, "hasPhone"),
        tag=tag, limit=page.limit, offset=page.offset, campaign_id=campaignId,
    )
    return page.respond("contacts", items, total)


_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ContactImportIn.model_json_schema(by_alias=True)},
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post("/contacts/import", response_model=None, openapi_extra=_IMPORT_BODY,
             responses={200: {"model": ImportResult}, **errors(403, 404, 413)})
@body_limit("import_max_bytes")
async def import_contacts(
    request: Request, p: Auth, teamId: Q = None, companyId: Q = None, onDuplicate: Q = None,
) -> JSON:
    """Import contacts from JSON (``{teamId, companyId?, contacts: [...]}``, up to
    ``CALLFLEET_MAX_BODY_BYTES``), a ``text/csv`` body, or a multipart ``file``
    (``teamId``/``companyId`` as query parameters; up to ``CALLFLEET_IMPORT_MAX_BYTES``)."""
    settings = get_settings_dep(request)
    on_dup = (onDuplicate or "update").strip().lower()
    if on_dup not in ("skip", "update"):
        raise bad_request("onDuplicate must be skip or update", "onDuplicate")
    ctype = request.headers.get("content-type", "").lower()
    mime = ctype.split(";")[0].strip()
    if mime == "application/json":
        raw = await read_body(request, settings.max_body_bytes)
        try:
            payload = orjson.loads(raw)
            body = ContactImportIn.model_validate(payload)
        except orjson.JSONDecodeError:
            raise bad_request("Malformed JSON body", "body") from None
        except ValidationError as exc:
            details = validation_details(list(exc.errors()))
            first = next(iter(details.items()))
            raise ApiError(400, f"Invalid {first[0]}: {first[1]}", details) from None
        team_id = body.team_id if body.team_id is not None else teamId
        p.check_team(team_id)
        imp = _importer(request, p, body.company_id or companyId, on_dup)
        result = await imp.run(importer.json_rows(body.contacts))
        return JSON(result.out())
    p.check_team(teamId)
    charset = csvio.charset_of(ctype)
    if mime == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_request("multipart import needs a file field named 'file'", "file")
        imp = _importer(request, p, companyId, on_dup)
        await imp.start()
        result = await imp.run(importer.csv_rows(upload.file, charset))  # type: ignore[arg-type]
        return JSON(result.out())
    if mime in ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"):
        imp = _importer(request, p, companyId, on_dup)
        await imp.start()  # fail fast on a bad companyId before reading the upload
        with tempfile.TemporaryFile() as spool:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.seek(0)
            result = await imp.run(importer.csv_rows(spool, charset))
        return JSON(result.out())
    raise bad_request(
        "Content-Type must be application/json, text/csv or multipart/form-data", "Content-Type"
    )


def _importer(request: Request, p: Any, company_id: str | None, on_dup: str) -> Any:
    settings = get_settings_dep(request)
    return importer.ContactImporter(
        get_db(request), p, company_id=company_id, on_duplicate=on_dup,
        region=settings.default_region, batch_size=settings.import_batch_size,
        max_errors=settings.import_max_errors,
    )


@router.get("/contacts/{contact_id}", response_model=None,
            responses={200: {"model": ContactDetailEnvelope}, **errors(403, 404)})
async def get_contact(contact_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "contact": await svc.get_contact(s, p, contact_id)})


@router.patch("/contacts/{contact_id}", response_model=None,
              responses={200: {"model": ContactEnvelope}, **errors(403, 404)})
async def update_contact(
    contact_id: str, body: ContactIn, p: Auth, s: WriteSession, request: Request
) -> JSON:
    p.check_team(body.team_id, required=False)
    data = body.model_dump(exclude_unset=True)
    out = await svc.update_contact(s, p, contact_id, data, _region(request))
    await s.commit()
    return JSON({"success": True, "contact": out})


@router.delete("/contacts/{contact_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404, 409)})
async def delete_contact(contact_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Delete a contact, and the recordings of its calls."""
    recorded = await svc.delete_contact(s, p, contact_id)
    await s.commit()
    await delete_recordings(request.app.state.recordings, recorded)
    return JSON({"success": True})


# ---------------------------------------------------------------- custom fields


@router.post("/custom-fields", status_code=201, response_model=None,
             responses={201: {"model": CustomFieldEnvelope}, **errors(403, 409)})
async def create_custom_field(
    body: CustomFieldIn, p: Auth, s: WriteSession, request: Request
) -> JSON:
    p.check_team(body.team_id)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        return {"success": True, "custom_field": await svc.create_custom_field(s, p, data)}

    return await respond_created(request, s, p, make)


@router.get("/custom-fields", response_model=None,
            responses={200: {"model": CustomFieldList}, **errors(403)})
async def list_custom_fields(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, entityType: Q = None
) -> JSON:
    p.check_team(teamId)
    items, total = await svc.list_custom_fields(s, p, entityType, page.limit, page.offset)
    return page.respond("custom_fields", items, total)


@router.get("/custom-fields/{cf_id}", response_model=None,
            responses={200: {"model": CustomFieldEnvelope}, **errors(403, 404)})
async def get_custom_field(cf_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "custom_field": await svc.get_custom_field(s, p, cf_id)})


@router.patch("/custom-fields/{cf_id}", response_model=None,
              responses={200: {"model": CustomFieldEnvelope}, **errors(403, 404)})
async def update_custom_field(cf_id: str, body: CustomFieldIn, p: Auth, s: WriteSession) -> JSON:
    p.check_team(body.team_id, required=False)
    out = await svc.update_custom_field(s, p, cf_id, body.model_dump(exclude_unset=True))
    await s.commit()
    return JSON({"success": True, "custom_field": out})


@router.delete("/custom-fields/{cf_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404)})
async def delete_custom_field(cf_id: str, p: Auth, s: WriteSession) -> JSON:
    await svc.delete_custom_field(s, p, cf_id)
    await s.commit()
    return JSON({"success": True})
