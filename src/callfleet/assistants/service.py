"""Assistants: configuration CRUD, template pre-fill, and the assistant's phone numbers.

Services never commit; the route (or ``api.idempotency``) owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.assistants.templates import TEMPLATE_IDS, template_defaults
from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign
from callfleet.crm import fields as F
from callfleet.db.base import iso, utcnow
from callfleet.errors import ApiError, bad_request, conflict, not_found
from callfleet.numbers.models import PhoneNumber
from callfleet.numbers.service import campaign_using, number_out, running_campaigns
from callfleet.secrets import secret_box
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal

# What a column holds when neither the template nor the request sets it (and what ``null``
# resets it to on PATCH). Mirrors the model's column defaults.
DEFAULTS: dict[str, Any] = {
    "type": "outbound",
    "system_prompt": "",
    "first_message": "",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "temperature": 0.7,
    "max_tokens": 300,
    "voice_provider": None,
    "voice_model": None,
    "voice_id": None,
    "transcriber_provider": None,
    "transcriber_model": None,
    "language": "en",
    "recording_enabled": False,
    "inbound_enabled": False,
    "outbound_enabled": True,
    "voicemail_detection_enabled": True,
    "voicemail_action": "hangup",
    "voicemail_message": None,
    "end_call": {"enabled": False, "trigger_phrases": [], "closing_phrase": None},
    "call_transfer": {"enabled": False, "departments": []},
    "info_extraction": {"enabled": False, "fields": []},
    "success_criteria": None,
    "llm_base_url": None,
    "llm_api_key": None,
    "tools": [],
}
# Plain text columns: (max length, camelCase name for messages).
TEXT = {
    "system_prompt": (50_000, "systemPrompt"),
    "first_message": (5000, "firstMessage"),
    "voice_provider": (60, "voiceProvider"),
    "voice_model": (120, "voiceModel"),
    "voice_id": (120, "voiceId"),
    "transcriber_provider": (60, "transcriberProvider"),
    "transcriber_model": (120, "transcriberModel"),
    "voicemail_message": (5000, "voicemailMessage"),
    "success_criteria": (5000, "successCriteria"),
}
# Columns that cannot be empty: an empty or null value resets them to the default.
REQUIRED_TEXT = {"provider": (60, "provider"), "model": (120, "model")}
PLAIN = ("type", "temperature", "max_tokens", "recording_enabled", "inbound_enabled",
         "outbound_enabled", "voicemail_detection_enabled", "voicemail_action")
NESTED = ("end_call", "call_transfer", "info_extraction")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Which extraction types may write to a standard contact field.
TARGET_TYPES = {
    "custom_fields": None,
    "email": ("email", "text"),
    "phone_secondary": ("phone", "text"),
    "job_title": ("text",),
    "notes": ("text",),
    "timezone": ("text",),
    "lead_status": ("select", "text"),
}


# ---------------------------------------------------------------- serializers


def end_call_out(raw: dict[str, Any] | None) -> dict[str, Any]:
    raw = raw or {}
    return {
        "enabled": bool(raw.get("enabled", False)),
        "trigger_phrases": list(raw.get("trigger_phrases") or []),
        "closing_phrase": raw.get("closing_phrase"),
    }


def call_transfer_out(raw: dict[str, Any] | None) -> dict[str, Any]:
    raw = raw or {}
    return {
        "enabled": bool(raw.get("enabled", False)),
        "departments": [
            {
                "name": d.get("name", ""),
                "mode": d.get("mode", "cold"),
                "phone_number": d.get("phone_number", ""),
                "intro_message": d.get("intro_message"),
                "announcement": d.get("announcement"),
            }
            for d in raw.get("departments") or []
        ],
    }


def info_extraction_out(raw: dict[str, Any] | None) -> dict[str, Any]:
    raw = raw or {}
    return {
        "enabled": bool(raw.get("enabled", False)),
        "fields": [
            {
                "key": f.get("key", ""),
                "type": f.get("type", "text"),
                "description": f.get("description"),
                "question": f.get("question"),
                "options": f.get("options"),
                "target": f.get("target", "custom_fields"),
            }
            for f in raw.get("fields") or []
        ],
    }


def tools_out(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "name": t.get("name", ""),
            "description": t.get("description"),
            "url": t.get("url", ""),
            "parameters": t.get("parameters") or {"type": "object", "properties": {}},
            "timeout_seconds": t.get("timeout_seconds"),
            "message": t.get("message"),
            "header_names": sorted(t.get("headers") or {}),  # values may be secrets
        }
        for t in raw or []
    ]


def assistant_out(a: Assistant, number_ids: list[str]) -> dict[str, Any]:
    return {
        "id": a.id,
        "team_id": a.team_id,
        "name": a.name,
        "type": a.type,
        "template_id": a.template_id,
        "system_prompt": a.system_prompt or "",
        "first_message": a.first_message or "",
        "provider": a.provider,
        "model": a.model,
        "temperature": float(a.temperature),
        "max_tokens": int(a.max_tokens),
        "voice_provider": a.voice_provider,
        "voice_model": a.voice_model,
        "voice_id": a.voice_id,
        "transcriber_provider": a.transcriber_provider,
        "transcriber_model": a.transcriber_model,
        "language": a.language,
        "recording_enabled": bool(a.recording_enabled),
        "inbound_enabled": bool(a.inbound_enabled),
        "outbound_enabled": bool(a.outbound_enabled),
        "voicemail_detection_enabled": bool(a.voicemail_detection_enabled),
        "voicemail_action": a.voicemail_action,
        "voicemail_message": a.voicemail_message,
        "end_call": end_call_out(a.end_call),
        "call_transfer": call_transfer_out(a.call_transfer),
        "info_extraction": info_extraction_out(a.info_extraction),
        "success_criteria": a.success_criteria,
        "llm_base_url": a.llm_base_url,
        "llm_api_key_set": bool(a.llm_api_key),  # the key itself is never returned
        "tools": tools_out(a.tools),
        "phone_number_ids": number_ids,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
    }


# ---------------------------------------------------------------- validation


def _text(value: Any, name: str, max_len: int) -> str | None:
    try:
        return F.clean_text(value, max_len)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}", name) from None


def _end_call(merged: dict[str, Any]) -> dict[str, Any]:
    phrases: list[str] = []
    for i, phrase in enumerate(merged.get("trigger_phrases") or []):
        cleaned = _text(phrase, f"endCall.triggerPhrases.{i}", 200)
        if cleaned and cleaned.lower() not in (p.lower() for p in phrases):
            phrases.append(cleaned)
    # Enabled with no phrases is valid: the model can still end the call with its tool.
    return {
        "enabled": bool(merged.get("enabled", False)),
        "trigger_phrases": phrases,
        "closing_phrase": _text(merged.get("closing_phrase"), "endCall.closingPhrase", 1000),
    }


def _call_transfer(merged: dict[str, Any], region: str) -> dict[str, Any]:
    departments: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, d in enumerate(merged.get("departments") or []):
        at = f"callTransfer.departments.{i}"
        name = _text(d.get("name"), f"{at}.name", 100)
        if not name:
            raise bad_request(f"{at}.name is required", f"{at}.name")
        if name.lower() in seen:
            raise bad_request(f"{at}.name {name!r} is used by another department", f"{at}.name")
        seen.add(name.lower())
        try:
            phone = F.normalize_phone(d.get("phone_number"), region)
        except ValueError as exc:
            raise bad_request(f"{at}.phoneNumber {exc}", f"{at}.phoneNumber") from None
        if phone is None:
            raise bad_request(f"{at}.phoneNumber is required", f"{at}.phoneNumber")
        departments.append({
            "name": name,
            "mode": d.get("mode") or "cold",
            "phone_number": phone,
            "intro_message": _text(d.get("intro_message"), f"{at}.introMessage", 2000),
            "announcement": _text(d.get("announcement"), f"{at}.announcement", 1000),
        })
    enabled = bool(merged.get("enabled", False))
    if enabled and not departments:
        raise bad_request(
            "callTransfer.departments must list at least one department when callTransfer is "
            "enabled", "callTransfer.departments",
        )
    return {"enabled": enabled, "departments": departments}


def _info_extraction(merged: dict[str, Any]) -> dict[str, Any]:
    fields: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, f in enumerate(merged.get("fields") or []):
        at = f"infoExtraction.fields.{i}"
        key = (f.get("key") or "").strip()
        if not key:
            raise bad_request(f"{at}.key is required", f"{at}.key")
        if not _KEY.match(key):
            raise bad_request(
                f"{at}.key must be snake_case (a-z, 0-9 and _, starting with a letter)",
                f"{at}.key",
            )
        if key in seen:
            raise bad_request(f"{at}.key {key!r} is listed twice", f"{at}.key")
        seen.add(key)
        ftype = f.get("type") or "text"
        target = f.get("target") or "custom_fields"
        allowed = TARGET_TYPES[target]
        if allowed is not None and ftype not in allowed:
            raise bad_request(
                f"{at}.type must be {' or '.join(allowed)} to write to the contact's {target}",
                f"{at}.type",
            )
        options = None
        if ftype == "select":
            cleaned = [_text(o, f"{at}.options", 200) for o in f.get("options") or []]
            options = list(dict.fromkeys(o for o in cleaned if o))
            if not options:
                raise bad_request(f"{at}.options must list the choices of a select field",
                                  f"{at}.options")
            if target == "lead_status":
                bad = [o for o in options if o not in F.LEAD_STATUSES]
                if bad:
                    raise bad_request(
                        f"{at}.options must be lead statuses; not: {', '.join(bad)}",
                        f"{at}.options",
                    )
        fields.append({
            "key": key,
            "type": ftype,
            "description": _text(f.get("description"), f"{at}.description", 2000),
            "question": _text(f.get("question"), f"{at}.question", 500),
            "options": options,
            "target": target,
        })
    enabled = bool(merged.get("enabled", False))
    if enabled and not fields:
        raise bad_request(
            "infoExtraction.fields must list at least one field when infoExtraction is enabled",
            "infoExtraction.fields",
        )
    return {"enabled": enabled, "fields": fields}


_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_TOOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")


def _url(value: Any, name: str) -> str | None:
    text = _text(value, name, 2000)
    if text is not None and not _URL.match(text):
        raise bad_request(f"{name} must be an http(s) URL", name)
    return text


def _tools(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, t in enumerate(raw or []):
        at = f"tools.{i}"
        name = (t.get("name") or "").strip()
        if not _TOOL_NAME.match(name):
            raise bad_request(f"{at}.name must be 1-64 letters, digits, _ or -, starting with "
                              "a letter", f"{at}.name")
        if name in ("end_call", "transfer_call") or name in seen:
            raise bad_request(f"{at}.name {name!r} is already used", f"{at}.name")
        seen.add(name)
        url = _url(t.get("url"), f"{at}.url")
        if not url:
            raise bad_request(f"{at}.url is required", f"{at}.url")
        params = t.get("parameters") or {"type": "object", "properties": {}}
        if params.get("type") != "object":
            raise bad_request(f"{at}.parameters must be a JSON schema of type object",
                              f"{at}.parameters")
        out.append({
            "name": name,
            "description": _text(t.get("description"), f"{at}.description", 1000),
            "url": url,
            "parameters": params,
            "timeout_seconds": t.get("timeout_seconds"),
            "message": _text(t.get("message"), f"{at}.message", 500),
            # Header values are often credentials: encrypted at rest like other secrets.
            "headers": {str(k): secret_box().encrypt(str(v))
                        for k, v in (t.get("headers") or {}).items()},
        })
    return out


def _merge(current: dict[str, Any] | None, patch: dict[str, Any] | None) -> dict[str, Any]:
    """Nested objects merge key by key; a list sent replaces the stored list."""
    merged = dict(current or {})
    merged.update(patch or {})
    return merged


def _values(data: dict[str, Any], current: dict[str, Any], region: str) -> dict[str, Any]:
    """Validated column values for the keys present in ``data``, merged over ``current``."""
    out: dict[str, Any] = {}
    for key, (max_len, name) in TEXT.items():
        if key in data:
            value = _text(data[key], name, max_len)
            out[key] = "" if value is None and DEFAULTS[key] == "" else value
    for key, (max_len, name) in REQUIRED_TEXT.items():
        if key in data:
            out[key] = _text(data[key], name, max_len) or DEFAULTS[key]
    for key in PLAIN:
        if key in data:
            out[key] = DEFAULTS[key] if data[key] is None else data[key]
    if "language" in data:
        lang = _text(data["language"], "language", 20) or DEFAULTS["language"]
        if not _LANGUAGE.match(lang):
            raise bad_request("language must be a language tag such as en or en-US", "language")
        out["language"] = lang
    if "llm_base_url" in data:
        out["llm_base_url"] = _url(data["llm_base_url"], "llmBaseUrl")
    if "llm_api_key" in data:
        key = _text(data["llm_api_key"], "llmApiKey", 500)
        # Kept encrypted at rest (callfleet.secrets); only the LLM client sees it in clear.
        out["llm_api_key"] = secret_box().encrypt(key) if key else None
    if "tools" in data:
        out["tools"] = _tools(data["tools"])
    for key in NESTED:
        if key not in data:
            continue
        # ``null`` resets the tool to its default (off); an object merges into the stored one.
        merged = DEFAULTS[key] if data[key] is None else _merge(current.get(key), data[key])
        if key == "end_call":
            out[key] = _end_call(merged)
        elif key == "call_transfer":
            out[key] = _call_transfer(merged, region)
        else:
            out[key] = _info_extraction(merged)
    return out


def _name(value: Any) -> str:
    name = _text(value, "name", 200)
    if not name:
        raise bad_request("name is required", "name")
    return name


# ---------------------------------------------------------------- assistants


async def _number_ids(session: AsyncSession, assistant_ids: Iterable[str]) -> dict[str, list[str]]:
    wanted = list(assistant_ids)
    out: dict[str, list[str]] = {a: [] for a in wanted}
    if not wanted:
        return out
    rows = await session.execute(
        select(PhoneNumber.assistant_id, PhoneNumber.id)
        .where(PhoneNumber.assistant_id.in_(wanted))
        .order_by(PhoneNumber.id)
    )
    for assistant_id, number_id in rows:
        if assistant_id is not None:
            out[assistant_id].append(number_id)
    return out


async def create_assistant(
    session: AsyncSession, p: Principal, data: dict[str, Any], region: str
) -> dict[str, Any]:
    # On create, null means "not given": the template's value stays.
    data = {k: v for k, v in data.items() if v is not None}
    name = _name(data.get("name"))
    template_id = data.get("template_id") or "custom"
    if template_id not in TEMPLATE_IDS:
        raise bad_request("templateId must be one of " + ", ".join(TEMPLATE_IDS), "templateId")
    team = await session.get(Team, p.team_id)
    business = team.name if team is not None else ""
    base = {**DEFAULTS, **template_defaults(template_id, business)}
    values = {**base, **_values(data, base, region)}
    now = utcnow()
    a = Assistant(id=ids.new_id("asst"), team_id=p.team_id, name=name, template_id=template_id,
                  created_at=now, updated_at=now, **values)
    session.add(a)
    await session.flush()
    return assistant_out(a, [])


async def _owned(session: AsyncSession, p: Principal, assistant_id: str,
                 for_update: bool = False) -> Assistant:
    return await owned_assistant(session, p, assistant_id, for_update=for_update)


async def owned_assistant(session: AsyncSession, p: Principal, assistant_id: str, *,
                          for_update: bool = False) -> Assistant:
    """The caller's assistant by id; a deleted one is a 404 like an unknown one."""
    a = await p.scope.get(session, Assistant, assistant_id, for_update=for_update)
    if a.deleted_at is not None:
        raise not_found("Assistant")
    return a


