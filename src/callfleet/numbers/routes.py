"""HTTP for phone numbers: parse, call numbers.service, wrap in the envelope. No SQL here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from callfleet.api.deps import Auth, Paging, Q, ReadSession, WriteSession, get_settings_dep
from callfleet.api.idempotency import respond_created
from callfleet.api.responses import JSON
from callfleet.api.schemas import ErrorOut, OkOut, errors
from callfleet.carriers.base import Carrier
from callfleet.errors import ApiError
from callfleet.numbers import service as svc
from callfleet.numbers.schemas import (
    ImportIn,
    NumberSearchIn,
    NumberSearchOut,
    PhoneNumberEnvelope,
    PhoneNumberList,
    PhoneNumberPatchIn,
    PurchaseIn,
)

router = APIRouter(prefix="/api", tags=["phone numbers"])
NO_CARRIER: dict[int | str, dict[str, Any]] = {503: {"model": ErrorOut, "description": "No carrier configured"}}


def carrier_of(request: Request) -> Carrier:
    carrier = getattr(request.app.state, "carrier", None)
    if carrier is None:
        raise ApiError(503, "No telephony carrier is configured")
    return carrier  # type: ignore[no-any-return]


def _region(request: Request) -> str:
    return get_settings_dep(request).default_region


@router.post("/phone-numbers/search", response_model=None,
             responses={200: {"model": NumberSearchOut}, **errors(), **NO_CARRIER})
async def search_numbers(body: NumberSearchIn, p: Auth, request: Request) -> JSON:
    """Numbers the carrier offers for sale (not yet owned by anyone)."""
    carrier = carrier_of(request)
    f = body.filters
    numbers = await svc.search(carrier, f.country_code, f.area_code, f.number_type, f.limit)
    return JSON({"success": True, "numbers": numbers, "provider": carrier.name,
                 "count": len(numbers)})


@router.post("/phone-numbers/purchase", status_code=201, response_model=None,
             responses={201: {"model": PhoneNumberEnvelope}, **errors(403, 409), **NO_CARRIER})
async def purchase_number(body: PurchaseIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    p.check_team(body.team_id)
    carrier = carrier_of(request)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        out = await svc.purchase(s, p, carrier, data, _region(request))
        return {"success": True, "phone_number": out}

    return await respond_created(request, s, p, make)


@router.post("/phone-numbers", status_code=201, response_model=None,
             responses={201: {"model": PhoneNumberEnvelope}, **errors(403, 409)})
async def import_number(body: ImportIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Bring in a number the team already owns at a carrier."""
    p.check_team(body.team_id)
    data = body.model_dump(exclude_unset=True)

    async def make() -> dict[str, Any]:
        return {"success": True,
                "phone_number": await svc.import_number(s, p, data, _region(request))}

    return await respond_created(request, s, p, make)


@router.get("/phone-numbers", response_model=None,
            responses={200: {"model": PhoneNumberList}, **errors(403)})
async def list_numbers(
    p: Auth, s: ReadSession, page: Paging, teamId: Q = None, status: Q = None,
    assistantId: Q = None,
) -> JSON:
    p.check_team(teamId)
    items, total = await svc.list_numbers(
        s, p, status=status, assistant_id=assistantId, limit=page.limit, offset=page.offset
    )
    return page.respond("phone_numbers", items, total)


@router.get("/phone-numbers/{phone_number_id}", response_model=None,
            responses={200: {"model": PhoneNumberEnvelope}, **errors(403, 404)})
async def get_number(phone_number_id: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "phone_number": await svc.get_number(s, p, phone_number_id)})


@router.patch("/phone-numbers/{phone_number_id}", response_model=None,
              responses={200: {"model": PhoneNumberEnvelope}, **errors(403, 404, 409)})
async def update_number(
    phone_number_id: str, body: PhoneNumberPatchIn, p: Auth, s: WriteSession
) -> JSON:
    p.check_team(body.team_id, required=False)
    out = await svc.update_number(s, p, phone_number_id, body.model_dump(exclude_unset=True))
    await s.commit()
    return JSON({"success": True, "phone_number": out})


@router.delete("/phone-numbers/{phone_number_id}", response_model=None,
               responses={200: {"model": OkOut}, **errors(403, 404, 409), **NO_CARRIER})
async def release_number(
    phone_number_id: str, p: Auth, s: WriteSession, request: Request
) -> JSON:
    """Release the number (at the carrier too, when it was bought through it)."""
    await svc.release_number(s, p, carrier_of(request), phone_number_id)
    await s.commit()
    return JSON({"success": True})
