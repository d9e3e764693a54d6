"""Prompt variables: ``{{contact.first_name}}``, ``{{company.custom.KEY}}``, ... rendered per call.

Rendering never raises: a variable with no value renders as the empty string and its name is
returned, so the caller can write it into the call's log (SPEC 3, Assistants). The lookup is
a flat dict of dotted names built by ``variables_for`` from the plain dicts the CRM
serializers produce, so the conversation runtime needs no ORM objects to render a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# ``{{ name }}``: whitespace inside the braces is tolerated; a name never contains braces.
_VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

CONTACT_FIELDS = (
    "id", "first_name", "last_name", "email", "phone", "phone_secondary", "job_title",
    "lead_status", "source", "timezone", "preferred_contact_method", "notes",
)
COMPANY_FIELDS = (
    "id", "name", "website", "industry", "company_size", "phone", "address_line1",
    "address_line2", "city", "state", "postal_code", "country", "notes",
)
CAMPAIGN_FIELDS = ("id", "name", "description")


def _text(value: Any) -> str | None:
    """How a value reads in a prompt; None when there is nothing to say."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        parts = [t for t in (_text(v) for v in value) if t]
        return ", ".join(parts) if parts else None
    if isinstance(value, dict):
        return None
    return str(value)


def _lookup(variables: Mapping[str, Any], name: str) -> Any:
    """A flat dotted key first (``variables_for`` output), then a walk through nested dicts."""
    if name in variables:
        return variables[name]
    node: Any = variables
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def render(template: str, variables: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Substitute every ``{{name}}`` in ``template``.

    Returns the text and the names (in order of first appearance, without duplicates) that had
    no value and rendered empty. Never raises on odd input: ``{{}}`` or ``{{ no such }}`` are
    simply reported.
    """
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = _text(_lookup(variables, name)) if name else None
        if value is None:
            if name not in missing:
                missing.append(name)
            return ""
        return value

    return _VARIABLE.sub(substitute, template or ""), missing


def variable_names(template: str) -> list[str]:
    """The variable names a template uses (for validation and the dashboard)."""
    return list(dict.fromkeys(m.group(1) for m in _VARIABLE.finditer(template or "")))


def _entity(prefix: str, data: Mapping[str, Any] | None, names: tuple[str, ...],
            out: dict[str, Any]) -> None:
    if not data:
        return
    for name in names:
        if data.get(name) is not None:
            out[f"{prefix}.{name}"] = data[name]
    custom = data.get("custom_fields")
    if isinstance(custom, Mapping):
        for key, value in custom.items():
            if value is not None:
                out[f"{prefix}.custom.{key}"] = value


def variables_for(
    contact: Mapping[str, Any] | None,
    company: Mapping[str, Any] | None,
    campaign: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The lookup for ``render`` from serialized CRM objects (``crm.views.contact_out`` /
    ``company_out`` shapes) and a campaign dict (only ``id``, ``name``, ``description`` used).

    Besides the documented names (``contact.first_name``, ``contact.full_name``,
    ``contact.custom.KEY``, ``company.name``, ``company.custom.KEY``, ``campaign.name``) every
    scalar field of the contact and company is available under its snake_case name.
    """
    out: dict[str, Any] = {}
    _entity("contact", contact, CONTACT_FIELDS, out)
    if contact:
        full = " ".join(
            str(p).strip() for p in (contact.get("first_name"), contact.get("last_name")) if p
        ).strip()
        if full:
            out["contact.full_name"] = full
    _entity("company", company, COMPANY_FIELDS, out)
    if campaign:
        for name in CAMPAIGN_FIELDS:
            if campaign.get(name) is not None:
                out[f"campaign.{name}"] = campaign[name]
    return out
