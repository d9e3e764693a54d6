"""Phone numbers: the team's numbers, search and buy from the carrier, assign to an assistant,
release."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from callfleet.assistants import service as assistants
from callfleet.errors import ApiError
from callfleet.numbers import service as numbers
from callfleet.numbers.models import PhoneNumber
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import field_errors, int_param, query_text, text_values
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)


def _carrier(ctx: Ctx) -> Any:
    carrier = getattr(ctx.request.app.state, "carrier", None)
    if carrier is None:
        raise ApiError(503, "No telephony carrier is configured")
    return carrier


async def _page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                offers: list[dict[str, Any]] | None = None, search: dict[str, Any] | None = None,
                flash: str | None = None) -> Response:
    owned, total = await numbers.list_numbers(ctx.s, ctx.p, status=None, assistant_id=None,
                                              limit=500, offset=0)
    assistant_list, _ = await assistants.list_assistants(ctx.s, ctx.p, 200, 0)
    names = {a["id"]: a["name"] for a in assistant_list}
    params = ctx.request.query_params
    flash = flash or ("Number bought." if "bought" in params else
                      "Number released." if "released" in params else
                      "Assignment saved." if "assigned" in params else None)
    return page(ctx.request, "numbers/list.html", user=ctx.user, status=status,
                numbers=owned, total=total, assistants=assistant_list, assistant_names=names,
                offers=offers, search=search or {"countryCode": "US", "numberType": "local"},
                errors=errors or {}, flash=flash, carrier=_carrier(ctx).name)


@router.get("/phone-numbers")
async def numbers_page(ctx: Viewer) -> Response:
    params = ctx.request.query_params
    if "countryCode" not in params:
        return await _page(ctx)
    search = {"countryCode": query_text(params, "countryCode") or "",
              "areaCode": query_text(params, "areaCode") or "",
              "numberType": query_text(params, "numberType") or "local"}
    try:
        if search["numberType"] not in ("local", "toll-free"):
            raise ApiError(400, "Type must be local or toll-free",
                           {"numberType": "Must be local or toll-free"})
        offers = await numbers.search(_carrier(ctx), search["countryCode"], search["areaCode"],
                                      search["numberType"],
                                      int_param(params.get("limit"), 10, minimum=1, maximum=50))
    except ApiError as exc:
        errors = {k.removeprefix("filters."): v for k, v in field_errors(exc).items()}
        return await _page(ctx, status=400, errors=errors, search=search)
    return await _page(ctx, offers=offers, search=search)


@router.post("/phone-numbers/buy")
async def buy(ctx: Editor) -> Response:
    values = text_values(await read_form(ctx.request), ("phoneNumber",))
    try:
        await numbers.purchase(ctx.s, ctx.p, _carrier(ctx),
                               {"phone_number": values.get("phoneNumber")},
                               ctx.region)
    except ApiError as exc:
        await ctx.s.rollback()
        return await _page(ctx, status=exc.status if exc.status != 409 else 409,
                           errors=field_errors(exc))
    return await ctx.done("/phone-numbers?bought=1")


@router.post("/phone-numbers/{number_id}/assign")
async def assign(number_id: str, ctx: Editor) -> Response:
    """Give the number to one assistant (or to none): taken from its current assistant,
    added to the new one, through the API's assignment rules."""
    number = await ctx.p.scope.get(ctx.s, PhoneNumber, number_id)
    target = text_values(await read_form(ctx.request), ("assistantId",)).get("assistantId")
    try:
        if number.assistant_id and number.assistant_id != target:
            kept = [n["id"] for n in await assistants.assistant_numbers(
                ctx.s, ctx.p, number.assistant_id) if n["id"] != number.id]
            await assistants.assign_numbers(ctx.s, ctx.p, number.assistant_id, kept,
                                            replace=True)
        if target and target != number.assistant_id:
            await assistants.assign_numbers(ctx.s, ctx.p, target, [number.id], replace=False)
    except ApiError as exc:
        if exc.status == 404 and not exc.details:
            raise
        await ctx.s.rollback()
        return await _page(ctx, status=exc.status, errors={"_form": exc.error})
    return await ctx.done("/phone-numbers?assigned=1")


@router.post("/phone-numbers/{number_id}/release")
async def release(number_id: str, ctx: Editor) -> Response:
    try:
        await numbers.release_number(ctx.s, ctx.p, _carrier(ctx), number_id)
    except ApiError as exc:
        if exc.status != 409:
            raise
        await ctx.s.rollback()
        return await _page(ctx, status=409, errors={"_form": exc.error})
    return await ctx.done("/phone-numbers?released=1")
