"""Writing an analysis's findings: values into the contact (custom fields, or the standard
field a field's ``target`` names), the analysis onto the call, and their events, all in the
caller's transaction (which has fenced the job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls.models import Call, CallEvent
from callfleet.calls.views import call_out
from callfleet.conversation.analysis.findings import Findings, extraction_fields
from callfleet.crm import fields as F
from callfleet.crm.events import emit_contact_updated
from callfleet.crm.models import Contact
from callfleet.crm.service import load_definitions, refresh_search_columns
from callfleet.db.base import iso, utcnow
from callfleet.db.staging import stage
from callfleet.webhooks.outbox import emit

STANDARD_TARGETS = ("email", "job_title", "lead_status", "timezone", "phone_secondary", "notes")


def current_value(contact: Contact, target: str, key: str) -> Any:
    if target == "custom_fields":
        return (contact.custom_fields or {}).get(key)
    return getattr(contact, target)


def standard_value(target: str, value: Any, previous: Any, region: str) -> Any:
    text = value if isinstance(value, str) else str(value)
    if target == "email":
        return F.normalize_email(text)
    if target == "phone_secondary":
        return F.normalize_phone(text, region)
    if target == "timezone":
        return F.normalize_timezone(text)
    if target == "lead_status":
        return F.normalize_lead_status(text)
    if target == "job_title":
        return F.clean_text(text, 300)
    if target == "notes":
        line = F.clean_text(text, 20_000)
        if not line:
            return None
        if previous and line in str(previous):
            return previous
        return f"{previous}\n{line}" if previous else line
    raise ValueError(f"unknown target {target}")


def apply_values(contact: Contact, fields: list[dict[str, Any]],
                 values: dict[str, tuple[Any, float | None]],
                 definitions: dict[str, tuple[str, list[str] | None]], region: str
                 ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Write extracted values into the contact. Returns (extracted_data, changed contact
    fields, rejected {key: reason})."""
    extracted: dict[str, Any] = {}
    changed: set[str] = set()
    rejected: dict[str, str] = {}
    for f in fields:
        key = f["key"]
        if key not in values:
            continue
        value, confidence = values[key]
        target = f.get("target") or "custom_fields"
        previous = current_value(contact, target, key)
        try:
            if target == "custom_fields":
                if key in definitions:
                    ftype, options = definitions[key]
                    written = F.coerce_custom_value(value, ftype, options)
                else:
                    written = F.check_custom_fields({key: value}, {})[key]
            elif target in STANDARD_TARGETS:
                if target == "lead_status" and (contact.do_not_call
                                                or contact.lead_status == "do_not_contact"):
                    raise ValueError("is not changed for a contact who opted out")
                written = standard_value(target, value, previous, region)
            else:
                raise ValueError(f"has unknown target {target}")
        except (ValueError, TypeError) as exc:
            rejected[key] = f"{key} {exc}"
            continue
        if written is None:
            continue
        item: dict[str, Any] = {"value": value if target == "notes" else written,
                                "previous": previous, "target": target,
                                "changed": written != previous}
        if target == "notes":
            item["written"] = written
        if confidence is not None:
            item["confidence"] = confidence
        extracted[key] = item
        if written == previous:
            continue
        if target == "custom_fields":
            custom = dict(contact.custom_fields or {})
            custom[key] = written
            contact.custom_fields = custom
            changed.add("custom_fields")
        else:
            setattr(contact, target, written)
            changed.add(target)
    return extracted, sorted(changed), rejected


async def write_results(s: AsyncSession, call: Call, contact: Contact | None,
                        assistant: Any, findings: Findings, at: datetime,
                        region: str, definitions: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """Everything the analysis changes, in the caller's transaction (which has fenced the
    job). Returns the stored analysis. ``definitions`` caches the custom field definitions
    per team across the calls of one transaction."""
    fields = extraction_fields(assistant)
    extracted: dict[str, Any] = {}
    changed: list[str] = []
    rejected: dict[str, str] = {}
    if contact is not None and findings.values:
        defs = (definitions or {}).get(call.team_id)
        if defs is None:
            defs = await load_definitions(s, call.team_id, "contact")
            if definitions is not None:
                definitions[call.team_id] = defs
        extracted, changed, rejected = apply_values(contact, fields, findings.values, defs,
                                                    region)
    elif findings.values:  # no contact (a single call to a bare number): record only
        extracted = {k: {"value": v, "previous": None, "target": None, "changed": False}
                     for k, (v, _) in findings.values.items()}
    if contact is not None and call.outcome == "answered" and contact.lead_status == "new" \
            and "lead_status" not in changed:
        contact.lead_status = "contacted"  # SPEC 5 (finish_call normally did this already)
        changed.append("lead_status")
    if contact is not None and changed:
        refresh_search_columns(contact)
        contact.updated_at = utcnow()
    analysis: dict[str, Any] = {
        "summary": findings.summary,
        "success_evaluation": findings.success,
        "success_reason": findings.success_reason,
        "extracted_data": extracted,
        "method": findings.method,
        "analyzed_at": iso(at),
    }
    if rejected:
        analysis["rejected"] = rejected
    if findings.error:
        analysis["llm_error"] = findings.error
    call.analysis = analysis
    stage(s, CallEvent.__table__, {"id": ids.new_id("evt"), "call_id": call.id,
                                   "type": "call.analyzed",
                                   "at": at, "data": {"method": findings.method,
                                                      "extracted": sorted(extracted)}})
    emit(s, call.team_id, "call.analyzed", {"call": call_out(call), "analysis": analysis}, at,
         subject_id=call.id)
    if contact is not None and changed:
        emit_contact_updated(s, contact, at, changed)
    return analysis
