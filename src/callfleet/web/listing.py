"""The list pages' common shape: filters from the query string, a page of a service's list,
the service's 400 shown beside the filter, and the results fragment alone (with the URL to
push) when htmx asks for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from callfleet.errors import ApiError
from callfleet.web.auth import Ctx
from callfleet.web.forms import field_errors, int_param, query_text
from callfleet.web.render import clean_url, page

Fetch = Callable[[dict[str, str | None], int], Awaitable[tuple[list[dict[str, Any]], int]]]


async def list_page(ctx: Ctx, *, path: str, name: str, filters: tuple[str, ...], fetch: Fetch,
                    page_size: int, extra: dict[str, Any] | None = None,
                    decorate: Callable[[list[dict[str, Any]]], Awaitable[dict[str, Any]]]
                    | None = None,
                    full: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> Response:
    """``/<name>`` with ``templates/<name>/list.html`` and its ``_results.html`` fragment
    (target ``#<singular>-results``). ``decorate`` adds context derived from the page's
    rows; ``full`` adds what only the whole page needs (filter choices)."""
    params = ctx.request.query_params
    values = {k: query_text(params, k) for k in filters}
    offset = int_param(params.get("offset"), 0)
    errors: dict[str, str] = {}
    try:
        items, total = await fetch(values, offset)
    except ApiError as exc:
        items, total, errors = [], 0, field_errors(exc)
    context: dict[str, Any] = {
        name: items, "total": total, "offset": offset, "page_size": page_size,
        "filters": values, "errors": errors, "filtered": any(values.values()),
        **(extra or {}), **(await decorate(items) if decorate else {})}
    target = name.removesuffix("s").replace("companie", "company") + "-results"
    if ctx.request.headers.get("hx-target") == target:
        return page(ctx.request, f"{name}/_results.html", user=ctx.user, **context,
                    headers={"HX-Push-Url": clean_url(path, {**values, "offset": offset})})
    return page(ctx.request, f"{name}/list.html", user=ctx.user,
                status=400 if errors else 200, **context, **(await full() if full else {}))
