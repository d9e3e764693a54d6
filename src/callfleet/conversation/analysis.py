"""Post-call analysis: summary, success evaluation and info extraction, written back to the
contact exactly once (SPEC 5).

``mark_for_analysis`` (called by ``calls.lifecycle.finish_call`` in the transaction that ends
the call) queues an ``analysis`` job for every call a person answered and that has messages.
:class:`AnalysisWorker` claims jobs (``conversation.jobs``), computes the findings with no
transaction open — through the LLM with a JSON-schema response validated by pydantic when one
is configured for the call, else with the deterministic extractor (``conversation.extract``)
— and then, in ONE transaction: fences the job (still ours, still running), writes the values
into the contact, stores ``call.analysis``, emits ``call.analyzed`` and ``contact.updated``
and marks the job done. A crash before that commit re-runs the analysis (another worker takes
the job when the lease expires); after it, the job is done and never runs again.

``call.analysis``::

    {"summary": str, "success_evaluation": {"success": bool | None, "reason": str},
     "extracted_data": {key: {"value", "previous", "target", "changed", "confidence"?}},
     "method": "llm" | "deterministic" | "deterministic_fallback", "analyzed_at": iso, ...}

``revert_analysis`` (``POST /api/calls/{id}/analysis/revert``) puts the previous values back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field, create_model
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls.models import Call, CallEvent
from callfleet.config import Settings
from callfleet.conversation import jobs, runtime
from callfleet.conversation.extract import extract
from callfleet.conversation.llm import LlmClient, LlmConfig, LlmError
from callfleet.crm import fields as F
from callfleet.crm.models import Contact
from callfleet.db.base import iso, utcnow
from callfleet.db.session import Database
from callfleet.db.staging import stage
from callfleet.wakeup import IdleWait

log = structlog.get_logger("callfleet.analysis")

KIND = "analysis"
MAX_LLM_ATTEMPTS = 3  # then the deterministic extractor answers
MAX_ATTEMPTS = 6  # then the job is marked failed (a bug, not a flaky model)
STANDARD_TARGETS = ("email", "job_title", "lead_status", "timezone", "phone_secondary", "notes")


def mark_for_analysis(session: AsyncSession, call: Call, at: datetime) -> None:
    """Queue the analysis of a call that just ended (same transaction as the ending)."""
    if call.answered_at is None or not call.messages:
        return
    if (call.call_metadata or {}).get("voicemail"):
        return
    jobs.add_job(session, call.id, call.team_id, KIND, at)


# --------------------------------------------------------------------------- findings


@dataclass
class Findings:
    summary: str
    success: dict[str, Any]
    values: dict[str, tuple[Any, float | None]] = field(default_factory=dict)
    method: str = "deterministic"
    error: str | None = None


def extraction_fields(assistant: Any) -> list[dict[str, Any]]:
    cfg = getattr(assistant, "info_extraction", None) or {}
    if not cfg.get("enabled"):
        return []
    return [f for f in cfg.get("fields") or [] if f.get("key")]


def _spoken(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages or [] if m.get("role") in ("assistant", "user")]


def deterministic_summary(call: Call, contact: dict[str, Any] | None,
                          values: dict[str, tuple[Any, float | None]]) -> str:
    who = " ".join(p for p in ((contact or {}).get("first_name"),
                               (contact or {}).get("last_name")) if p) or "The callee"
    exchanges = sum(1 for m in _spoken(call.messages) if m.get("role") == "user")
    if call.outcome == "opted_out":
        text = f"{who} asked not to be called again and was added to the do-not-call list."
    elif call.outcome == "failed":
        text = f"The call with {who} ended early because of a technical problem."
    else:
        how = {"assistant_forwarded_call": "the call was transferred",
               "customer_ended_call": "the callee ended the call",
               "assistant_ended_call": "the assistant ended the call",
               "max_turns": "the call reached its turn limit"}.get(
            call.ended_reason or "", "the call ended")
        text = f"{who} answered and spoke {exchanges} time(s); {how}."
    if values:
        text += " Collected: " + ", ".join(f"{k} = {v[0]}" for k, v in values.items()) + "."
    return text


def deterministic_success(criteria: str | None, call: Call,
                          fields: list[dict[str, Any]],
                          values: dict[str, tuple[Any, float | None]]) -> dict[str, Any]:
    """Without a model, success can only be judged on the fields the criteria name: success
    when the call was answered (not opted out) and every named field was collected."""
    if not criteria or not criteria.strip():
        return {"success": None, "reason": "no success criteria are set"}
    low = criteria.lower()
    named = [f["key"] for f in fields
             if f["key"].lower() in low or f["key"].replace("_", " ").lower() in low]
    if not named:
        return {"success": None, "reason": "the deterministic evaluator judges only criteria "
                                           "that name extraction fields"}
    if call.outcome != "answered":
        return {"success": False, "reason": f"the call ended with outcome {call.outcome}"}
    missing = [k for k in named if k not in values]
    if missing:
        return {"success": False, "reason": "not collected: " + ", ".join(missing)}
    return {"success": True, "reason": "collected: " + ", ".join(named)}


def deterministic_findings(call: Call, assistant: Any, contact: dict[str, Any] | None,
                           now: datetime, region: str) -> Findings:
    fields = extraction_fields(assistant)
    found = extract(_spoken(call.messages), fields, now=call.ended_at or now, region=region,
                    timezone=(contact or {}).get("timezone") or "UTC") if fields else {}
    values = {k: (v.value, v.confidence) for k, v in found.items()}
    return Findings(
        summary=deterministic_summary(call, contact, values),
        success=deterministic_success(getattr(assistant, "success_criteria", None), call,
                                      fields, values),
        values=values,
    )


_PY_TYPES: dict[str, Any] = {"text": str, "number": float, "date": str, "boolean": bool,
                             "email": str, "phone": str}


class SuccessEvaluation(BaseModel):
    success: bool | None = Field(description="Did the call meet the success criteria? null "
                                             "when no criteria are given.")
    reason: str = Field(description="One sentence why.")


def analysis_model(fields: list[dict[str, Any]]) -> type[BaseModel]:
    """The pydantic model (and so the JSON schema) of the analysis the model must return."""
    props: dict[str, Any] = {}
    for i, f in enumerate(fields):
        ftype = f.get("type") or "text"
        if ftype == "select" and f.get("options"):
            py: Any = Literal[tuple(f["options"])]  # type: ignore[valid-type]
        else:
            py = _PY_TYPES.get(ftype, str)
        desc = (f.get("description") or f["key"]) + (
            " (YYYY-MM-DD)" if ftype == "date" else "")
        props[f"f{i}"] = (py | None, Field(default=None, alias=f["key"], description=desc))
    extracted = create_model("ExtractedData", **props)  # type: ignore[call-overload]
    return create_model(  # type: ignore[call-overload,no-any-return]
        "CallAnalysis",
        summary=(str, Field(description="Two or three sentences about the call.")),
        success_evaluation=(SuccessEvaluation, ...),
        extracted_data=(extracted, ...),
    )


def analysis_prompt(call: Call, assistant: Any, fields: list[dict[str, Any]],
                    now: datetime) -> list[dict[str, Any]]:
    criteria = (getattr(assistant, "success_criteria", None) or "").strip()
    lines = [
        ("You analyse a finished outbound phone call between an AI assistant (AI) and a "
         "person (User). Answer with JSON only, matching the schema."),
        "summary: two or three sentences.",
        "success_evaluation: judge the call against these success criteria: "
        + (criteria if criteria else "(none given: success is null)"),
        ("extracted_data: for each field, the value the User clearly stated, else null. "
         "Never guess. Only the User's words are evidence."),
        f"Today is {(call.ended_at or now).date().isoformat()}; write dates as YYYY-MM-DD.",
    ]
    if fields:
        lines.append("Fields:\n" + "\n".join(
            f"- {f['key']} ({f.get('type') or 'text'}"
            + (f": one of {', '.join(f['options'])}" if f.get("options") else "") + "): "
            + (f.get("description") or "") for f in fields))
    from callfleet.conversation.script import transcript

    return [{"role": "system", "content": "\n".join(lines)},
            {"role": "user", "content": "Transcript:\n" + transcript(_spoken(call.messages))
             + f"\n\nCall outcome: {call.outcome}; ended: {call.ended_reason}."}]


def _clean_llm_value(value: Any, f: dict[str, Any], region: str) -> Any:
    """The model's value checked like any other write (bad values are dropped)."""
    if value is None:
        return None
    ftype = f.get("type") or "text"
    try:
        if ftype == "email":
            return F.normalize_email(str(value))
        if ftype == "phone":
            return F.normalize_phone(str(value), region)
        if ftype in ("number", "date", "select", "boolean", "text"):
            return F.coerce_custom_value(value, ftype, f.get("options"))
    except (ValueError, TypeError):
        return None
    return value


