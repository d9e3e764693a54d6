"""The team do-not-call list: /api/dnc (SPEC 8). Every dial checks it."""

from __future__ import annotations

import csv
import itertools
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from callfleet import csvio
from callfleet.api.deps import Auth, Paging, Q, ReadSession, WriteSession, get_settings_dep
from callfleet.api.limits import body_limit
from callfleet.api.responses import JSON
from callfleet.api.schemas import CamelIn, OkOut, errors
from callfleet.compliance import audit, changes
from callfleet.compliance import service as svc
from callfleet.compliance.models import DncEntry
from callfleet.compliance.table import shipped_table
from callfleet.crm import fields as F
from callfleet.db.base import iso, utcnow
from callfleet.dialer.rules import WEEKDAYS, format_hhmm
from callfleet.errors import bad_request
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal

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
    removed_at: str | None


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
            "reason": e.reason, "source": e.source, "created_at": iso(e.created_at),
            "removed_at": iso(e.removed_at)}


def _phone(raw: str | None, region: str) -> str:
    try:
        value = F.normalize_phone(raw, region)
    except ValueError as exc:
        raise bad_request(f"phoneNumber {exc}", "phoneNumber") from None
    if value is None:
        raise bad_request("phoneNumber is required", "phoneNumber")
    return value


@router.get("", response_model=None, responses={200: {"model": DncList}, **errors()})
async def list_entries(p: Auth, s: ReadSession, page: Paging, search: Q = None,
                       includeRemoved: Q = None) -> JSON:
    """The numbers in force; ``includeRemoved=true`` also lists removed entries, which are
    kept as records of the request."""
    if includeRemoved not in (None, "", "true", "false"):
        raise bad_request("includeRemoved must be true or false", "includeRemoved")
    rows, total = await svc.list_entries(s, p, search, page.limit, page.offset,
                                         include_removed=includeRemoved == "true")
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


class SuppressionOut(BaseModel):
    id: str
    team_id: str
    kind: str
    name: str
    registry_date: str
    numbers: int
    age_days: int
    stale: bool
    warning: str | None
    created_at: str


class SuppressionImportOut(BaseModel):
    success: bool = True
    list: SuppressionOut
    failed: int
    errors: list[dict[str, Any]]


class SuppressionList(BaseModel):
    success: bool = True
    lists: list[SuppressionOut]
    count: int
    limit: int
    offset: int


