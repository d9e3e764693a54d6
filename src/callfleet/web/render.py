"""Templates: one Jinja2 environment with autoescaping, and the page response.

Every page is rendered on the server; htmx swaps fragments of the same templates. The
response headers lock pages down: scripts and styles only from this origin (the vendored
htmx), no framing, no referrer beyond this origin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from callfleet.teams.signin import SignedIn

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _when(value: str | datetime | None) -> str:
    """ISO timestamps as ``2026-12-06 09:30 UTC`` (the browser shows local time via
    ``<time datetime>``; the text is readable without JavaScript)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value[:16].replace("T", " ") + " UTC" if len(value) >= 16 else value


def clean_url(path: str, params: dict[str, Any]) -> str:
    """The address of a filtered list without its empty filters (for htmx to push)."""
    query = _query(params)
    return path + (f"?{query}" if query else "")


def _query(params: dict[str, Any], **changes: Any) -> str:
    """The query string of ``params`` with ``changes`` applied; empty values dropped."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "", False)})


def _humanize(value: str | None) -> str:
    return (value or "").replace("_", " ")


ENV = Environment(
    loader=PackageLoader("callfleet.web", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["number"] = _number
ENV.filters["when"] = _when
ENV.filters["humanize"] = _humanize
ENV.filters["pairs"] = lambda items: [(i, i) for i in items or ()]
ENV.globals["query"] = _query

NAV = (
    ("campaigns", "Campaigns", "/campaigns"),
    ("contacts", "Contacts", "/contacts"),
    ("companies", "Companies", "/companies"),
    ("calls", "Calls", "/calls"),
    ("assistants", "Assistants", "/assistants"),
    ("numbers", "Phone numbers", "/phone-numbers"),
    ("settings", "Settings", "/settings"),
)


def page(
    request: Request, template: str, *, user: SignedIn | None = None, status: int = 200,
    headers: dict[str, str] | None = None, **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the signed-in user, the navigation and ``context``."""
    html = ENV.get_template(template).render(
        request=request, user=user, nav=NAV, path=request.url.path,
        csrf_token=user.csrf_token if user else context.pop("csrf_token", ""),
        **{"errors": {}, "values": {}, "flash": None, **context},
    )
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def fragment(template: str, **context: Any) -> str:
    """A template (or an htmx fragment) rendered to text, with no page around it."""
    return ENV.get_template(template).render(**context)
