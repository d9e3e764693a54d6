"""What a finished call says: a summary, the success evaluation and the values of the
assistant's extraction fields, from the LLM (a JSON-schema response validated by pydantic) or
from the deterministic extractor (``conversation.extract``). Pure: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from callfleet.calls.models import Call
from callfleet.conversation.extract.extractor import extract
from callfleet.conversation.llm import LlmClient
from callfleet.conversation.script import transcript
from callfleet.crm import fields as F


def spoken(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages said aloud (tool and system lines left out)."""
    return [m for m in messages or [] if m.get("role") in ("assistant", "user")]


@dataclass
class Findings:
    summary: str
    success: bool | None  # against the assistant's success criteria; None: cannot judge
    success_reason: str
    values: dict[str, tuple[Any, float | None]] = field(default_factory=dict)
    method: str = "deterministic"
    error: str | None = None


def extraction_fields(assistant: Any) -> list[dict[str, Any]]:
    cfg = getattr(assistant, "info_extraction", None) or {}
    if not cfg.get("enabled"):
        return []
    return [f for f in cfg.get("fields") or [] if f.get("key")]


def deterministic_summary(call: Call, contact: dict[str, Any] | None,
                          values: dict[str, tuple[Any, float | None]]) -> str:
    who = " ".join(p for p in ((contact or {}).get("first_name"),
                               (contact or {}).get("last_name")) if p) or "The callee"
    exchanges = sum(1 for m in spoken(call.messages) if m.get("role") == "user")
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
                          values: dict[str, tuple[Any, float | None]]
                          ) -> tuple[bool | None, str]:
    """Without a model, success can only be judged on the fields the criteria name: success
    when the call was answered (not opted out) and every named field was collected."""
    if not criteria or not criteria.strip():
        return None, "no success criteria are set"
    low = criteria.lower()
    named = [f["key"] for f in fields
             if f["key"].lower() in low or f["key"].replace("_", " ").lower() in low]
    if not named:
        return None, ("without a model, only criteria that name extraction fields can be "
                      "judged")
    if call.outcome != "answered":
        return False, f"the call ended with outcome {call.outcome}"
    missing = [k for k in named if k not in values]
    if missing:
        return False, "not collected: " + ", ".join(missing)
    return True, "collected: " + ", ".join(named)


def deterministic_findings(call: Call, assistant: Any, contact: dict[str, Any] | None,
                           now: datetime, region: str) -> Findings:
    fields = extraction_fields(assistant)
    found = extract(spoken(call.messages), fields, now=call.ended_at or now, region=region,
                    timezone=(contact or {}).get("timezone") or "UTC") if fields else {}
    values = {k: (v.value, v.confidence) for k, v in found.items()}
    success, reason = deterministic_success(getattr(assistant, "success_criteria", None),
                                            call, fields, values)
    return Findings(summary=deterministic_summary(call, contact, values), success=success,
                    success_reason=reason, values=values)


PY_TYPES: dict[str, Any] = {"text": str, "number": float, "date": str, "boolean": bool,
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
            py = PY_TYPES.get(ftype, str)
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
    return [{"role": "system", "content": "\n".join(lines)},
            {"role": "user", "content": "Transcript:\n" + transcript(spoken(call.messages))
             + f"\n\nCall outcome: {call.outcome}; ended: {call.ended_reason}."}]


def clean_llm_value(value: Any, f: dict[str, Any], region: str) -> Any:
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
        value = clean_llm_value((data.get("extracted_data") or {}).get(f["key"]), f, region)
        if value is not None:
            values[f["key"]] = (value, None)
    judged = dict(data.get("success_evaluation") or {})
    success, reason = judged.get("success"), str(judged.get("reason") or "")
    if not (getattr(assistant, "success_criteria", None) or "").strip():
        success, reason = None, "no success criteria are set"
    return Findings(summary=str(data.get("summary") or ""), success=success,
                    success_reason=reason, values=values,
                    method="llm")
