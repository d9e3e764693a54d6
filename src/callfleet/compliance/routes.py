"""The team do-not-call list: /api/dnc (SPEC 8). Every dial checks it."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from callfleet.api.deps import Auth, Paging, Q, ReadSession, WriteSession, get_settings_dep
from callfleet.api.responses import JSON
from callfleet.api.schemas import CamelIn, OkOut, errors
from callfleet.compliance import service as svc
from callfleet.compliance.models import DncEntry
from callfleet.crm import fields as F
from callfleet.db.base import iso, utcnow
from callfleet.errors import bad_request

router = APIRouter(prefix="/api/dnc", tags=["compliance"])


class DncIn(CamelIn):
    phone_number: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)


class DncOut(BaseModel):
    id: str
    team_id: str
    phone_number: str
    reason: str | None
    source: str | None
    created_at: str


class DncEnvelope(BaseModel):
    success: bool = True
    entry: DncOut


class DncList(BaseModel):
    success: bool = True
    entries: list[DncOut]
    count: int
    limit: int
    offset: int


class DncImportOut(BaseModel):
    success: bool = True
    imported: int
    skipped: int
    failed: int
    errors: list[dict[str, Any]]


def entry_out(e: DncEntry) -> dict[str, Any]:
    return {"id": e.id, "team_id": e.team_id, "phone_number": e.phone_number,
            "reason": e.reason, "source": e.source, "created_at": iso(e.created_at)}


def _phone(raw: str | None, region: str) -> str:
    try:
        value = F.normalize_phone(raw, region)
    except ValueError as exc:
        raise bad_request(f"phoneNumber {exc}", "phoneNumber") from None
    if value is None:
        raise bad_request("phoneNumber is required", "phoneNumber")
    return value


@router.get("", response_model=None, responses={200: {"model": DncList}, **errors()})
async def list_entries(p: Auth, s: ReadSession, page: Paging, search: Q = None) -> JSON:
    rows, total = await svc.list_entries(s, p, search, page.limit, page.offset)
    return page.respond("entries", [entry_out(e) for e in rows], total)


@router.post("", status_code=201, response_model=None,
             responses={201: {"model": DncEnvelope}, **errors(409)})
async def add_entry(body: DncIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    number = _phone(body.phone_number, get_settings_dep(request).default_region)
    entry = await svc.add_entry(s, p, number, body.reason)
    await s.commit()
    return JSON({"success": True, "entry": entry_out(entry)}, status_code=201)


@router.delete("/{entry_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404)})
async def remove_entry(entry_id: str, p: Auth, s: WriteSession) -> JSON:
    await svc.remove_entry(s, p, entry_id)
    await s.commit()
    return JSON({"success": True})


@router.post("/import", response_model=None,
             responses={200: {"model": DncImportOut}, **errors()},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/csv": {"schema": {"type": "string"}}}}})
async def import_entries(request: Request, p: Auth, s: WriteSession) -> JSON:
    """CSV with a phone column (``phone``, ``phone_number``, ``Phone Number``…) or one number
    per line; optional ``reason`` column."""
    raw = await request.body()
    if len(raw) > 50 * 1024 * 1024:
        raise bad_request("DNC import is limited to 50 MB", "body")
    text = raw.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise bad_request("The CSV file is empty", "body")
    header = [h.strip().lower().replace(" ", "_") for h in rows[0]]
    phone_col = next((i for i, h in enumerate(header)
                      if h in ("phone", "phone_number", "number", "telephone")), None)
    reason_col = header.index("reason") if "reason" in header else None
    body_rows = rows[1:] if phone_col is not None else rows
    phone_col = phone_col or 0
    region = get_settings_dep(request).default_region
    imported = skipped = failed = 0
    errs: list[dict[str, Any]] = []
    now = utcnow()
    for n, row in enumerate(body_rows, start=1):
        if not row or not any(c.strip() for c in row):
            continue
        try:
            number = F.normalize_phone(row[phone_col] if phone_col < len(row) else "", region)
        except ValueError as exc:
            failed += 1
            if len(errs) < 1000:
                errs.append({"row": n, "error": f"phone {exc}"})
            continue
        if number is None:
            failed += 1
            continue
        if await svc.is_listed(s, p.scope, number):
            skipped += 1
            continue
        reason = row[reason_col] if reason_col is not None and reason_col < len(row) else None
        await svc.add_to_dnc(s, p.team_id, number, F.clean_text(reason, 500) or "imported",
                         "import", now)
        imported += 1
    await s.commit()
    return JSON({"success": True, "imported": imported, "skipped": skipped, "failed": failed,
                 "errors": errs})