async def llm_findings(client: LlmClient, call: Call, assistant: Any, now: datetime,
                       region: str) -> Findings:
    fields = extraction_fields(assistant)
    model = analysis_model(fields)
    out = await client.structured(analysis_prompt(call, assistant, fields, now),
                                  "call_analysis", model)
    data = out.model_dump(by_alias=True)
    values: dict[str, tuple[Any, float | None]] = {}
    for f in fields:
        value = _clean_llm_value((data.get("extracted_data") or {}).get(f["key"]), f, region)
        if value is not None:
            values[f["key"]] = (value, None)
    success = dict(data.get("success_evaluation") or {})
    if not (getattr(assistant, "success_criteria", None) or "").strip():
        success = {"success": None, "reason": "no success criteria are set"}
    return Findings(summary=str(data.get("summary") or ""), success=success, values=values,
                    method="llm")


# --------------------------------------------------------------------------- write-back


def _current(contact: Contact, target: str, key: str) -> Any:
    if target == "custom_fields":
        return (contact.custom_fields or {}).get(key)
    return getattr(contact, target)


def _standard_value(target: str, value: Any, previous: Any, region: str) -> Any:
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
        previous = _current(contact, target, key)
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
                written = _standard_value(target, value, previous, region)
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
    from callfleet.calls.service import call_out
    from callfleet.crm.service import _refresh_search, emit_contact_updated, load_definitions
    from callfleet.webhooks.outbox import emit

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
        _refresh_search(contact)
        contact.updated_at = utcnow()
    analysis: dict[str, Any] = {
        "summary": findings.summary,
        "success_evaluation": findings.success,
        "extracted_data": extracted,
        "method": findings.method,
        "analyzed_at": iso(at),
    }
    if rejected:
        analysis["rejected"] = rejected
    if findings.error:
        analysis["llm_error"] = findings.error
    call.analysis = analysis
    stage(s, CallEvent.__table__, {"id": ids.new_id("evt"), "call_id": call.id, "type": "call.analyzed",
                                   "at": at, "data": {"method": findings.method,
                                                      "extracted": sorted(extracted)}})
    emit(s, call.team_id, "call.analyzed", {"call": call_out(call), "analysis": analysis}, at,
         subject_id=call.id)
    if contact is not None and changed:
        emit_contact_updated(s, contact, at, changed)
    return analysis


