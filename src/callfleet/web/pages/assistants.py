"""Assistants: the list, a new assistant from a template, the editor (prompt, first message
and its variables, voice, transcriber and LLM settings, tools, extraction fields, success
criteria, voicemail) and a test call to a number."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from callfleet.assistants import service as assistants
from callfleet.assistants.prompts import CAMPAIGN_FIELDS, COMPANY_FIELDS, CONTACT_FIELDS
from callfleet.assistants.schemas import AssistantIn
from callfleet.assistants.templates import TEMPLATE_IDS
from callfleet.calls import service as calls
from callfleet.errors import ApiError
from callfleet.numbers import service as numbers
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import checked, field_errors, parse_body, text_values
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)
TEXT = ("name", "type", "systemPrompt", "firstMessage", "provider", "model", "temperature",
        "maxTokens", "voiceProvider", "voiceModel", "voiceId", "transcriberProvider",
        "transcriberModel", "language", "voicemailAction", "voicemailMessage",
        "successCriteria", "llmBaseUrl")
FLAGS = ("recordingEnabled", "inboundEnabled", "outboundEnabled", "voicemailDetectionEnabled")
BLANK_ROWS = 2
EXTRACTION_TYPES = ("text", "number", "date", "select", "boolean", "email", "phone")
TARGETS = ("custom_fields", "email", "job_title", "lead_status", "timezone", "phone_secondary",
           "notes")


def variables() -> list[str]:
    """The prompt variables a first message or prompt may use, for the editor's help."""
    return ([f"contact.{f}" for f in CONTACT_FIELDS] + ["contact.custom.KEY"]
            + [f"company.{f}" for f in COMPANY_FIELDS] + ["company.custom.KEY"]
            + [f"campaign.{f}" for f in CAMPAIGN_FIELDS])


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _rows(values: dict[str, str], prefix: str, names: tuple[str, ...]) -> list[dict[str, str]]:
    """Repeated rows ``prefix.N.name`` of the form, blank rows dropped."""
    rows = []
    for n in range(50):  # the API's lists hold at most 50 items
        row = {k: values.get(f"{prefix}.{n}.{k}", "").strip() for k in names}
        if any(row.values()):
            rows.append(row)
    return rows


def assistant_body(form: Any) -> dict[str, Any]:
    """The API's request body (camelCase) from the editor form."""
    values = text_values(form)
    body: dict[str, Any] = {k: values[k].strip() or None for k in TEXT if k in values}
    for flag in FLAGS:
        body[flag] = checked(form, flag)
    body["endCall"] = {"enabled": checked(form, "endCall.enabled"),
                       "triggerPhrases": _lines(values.get("endCall.triggerPhrases", "")),
                       "closingPhrase": values.get("endCall.closingPhrase", "").strip() or None}
    departments = _rows(values, "callTransfer.departments",
                        ("name", "mode", "phoneNumber", "introMessage"))
    body["callTransfer"] = {"enabled": checked(form, "callTransfer.enabled"),
                            "departments": [{k: v or None for k, v in d.items()}
                                            for d in departments]}
    fields = _rows(values, "infoExtraction.fields",
                   ("key", "type", "description", "options", "target"))
    body["infoExtraction"] = {
        "enabled": checked(form, "infoExtraction.enabled"),
        "fields": [{**{k: v or None for k, v in f.items() if k != "options"},
                    "options": [o.strip() for o in f["options"].split(",") if o.strip()] or None}
                   for f in fields]}
    tools = []
    for t in _rows(values, "tools", ("name", "description", "url", "message", "parameters")):
        tool: dict[str, Any] = {k: v or None for k, v in t.items() if k != "parameters"}
        if t["parameters"]:
            try:
                tool["parameters"] = json.loads(t["parameters"])
            except ValueError:
                raise ApiError(400, "Tool parameters must be JSON", {
                    f"tools.{len(tools)}.parameters": "Must be a JSON object (a JSON Schema)"},
                ) from None
        tools.append(tool)
    body["tools"] = tools
    if values.get("llmApiKey", "").strip():  # write-only: blank keeps the stored key
        body["llmApiKey"] = values["llmApiKey"].strip()
    return body


