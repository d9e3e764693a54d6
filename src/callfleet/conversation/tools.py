"""The assistant's tools during an LLM conversation: ``end_call``, ``transfer_call`` and the
custom webhook tools configured on the assistant.

``specs`` gives the OpenAI ``tools`` list for an assistant; ``run_webhook`` calls one custom
tool (HTTP POST with a timeout) and always returns text for the model: a failure becomes an
error message the model can react to, never an exception that ends the call.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import structlog

from callfleet.outbound import OutboundURLRejected
from callfleet.secrets import secret_box

log = structlog.get_logger("callfleet.tools")

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
RESERVED = (END_CALL, TRANSFER_CALL)
TOOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")
MAX_RESULT_CHARS = 2000


def end_call_enabled(assistant: Any) -> bool:
    return bool((getattr(assistant, "end_call", None) or {}).get("enabled"))


def departments(assistant: Any) -> list[dict[str, Any]]:
    cfg = getattr(assistant, "call_transfer", None) or {}
    if not cfg.get("enabled"):
        return []
    return [d for d in cfg.get("departments") or [] if d.get("name")]


def custom_tools(assistant: Any) -> list[dict[str, Any]]:
    return [t for t in (getattr(assistant, "tools", None) or []) if t.get("name") and t.get("url")]


def specs(assistant: Any) -> list[dict[str, Any]]:
    """OpenAI function-tool definitions for the assistant's enabled tools."""
    out: list[dict[str, Any]] = []
    if end_call_enabled(assistant):
        out.append({"type": "function", "function": {
            "name": END_CALL,
            "description": "End the call when the conversation is over (after saying goodbye "
                           "or when the person asks to end it).",
            "parameters": {"type": "object", "properties": {
                "reason": {"type": "string", "description": "Why the call ends."}}},
        }})
    deps = departments(assistant)
    if deps:
        out.append({"type": "function", "function": {
            "name": TRANSFER_CALL,
            "description": "Transfer the caller to a department: " + "; ".join(
                f"{d['name']} ({d.get('mode') or 'cold'})" for d in deps),
            "parameters": {"type": "object", "properties": {
                "department": {"type": "string", "enum": [d["name"] for d in deps]},
                "reason": {"type": "string"}}, "required": ["department"]},
        }})
    for tool in custom_tools(assistant):
        params = tool.get("parameters") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": {
            "name": tool["name"], "description": tool.get("description") or tool["name"],
            "parameters": params,
        }})
    return out


def find_department(assistant: Any, name: str | None) -> dict[str, Any] | None:
    deps = departments(assistant)
    for d in deps:
        if (name or "").strip().lower() == d["name"].lower():
            return d
    return deps[0] if len(deps) == 1 else None


async def run_webhook(tool: dict[str, Any], arguments: dict[str, Any], call: dict[str, Any],
                      http: httpx.AsyncClient, default_timeout: float) -> tuple[bool, str]:
    """POST ``{"tool", "arguments", "call"}`` to the tool's URL. Returns (ok, text for the
    model): the response's ``result`` (or its body), or an error description."""
    timeout = float(tool.get("timeout_seconds") or default_timeout)
    box = secret_box()  # header values are stored encrypted (assistants/service.py)
    headers = {str(k): box.decrypt(str(v)) for k, v in (tool.get("headers") or {}).items()}
    body = {"tool": tool["name"], "arguments": arguments, "call": call}
    try:
        resp = await http.post(tool["url"], json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        log.warning("tool_timeout", tool=tool["name"], timeout=timeout)
        return False, f"error: the {tool['name']} tool did not answer within {timeout:g} s"
    except OutboundURLRejected as exc:  # the URL resolved to a refused address
        log.warning("tool_refused", tool=tool["name"], reason=str(exc))
        return False, f"error: the {tool['name']} tool's address is refused ({exc})"
    except httpx.HTTPError as exc:
        log.warning("tool_unreachable", tool=tool["name"], error=type(exc).__name__)
        return False, f"error: the {tool['name']} tool could not be reached"
    if resp.status_code >= 400:
        log.warning("tool_failed", tool=tool["name"], status=resp.status_code)
        return False, f"error: the {tool['name']} tool answered HTTP {resp.status_code}"
    text = resp.text
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and "result" in data:
        result = data["result"]
        text = result if isinstance(result, str) else json.dumps(result)
    return True, text[:MAX_RESULT_CHARS]