# --------------------------------------------------------------------------- undo


async def revert_analysis(s: AsyncSession, p: Any, call_id: str, at: datetime
                          ) -> dict[str, Any]:
    """Put back the contact values an analysis wrote (those not changed since). 409 when
    there is nothing to revert or it was reverted already."""
    from callfleet.api.errors import conflict
    from callfleet.calls.service import call_out
    from callfleet.crm.service import _refresh_search, emit_contact_updated
    from callfleet.teams.principal import get_owned

    call = await get_owned(s, Call, call_id, p, prefix="call", label="Call", for_update=True)
    analysis = dict(call.analysis or {})
    extracted = analysis.get("extracted_data") or {}
    if analysis.get("reverted_at"):
        raise conflict("The call's analysis was already reverted")
    if not any(item.get("changed") for item in extracted.values()):
        raise conflict("The call's analysis changed no contact value; nothing to revert")
    contact = None
    if call.contact_id:
        stmt = select(Contact).where(Contact.id == call.contact_id,
                                     Contact.team_id == p.team_id)
        if s.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        contact = await s.scalar(stmt)
    if contact is None:
        raise conflict("The call's contact no longer exists")
    reverted: list[str] = []
    skipped: dict[str, str] = {}
    changed: set[str] = set()
    for key, item in extracted.items():
        if not item.get("changed"):
            continue
        target = item.get("target") or "custom_fields"
        written = item.get("written", item.get("value"))
        if _current(contact, target, key) != written:
            skipped[key] = "changed since the call; left as is"
            continue
        if target == "custom_fields":
            custom = dict(contact.custom_fields or {})
            if item.get("previous") is None:
                custom.pop(key, None)
            else:
                custom[key] = item["previous"]
            contact.custom_fields = custom
            changed.add("custom_fields")
        else:
            previous = item.get("previous")
            if target == "lead_status" and previous is None:
                previous = "new"
            setattr(contact, target, previous)
            changed.add(target)
        reverted.append(key)
    if changed:
        _refresh_search(contact)
        contact.updated_at = utcnow()
        emit_contact_updated(s, contact, at, sorted(changed))
    analysis.update(reverted_at=iso(at), reverted=reverted)
    if skipped:
        analysis["revert_skipped"] = skipped
    call.analysis = analysis
    s.add(CallEvent(id=ids.new_id("evt"), call_id=call.id, type="call.analysis_reverted", at=at,
                    data={"reverted": reverted, "skipped": sorted(skipped)}))
    await s.flush()
    events = list(await s.scalars(
        select(CallEvent).where(CallEvent.call_id == call.id)
        .order_by(CallEvent.at, CallEvent.id)))
    return call_out(call, full=True, events=events)