def form_values(a: dict[str, Any]) -> dict[str, Any]:
    """The editor's field values for an assistant (API names, rows numbered)."""
    camel = {"system_prompt": "systemPrompt", "first_message": "firstMessage",
             "max_tokens": "maxTokens", "voice_provider": "voiceProvider",
             "voice_model": "voiceModel", "voice_id": "voiceId",
             "transcriber_provider": "transcriberProvider",
             "transcriber_model": "transcriberModel", "voicemail_action": "voicemailAction",
             "voicemail_message": "voicemailMessage", "success_criteria": "successCriteria",
             "llm_base_url": "llmBaseUrl", "recording_enabled": "recordingEnabled",
             "inbound_enabled": "inboundEnabled", "outbound_enabled": "outboundEnabled",
             "voicemail_detection_enabled": "voicemailDetectionEnabled"}
    values: dict[str, Any] = {camel.get(k, k): v for k, v in a.items()
                              if not isinstance(v, (dict, list))}
    end = a.get("end_call") or {}
    values["endCall.enabled"] = end.get("enabled")
    values["endCall.triggerPhrases"] = "\n".join(end.get("trigger_phrases") or [])
    values["endCall.closingPhrase"] = end.get("closing_phrase") or ""
    transfer = a.get("call_transfer") or {}
    values["callTransfer.enabled"] = transfer.get("enabled")
    for n, d in enumerate(transfer.get("departments") or []):
        values.update({f"callTransfer.departments.{n}.name": d.get("name") or "",
                       f"callTransfer.departments.{n}.mode": d.get("mode") or "cold",
                       f"callTransfer.departments.{n}.phoneNumber": d.get("phone_number") or "",
                       f"callTransfer.departments.{n}.introMessage":
                           d.get("intro_message") or ""})
    extraction = a.get("info_extraction") or {}
    values["infoExtraction.enabled"] = extraction.get("enabled")
    for n, f in enumerate(extraction.get("fields") or []):
        values.update({f"infoExtraction.fields.{n}.key": f.get("key") or "",
                       f"infoExtraction.fields.{n}.type": f.get("type") or "text",
                       f"infoExtraction.fields.{n}.description": f.get("description") or "",
                       f"infoExtraction.fields.{n}.options": ", ".join(f.get("options") or []),
                       f"infoExtraction.fields.{n}.target": f.get("target") or "custom_fields"})
    for n, t in enumerate(a.get("tools") or []):
        values.update({f"tools.{n}.name": t.get("name") or "",
                       f"tools.{n}.description": t.get("description") or "",
                       f"tools.{n}.url": t.get("url") or "",
                       f"tools.{n}.message": t.get("message") or "",
                       f"tools.{n}.parameters": json.dumps(t["parameters"])
                       if t.get("parameters") else ""})
    values["rows"] = {
        "departments": len(transfer.get("departments") or []) + BLANK_ROWS,
        "fields": len(extraction.get("fields") or []) + BLANK_ROWS + 1,
        "tools": len(a.get("tools") or []) + 1}
    return values



@router.get("/assistants")
async def assistants_page(ctx: Viewer) -> Response:
    items, total = await assistants.list_assistants(ctx.s, ctx.p, 200, 0)
    flash = "Assistant deleted." if "deleted" in ctx.request.query_params else None
    return page(ctx.request, "assistants/list.html", user=ctx.user, assistants=items,
                total=total, templates=TEMPLATE_IDS, flash=flash)


@router.post("/assistants/new")
async def create_assistant(ctx: Editor) -> Response:
    values = text_values(await read_form(ctx.request), ("name", "templateId"))
    try:
        body = parse_body(AssistantIn, {"name": values.get("name"),
                                        "templateId": values.get("templateId") or "custom"})
        out = await assistants.create_assistant(ctx.s, ctx.p, body.model_dump(exclude_unset=True),
                                                ctx.region)
    except ApiError as exc:
        await ctx.s.rollback()
        items, total = await assistants.list_assistants(ctx.s, ctx.p, 200, 0)
        return page(ctx.request, "assistants/list.html", user=ctx.user, status=400,
                    assistants=items, total=total, templates=TEMPLATE_IDS,
                    errors=field_errors(exc), values=values)
    return await ctx.done(f"/assistants/{out['id']}?created=1")