async def get_assistant(session: AsyncSession, p: Principal, assistant_id: str) -> dict[str, Any]:
    a = await _owned(session, p, assistant_id)
    return assistant_out(a, (await _number_ids(session, [a.id]))[a.id])


async def list_assistants(
    session: AsyncSession, p: Principal, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(Assistant).where(Assistant.deleted_at.is_(None))
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = list(await session.scalars(stmt.order_by(Assistant.id.desc()).limit(limit)
                                      .offset(offset)))
    numbers = await _number_ids(session, [a.id for a in rows])
    return [assistant_out(a, numbers[a.id]) for a in rows], total


async def outbound_assistants(session: AsyncSession, p: Principal) -> list[dict[str, Any]]:
    """Outbound-enabled assistants with at least one active number, each with those numbers
    (``GET /api/crm/outbound-assistants``)."""
    numbers: dict[str, list[dict[str, Any]]] = {}
    for n in await session.scalars(
            p.scope.select(PhoneNumber).where(PhoneNumber.status == "active",
                                              PhoneNumber.assistant_id.is_not(None))
            .order_by(PhoneNumber.id)):
        numbers.setdefault(n.assistant_id or "", []).append(number_out(n))
    if not numbers:
        return []
    rows = await session.scalars(
        p.scope.select(Assistant)
        .where(Assistant.deleted_at.is_(None), Assistant.outbound_enabled.is_(True),
               Assistant.id.in_(sorted(numbers)))
        .order_by(Assistant.id.desc()))
    rows = list(rows)
    assigned = await _number_ids(session, [a.id for a in rows])
    return [{**assistant_out(a, assigned[a.id]), "phone_numbers": numbers[a.id]}
            for a in rows]


async def update_assistant(
    session: AsyncSession, p: Principal, assistant_id: str, data: dict[str, Any], region: str
) -> dict[str, Any]:
    a = await _owned(session, p, assistant_id, for_update=True)
    if data.get("template_id") not in (None, a.template_id):
        raise bad_request("templateId applies only when an assistant is created; create a new "
                          "assistant to start from another template", "templateId")
    if "name" in data:
        a.name = _name(data["name"])
    current = {k: getattr(a, k) for k in NESTED}
    for key, value in _values(data, current, region).items():
        setattr(a, key, value)
    a.updated_at = utcnow()
    await session.flush()
    return assistant_out(a, (await _number_ids(session, [a.id]))[a.id])


# Campaigns that dial, or may dial again without being edited, need their assistant.
_IN_FLIGHT = ("running", "scheduled", "paused")


async def delete_assistant(session: AsyncSession, p: Principal, assistant_id: str) -> None:
    """409 while a running, scheduled or paused campaign uses the assistant. Otherwise its
    numbers are unassigned and it is deleted: soft-deleted (gone from the API, kept for the
    history of the campaigns and calls that refer to it) when anything refers to it. A draft
    campaign left with a deleted assistant is refused at run time until it gets another."""
    a = await _owned(session, p, assistant_id, for_update=True)
    busy = (await session.execute(
        select(Campaign.id, Campaign.name, Campaign.status)
        .where(Campaign.assistant_id == a.id, Campaign.status.in_(_IN_FLIGHT),
               Campaign.deleted_at.is_(None))
        .order_by(Campaign.id).limit(1)
    )).first()
    if busy is not None:
        raise conflict(
            f"Assistant is used by {busy.status} campaign '{busy.name}' ({busy.id}); cancel "
            "the campaign (or let it complete) before deleting the assistant"
        )
    await session.execute(update(PhoneNumber).where(PhoneNumber.assistant_id == a.id)
                          .values(assistant_id=None, updated_at=utcnow()))
    referred = await session.scalar(select(
        exists().where(Campaign.assistant_id == a.id)
        | exists().where(Call.assistant_id == a.id)))
    if referred:
        a.deleted_at = a.updated_at = utcnow()
    else:
        await session.delete(a)
    await session.flush()


# ---------------------------------------------------------------- phone numbers


async def assistant_numbers(
    session: AsyncSession, p: Principal, assistant_id: str
) -> list[dict[str, Any]]:
    a = await _owned(session, p, assistant_id)
    return await _numbers_of(session, a.id)


async def _numbers_of(session: AsyncSession, assistant_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(PhoneNumber).where(PhoneNumber.assistant_id == assistant_id)
        .order_by(PhoneNumber.id)
    )
    return [number_out(n) for n in rows]


async def assign_numbers(
    session: AsyncSession, p: Principal, assistant_id: str, number_ids: list[str], *,
    replace: bool,
) -> list[dict[str, Any]]:
    """Give the assistant these numbers (``replace``: exactly these; else: these too).

    Every id must be one of the team's numbers (400 malformed, 404 unknown, 403 another
    team's); a number assigned to another assistant is a 409 (unassign it there first).
    Under ``replace``, a number dropped from the set while a running campaign of this
    assistant dials from it is a 409.
    """
    a = await _owned(session, p, assistant_id, for_update=True)
    wanted = list(dict.fromkeys(number_ids))
    bad = [i for i in wanted if not ids.is_valid("pn", i)]
    if bad:
        raise bad_request(f"phoneNumberIds has ids that are not phone number ids: "
                          f"{', '.join(bad[:20])}", "phoneNumberIds")
    ids_ = list(wanted)
    if replace:  # the numbers assigned now, to see which are dropped
        ids_ += list(await session.scalars(
            p.scope.select(PhoneNumber.id).where(PhoneNumber.assistant_id == a.id)))
    rows = await p.scope.get_many(
        session, PhoneNumber, ids_, for_update=True,
        forbidden_error="Forbidden: phoneNumberIds includes another team's number")
    unknown = [i for i in wanted if i not in rows]
    if unknown:
        msg = "Phone numbers not found: " + ", ".join(unknown[:20])
        raise ApiError(404, msg, {"phoneNumberIds": msg})
    taken = [rows[i] for i in wanted if rows[i].assistant_id not in (None, a.id)]
    if taken:
        n = taken[0]
        raise ApiError(
            409,
            f"Phone number {n.phone_number} ({n.id}) is assigned to another assistant "
            f"({n.assistant_id}); unassign it there first",
            {"phoneNumberIds": f"{n.id} is assigned to another assistant"},
        )
    dropped = [n for n in rows.values() if replace and n.assistant_id == a.id
               and n.id not in wanted]
    if dropped:
        mine = [c for c in await running_campaigns(session, p.team_id)
                if c.assistant_id == a.id]
        for n in dropped:
            c = campaign_using(mine, n.id)
            if c is not None:
                raise conflict(
                    f"Phone number {n.phone_number} ({n.id}) is a caller ID of running "
                    f"campaign '{c.name}' ({c.id}); pause or cancel it before unassigning"
                )
    now = utcnow()
    for n in dropped:
        n.assistant_id = None
        n.updated_at = now
    for i in wanted:
        if rows[i].assistant_id != a.id:
            rows[i].assistant_id = a.id
            rows[i].updated_at = now
    await session.flush()
    return await _numbers_of(session, a.id)