# --------------------------------------------------------------------------- the worker


@dataclass
class _Loaded:
    """A claimed call and what its analysis reads."""
    job: Any
    call: Call
    assistant: Any
    contact: dict[str, Any] | None
    config: LlmConfig | None


@dataclass
class _Ready:
    """A claimed call whose findings are computed, waiting to be written."""
    call_id: str
    contact_id: str | None
    assistant: Any
    findings: Findings


class AnalysisWorker:
    def __init__(self, db: Database, clock: Any, settings: Settings, worker_id: str, *,
                 sleep: Any = asyncio.sleep, capacity: int = 20) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.worker_id = worker_id
        self.sleep = sleep
        self.capacity = capacity
        # Test hook: called after the findings are computed, before they are written.
        self.before_write: Any = None

    def _lease(self) -> timedelta:
        return self.clock.sim_delta(self.settings.conversation_lease_seconds)

    async def tick(self) -> int:
        claimed = await jobs.claim(self.db, KIND, self.worker_id, self.clock.now(),
                                   self._lease(), self.capacity)
        if claimed:
            await self.handle_many(claimed)
        return len(claimed)

    async def handle_many(self, call_ids: list[str]) -> int:
        """Analyse claimed calls; returns how many this worker committed. Calls without an
        LLM (the deterministic extractor answers in microseconds) are read in one
        transaction and written in one; calls with an LLM go one by one (:meth:`handle`),
        since each waits for the model. If the batch's write fails, every call in it is
        retried alone, so one bad call cannot hold back the others."""
        try:
            ready, alone = await self._prepare_many(call_ids)
        except Exception:
            log.exception("analysis_batch_read_failed")
            ready, alone = [], list(call_ids)
        done = 0
        if ready:
            try:
                done += await self._write_many(ready)
            except Exception:
                log.exception("analysis_batch_write_failed", calls=len(ready))
                alone.extend(r.call_id for r in ready)
        for call_id in alone:
            done += await self.handle(call_id)
        return done

    async def _load(self, call_ids: list[str]) -> dict[str, _Loaded]:
        """What analysing these calls reads, one query per table (read transaction). Calls
        without their job or row are left out (nothing to analyse)."""
        from callfleet.assistants.models import Assistant
        from callfleet.conversation.models import CallJob
        from callfleet.crm.service import contact_out

        out: dict[str, _Loaded] = {}
        async with self.db.session(write=False) as s:
            found = {j.call_id: j for j in await s.scalars(
                select(CallJob).where(CallJob.kind == KIND, CallJob.call_id.in_(call_ids)))}
            calls = {c.id: c for c in await s.scalars(select(Call).where(Call.id.in_(call_ids)))}
            wanted = {c.assistant_id for c in calls.values() if c.assistant_id}
            assistants = {a.id: a for a in await s.scalars(
                select(Assistant).where(Assistant.id.in_(sorted(wanted))))} if wanted else {}
            wanted = {c.contact_id for c in calls.values() if c.contact_id}
            contacts = {c.id: c for c in await s.scalars(
                select(Contact).where(Contact.id.in_(sorted(wanted))))} if wanted else {}
            for call_id in call_ids:
                job, call = found.get(call_id), calls.get(call_id)
                if job is None or call is None:
                    continue
                assistant = assistants.get(call.assistant_id or "")
                row = contacts.get(call.contact_id or "")
                config = (await runtime.llm_for(s, call, assistant)
                          if assistant is not None else None)
                out[call_id] = _Loaded(job, call, assistant,
                                       contact_out(row) if row else None, config)
        return out

    async def _prepare_many(self, call_ids: list[str]) -> tuple[list[_Ready], list[str]]:
        now = self.clock.now()
        region = self.settings.default_region
        ready: list[_Ready] = []
        alone: list[str] = []
        for call_id, x in (await self._load(call_ids)).items():
            if x.config is not None:
                alone.append(call_id)
                continue
            try:
                findings = deterministic_findings(x.call, x.assistant, x.contact, now, region)
            except Exception:
                log.exception("analysis_failed", call_id=call_id)
                alone.append(call_id)  # handle() records the error and retries
                continue
            ready.append(_Ready(call_id, x.call.contact_id, x.assistant, findings))
        return ready, alone

    async def _write_many(self, ready: list[_Ready]) -> int:
        if self.before_write is not None:
            for r in ready:
                await self.before_write(r.call_id)
        region = self.settings.default_region
        async with self.db.session() as s:
            fenced = await jobs.fence_many(s, [r.call_id for r in ready], KIND,
                                           self.worker_id, self.clock.now())
            for r in ready:
                if r.call_id not in fenced:
                    log.info("analysis_lost_lease", call_id=r.call_id)
            mine = [r for r in ready if r.call_id in fenced]
            if not mine:
                await s.rollback()
                return 0
            stmt = select(Call).where(Call.id.in_(sorted(r.call_id for r in mine)))
            wanted = sorted({r.contact_id for r in mine if r.contact_id})
            cstmt = select(Contact).where(Contact.id.in_(wanted))
            if not self.db.is_sqlite:  # the same lock order as the dialer: calls, contacts
                stmt = stmt.order_by(Call.id).with_for_update()
                cstmt = cstmt.order_by(Contact.id).with_for_update()
            rows = {c.id: c for c in await s.scalars(stmt)}
            contacts = {c.id: c for c in await s.scalars(cstmt)} if wanted else {}
            definitions: dict[str, Any] = {}
            at = self.clock.now()
            done: list[_Ready] = []
            for r in mine:
                row = rows.get(r.call_id)
                if row is None:
                    continue
                await write_results(s, row, contacts.get(r.contact_id or ""), r.assistant,
                                    r.findings, at, region, definitions)
                done.append(r)
            await s.commit()
        for r in done:
            log.info("call_analyzed", call_id=r.call_id, method=r.findings.method,
                     extracted=len(r.findings.values))
        return len(done)

    async def run(self, stop: asyncio.Event) -> None:
        tick = self.settings.intelligence_tick_seconds
        with IdleWait(self.db, KIND, base=tick, cap=self.settings.idle_max_seconds) as idle:
            while not stop.is_set():
                idle.arm()
                busy = 0
                try:
                    busy = await self.tick()
                except Exception:
                    log.exception("analysis_pass_failed")
                # A full batch: on at once; a partial one: a short pause, so that the next
                # claim takes a batch rather than the one call that ended meanwhile; none:
                # the back-off of wakeup.IdleWait.
                if not busy:
                    await idle.idle(stop, lambda: jobs.due_in(self.db, KIND, self.clock))
                    continue
                idle.busy()
                if busy < self.capacity:
                    await idle.sleep(stop, tick / 4)

    async def handle(self, call_id: str) -> bool:
        """Analyse one claimed call. True when this worker committed the results."""
        try:
            return await self._handle(call_id)
        except Exception as exc:
            log.exception("analysis_failed", call_id=call_id)
            await self._retry_or_fail(call_id, f"{type(exc).__name__}: {exc}")
            return False

    async def _retry_or_fail(self, call_id: str, error: str) -> None:
        from callfleet.conversation.models import CallJob

        async with self.db.session(write=False) as s:
            job = await s.get(CallJob, (call_id, KIND))
        attempts = job.attempts if job else MAX_ATTEMPTS
        now = self.clock.now()
        if attempts >= MAX_ATTEMPTS:
            async with self.db.session() as s:
                await jobs.fence(s, call_id, KIND, self.worker_id, now, status="failed",
                                 error=error[:2000])
                await s.commit()
            return
        delay = timedelta(seconds=30 * 2 ** (attempts - 1))
        await jobs.release(self.db, call_id, KIND, self.worker_id, now + delay, error)

    async def _handle(self, call_id: str) -> bool:
        now = self.clock.now()
        region = self.settings.default_region
        x = (await self._load([call_id])).get(call_id)
        if x is None:
            return False
        if x.config is not None:
            try:
                findings = await llm_findings(LlmClient(x.config, sleep=self.sleep), x.call,
                                              x.assistant, now, region)
            except LlmError as exc:
                if x.job.attempts < MAX_LLM_ATTEMPTS:
                    delay = timedelta(seconds=30 * 2 ** (x.job.attempts - 1))
                    await jobs.release(self.db, call_id, KIND, self.worker_id, now + delay,
                                       str(exc))
                    return False
                findings = deterministic_findings(x.call, x.assistant, x.contact, now, region)
                findings.method, findings.error = "deterministic_fallback", str(exc)
        else:
            findings = deterministic_findings(x.call, x.assistant, x.contact, now, region)
        return await self._write_many(
            [_Ready(call_id, x.call.contact_id, x.assistant, findings)]) == 1