async def _editor(ctx: Ctx, assistant: dict[str, Any], *, values: dict[str, Any] | None = None,
                  errors: dict[str, str] | None = None, status: int = 200,
                  flash: str | None = None, test_call: dict[str, Any] | None = None,
                  ) -> Response:
    numbers_list, _ = await numbers.list_numbers(ctx.s, ctx.p, status="active",
                                                 assistant_id=assistant["id"], limit=100,
                                                 offset=0)
    return page(ctx.request, "assistants/editor.html", user=ctx.user, status=status,
                assistant=assistant, values=values or form_values(assistant),
                errors=errors or {}, variables=variables(), numbers=numbers_list,
                extraction_types=EXTRACTION_TYPES, targets=TARGETS, flash=flash,
                test_call=test_call)


@router.get("/assistants/{assistant_id}")
async def assistant_page(assistant_id: str, ctx: Viewer) -> Response:
    assistant = await assistants.get_assistant(ctx.s, ctx.p, assistant_id)
    params = ctx.request.query_params
    flash = ("Assistant created from its template. Adjust it below." if "created" in params
             else "Changes saved." if "saved" in params else None)
    return await _editor(ctx, assistant, flash=flash)


@router.post("/assistants/{assistant_id}")
async def update_assistant(assistant_id: str, ctx: Editor) -> Response:
    assistant = await assistants.get_assistant(ctx.s, ctx.p, assistant_id)
    form = await read_form(ctx.request)
    try:
        body = parse_body(AssistantIn, assistant_body(form))
        await assistants.update_assistant(ctx.s, ctx.p, assistant_id,
                                          body.model_dump(exclude_unset=True), ctx.region)
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        values: dict[str, Any] = text_values(form)
        for flag in (*FLAGS, "endCall.enabled", "callTransfer.enabled",
                     "infoExtraction.enabled"):
            values[flag] = checked(form, flag)
        current = form_values(assistant)
        values["rows"] = {k: max(v, current["rows"][k]) for k, v in {
            "departments": BLANK_ROWS, "fields": BLANK_ROWS, "tools": 1}.items()}
        return await _editor(ctx, assistant, values=values, errors=field_errors(exc),
                             status=400 if exc.status != 409 else 409)
    return await ctx.done(f"/assistants/{assistant_id}?saved=1")


@router.post("/assistants/{assistant_id}/test-call")
async def test_call(assistant_id: str, ctx: Editor) -> Response:
    """One call now to a number (as ``POST /api/crm/calls``): the legal hours and the DNC
    list apply as to any call."""
    assistant = await assistants.get_assistant(ctx.s, ctx.p, assistant_id)
    values = text_values(await read_form(ctx.request), ("toNumber",))
    request = ctx.request
    settings, dialer = request.app.state.settings, request.app.state.dialer
    try:
        call = await calls.create_single_call(
            ctx.s, ctx.p, {"assistant_id": assistant_id, "to_number": values.get("toNumber")},
            now=dialer.clock.now(), region=settings.default_region,
            legal_start=settings.legal_hours_start, legal_end=settings.legal_hours_end,
            carrier_name=dialer.carrier.name,
            lease=dialer.clock.sim_delta(settings.lease_seconds), worker_id=dialer.worker_id)
        await ctx.s.commit()
    except ApiError as exc:
        if exc.status == 404:
            raise
        await ctx.s.rollback()
        return await _editor(ctx, assistant, errors=field_errors(exc), status=exc.status)
    await dialer.place_single(call.id, call.from_number, call.to_number)
    return RedirectResponse(f"/calls/{call.id}?test=1", status_code=303)


@router.post("/assistants/{assistant_id}/delete")
async def delete_assistant(assistant_id: str, ctx: Editor) -> Response:
    try:
        await assistants.delete_assistant(ctx.s, ctx.p, assistant_id)
    except ApiError as exc:
        if exc.status != 409:
            raise
        await ctx.s.rollback()
        assistant = await assistants.get_assistant(ctx.s, ctx.p, assistant_id)
        return await _editor(ctx, assistant, errors={"_form": exc.error}, status=409)
    return await ctx.done("/assistants?deleted=1")