@router.post("/national", status_code=201, response_model=None,
             responses={201: {"model": SuppressionImportOut}, **errors()},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/plain": {"schema": {"type": "string"}}}}})
async def import_national(request: Request, p: Auth, s: WriteSession, registryDate: Q = None,
                          name: Q = None) -> JSON:
    """A National Do Not Call Registry download (area code and number per line, e.g.
    ``201,2345678``) as a suppression list dated ``registryDate`` (YYYY-MM-DD, the date the
    registry produced it). Telemarketing calls skip every listed number. A list older than
    31 days comes back with a warning (the rules require a newer scrub)."""
    try:
        day = date.fromisoformat(registryDate or "")
    except ValueError:
        raise bad_request("registryDate must be a date like 2026-12-01", "registryDate") from None
    now = request.app.state.dialer.clock.now()
    registry = datetime.combine(day, time(0), UTC)
    if registry > now + timedelta(days=1):
        raise bad_request("registryDate is in the future", "registryDate")
    label = F.clean_text(name, 200) or f"National DNC registry {day.isoformat()}"
    raw = await request.body()
    if len(raw) > 100 * 1024 * 1024:
        raise bad_request("A registry import is limited to 100 MB (import area codes in parts)",
                          "body")
    numbers, errs = svc.registry_numbers(raw.decode("utf-8-sig", errors="replace").splitlines())
    if not numbers:
        raise bad_request("No area code and number lines found", "body")
    listing = await svc.import_registry(s, p, label, registry, numbers, now)
    await s.commit()
    return JSON({"success": True, "list": svc.suppression_out(listing, now),
                 "failed": len(errs), "errors": errs}, status_code=201)


@router.get("/national", response_model=None,
            responses={200: {"model": SuppressionList}, **errors()})
async def list_national(p: Auth, s: ReadSession, page: Paging, request: Request) -> JSON:
    now = request.app.state.dialer.clock.now()
    rows, total = await svc.list_suppressions(s, p, page.limit, page.offset)
    return page.respond("lists", [svc.suppression_out(x, now) for x in rows], total)


@router.delete("/national/{list_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404)})
async def delete_national(list_id: str, p: Auth, s: WriteSession) -> JSON:
    await svc.delete_suppression(s, p, list_id)
    await s.commit()
    return JSON({"success": True})


@router.post("/import", response_model=None,
             responses={200: {"model": DncImportOut}, **errors()},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/csv": {"schema": {"type": "string"}}}}})
@body_limit("dnc_import_max_bytes")
async def import_entries(request: Request, p: Auth, s: WriteSession) -> JSON:
    """CSV with a phone column (``phone``, ``phone_number``, ``Phone Number``…) or one number
    per line; optional ``reason`` column. Decoded like the contact import (BOM, declared
    charset, UTF-8 with a Windows-1252 fallback); up to ``CALLFLEET_DNC_IMPORT_MAX_BYTES``."""
    with tempfile.TemporaryFile() as spool:
        async for chunk in request.stream():  # capped while it streams (api/limits.py)
            spool.write(chunk)
        spool.seek(0)
        try:
            reader = csvio.reader(spool, csvio.charset_of(
                request.headers.get("content-type")))
        except csvio.UnknownCharset as exc:
            raise bad_request(str(exc), "Content-Type") from None
        return await _import_rows(s, p, reader, get_settings_dep(request).default_region)


async def _import_rows(s: Any, p: Principal, reader: Iterator[list[str]], region: str) -> JSON:
    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise bad_request(f"The CSV cannot be read: {exc}", "body") from None
    if first is None:
        raise bad_request("The CSV file is empty", "body")
    header = [h.strip().lower().replace(" ", "_") for h in first]
    phone_col = next((i for i, h in enumerate(header)
                      if h in ("phone", "phone_number", "number", "telephone")), None)
    reason_col = header.index("reason") if "reason" in header else None
    body_rows = reader if phone_col is not None else itertools.chain([first], reader)
    phone_col = phone_col or 0
    imported = skipped = failed = 0
    errs: list[dict[str, Any]] = []
    now = utcnow()
    try:
        for n, row in enumerate(body_rows, start=1):
            if not row or not any(c.strip() for c in row):
                continue
            cell = row[phone_col] if phone_col < len(row) else ""
            try:
                number = F.normalize_phone(cell, region)
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
            reason = (row[reason_col] if reason_col is not None and reason_col < len(row)
                      else None)
            await svc.add_to_dnc(s, p.team_id, number, F.clean_text(reason, 500) or "imported",
                                 "import", now)
            imported += 1
    except csv.Error as exc:
        raise bad_request(f"The CSV cannot be read: {exc}", "body") from None
    await s.commit()
    return JSON({"success": True, "imported": imported, "skipped": skipped, "failed": failed,
                 "errors": errs})


# ---------------------------------------------------------------- /api/compliance

compliance_router = APIRouter(prefix="/api/compliance", tags=["compliance"])


class DecisionOut(BaseModel):
    id: str
    team_id: str
    campaign_id: str | None
    enrollment_id: str | None
    contact_id: str | None
    call_id: str | None
    phone: str | None
    evaluated_at: str
    outcome: str
    reason: str | None
    rules_fired: list[str]
    table_version: str | None
    table_sha256: str | None
    purpose: str | None
    jurisdictions: list[dict[str, Any]]
    local_times: list[dict[str, Any]]
    next_allowed_at: str | None
    rules_applied: list[str]
    caps: list[dict[str, Any]]
    waived: list[str]
    margin_seconds: int | None
    defaulted: bool


class DecisionList(BaseModel):
    success: bool = True
    decisions: list[DecisionOut]
    count: int
    limit: int
    offset: int


class ComplianceSettingsIn(CamelIn):
    default_campaign_purpose: str | None = Field(default=None, max_length=20)
    margin_seconds: int | None = None
    frequency_cap_per_24h: int | None = Field(default=None, alias="frequencyCapPer24h")
    time_rules_for_all_purposes: bool | None = None
    attestations: list[str] | None = Field(default=None, max_length=10)
    jurisdiction_mode: str | None = Field(default=None, max_length=20)
    disabled_rules: list[str] | None = Field(default=None, max_length=200)
    rules: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    blackouts: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    retention_days: int | None = None
    business_name: str | None = Field(default=None, max_length=200)
    callback_number: str | None = Field(default=None, max_length=64)


class ComplianceSettingsEnvelope(BaseModel):
    success: bool = True
    settings: dict[str, Any]
    table_version: str


class ChangeList(BaseModel):
    success: bool = True
    changes: list[dict[str, Any]]
    count: int
    limit: int
    offset: int


class RuleTableOut(BaseModel):
    success: bool = True
    ruleset: str
    version: str
    sha256: str
    as_of: str
    jurisdictions: list[dict[str, Any]]
    rules: list[dict[str, Any]]


@compliance_router.get("/decisions", response_model=None,
                       responses={200: {"model": DecisionList}, **errors()})
async def list_decisions(
    p: Auth, s: ReadSession, page: Paging, contactId: Q = None, campaignId: Q = None,
    reason: Q = None, outcome: Q = None, evaluatedAfter: Q = None, evaluatedBefore: Q = None,
) -> JSON:
    """Why each dial was placed, deferred or refused: the reason, the rules that fired with
    the rule-table version, the jurisdictions and local times evaluated, the next allowed
    time. Newest first; docs/compliance.md explains each field."""
    filters = {"contactId": contactId, "campaignId": campaignId, "reason": reason,
               "outcome": outcome, "evaluatedAfter": evaluatedAfter,
               "evaluatedBefore": evaluatedBefore}
    items, total = await audit.list_decisions(s, p, filters, page.limit, page.offset)
    return page.respond("decisions", items, total)


@compliance_router.get("/settings", response_model=None,
                       responses={200: {"model": ComplianceSettingsEnvelope}, **errors()})
async def get_settings(p: Auth, s: ReadSession) -> JSON:
    team = await s.get(Team, p.team_id)
    assert team is not None
    return JSON({"success": True, "settings": audit.settings_out(team),
                 "table_version": shipped_table().version})


@compliance_router.patch("/settings", response_model=None,
                         responses={200: {"model": ComplianceSettingsEnvelope},
                                    **errors(403)})
async def update_settings(body: ComplianceSettingsIn, p: Auth, s: WriteSession,
                          request: Request) -> JSON:
    """Change the team's compliance settings. Stricter changes (a team rule, a cap, a larger
    margin) any write key may make; looser ones (disabling a shipped rule, attestations,
    time rules off for informational calls, a smaller margin, removing a rule or blackout)
    only an owner key. Every change is logged (``GET /api/compliance/changes``)."""
    now = request.app.state.dialer.clock.now()
    team = await audit.update_settings(s, p, body.model_dump(exclude_unset=True),
                                       shipped_table(), now)
    await s.commit()
    return JSON({"success": True, "settings": audit.settings_out(team),
                 "table_version": shipped_table().version})


@compliance_router.get("/changes", response_model=None,
                       responses={200: {"model": ChangeList}, **errors()})
async def list_changes(p: Auth, s: ReadSession, page: Paging) -> JSON:
    items, total = await changes.list_changes(s, p, page.limit, page.offset)
    return page.respond("changes", items, total)


@compliance_router.get("/rules", response_model=None,
                       responses={200: {"model": RuleTableOut}, **errors()})
async def rule_table(p: Auth) -> JSON:
    """The shipped rule table: every jurisdiction and rule with its sources, confidence and
    effective dates (the data the dialer applies)."""
    table = shipped_table()
    return JSON({
        "success": True, "ruleset": table.ruleset, "version": table.version,
        "sha256": table.sha256, "as_of": table.as_of.isoformat(),
        "jurisdictions": [{"code": j.code, "name": j.name, "zones": list(j.zones),
                           "area_code_presumption": j.area_code_presumption}
                          for j in table.jurisdictions.values()],
        "rules": [rule_out(r) for r in table.rules],
    })


def rule_out(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id, "jurisdiction": r.jurisdiction, "kind": r.kind,
        "purposes": sorted(r.purposes), "technologies": sorted(r.technologies),
        "confidence": r.confidence,
        "effective_from": r.effective_from.isoformat() if r.effective_from else None,
        "effective_to": r.effective_to.isoformat() if r.effective_to else None,
        "sources": [{"cite": x.cite, "url": x.url} for x in r.sources], "note": r.note,
    }
    if r.days is not None:
        out["days"] = {day: [[format_hhmm(a), format_hhmm(b)] for a, b in ranges]
                       for day, ranges in zip(WEEKDAYS, r.days, strict=True)}
    for key in ("calendar", "max_calls", "per_hours", "counts", "requires",
                "deadline_seconds", "also_in_zone"):
        if getattr(r, key) is not None:
            out[key] = getattr(r, key)
    return out
