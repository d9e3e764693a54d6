"""Phone numbers: search and purchase through the carrier, import, list, update, release.

Services never commit; the route (or ``api.idempotency``) owns the transaction. The carrier
(or the resolver of a team's carrier per provider, ``carriers.router``) is passed in by the
route (``app.state.carrier``), so this module never sees the request.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.campaigns.models import Campaign
from callfleet.carriers.base import AvailableNumber, Carrier, CarrierResolver
from callfleet.crm import fields as F
from callfleet.crm.models import Company
from callfleet.db.base import iso, utcnow
from callfleet.errors import ApiError, bad_request, conflict
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.principal import Principal, TeamScope

STATUSES = ("purchasing", "active", "suspended", "error")
# How many offers a purchase re-search asks for: enough to cover a whole simulated area.
PURCHASE_SEARCH_LIMIT = 1000


# ---------------------------------------------------------------- serializers


def number_out(n: PhoneNumber) -> dict[str, Any]:
    price = n.monthly_price
    return {
        "id": n.id,
        "team_id": n.team_id,
        "phone_number": n.phone_number,
        "provider": n.provider,
        "provider_ref": n.provider_ref,
        "status": n.status,
        "assistant_id": n.assistant_id,
        "friendly_name": n.friendly_name,
        "country_code": n.country_code,
        "number_type": n.number_type,
        "monthly_price": float(price) if isinstance(price, (Decimal, int, float)) else None,
        "capabilities": list(n.capabilities or []),
        "company_id": n.company_id,
        "created_at": iso(n.created_at),
        "updated_at": iso(n.updated_at),
    }


def offer_out(a: AvailableNumber) -> dict[str, Any]:
    return {
        "phoneNumber": a.phone_number,
        "monthlyPrice": float(a.monthly_price),
        "setupPrice": float(a.setup_price),
        "features": list(a.features),
    }


# ---------------------------------------------------------------- helpers


def _e164(value: str | None, name: str, region: str) -> str:
    try:
        number = F.normalize_phone(value, region)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}", name) from None
    if number is None:
        raise bad_request(f"{name} is required", name)
    return number


def _clean(value: str | None, name: str, max_len: int) -> str | None:
    try:
        return F.clean_text(value, max_len)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}", name) from None


def describe(number: str) -> tuple[str | None, str, str | None, str]:
    """(country code, number type, area code for a search, national format) of an E.164."""
    parsed = phonenumbers.parse(number)
    country = phonenumbers.region_code_for_number(parsed)
    kind = phonenumbers.number_type(parsed)
    ntype = "toll-free" if kind == phonenumbers.PhoneNumberType.TOLL_FREE else "local"
    national = str(parsed.national_number)
    area = national[:3] if parsed.country_code == 1 else None
    pretty = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return (country if country and country != "ZZ" else None), ntype, area, pretty


async def _existing(session: AsyncSession, p: Principal, number: str) -> None:
    """A number belongs to at most one team, once: 409 when anyone holds it already."""
    # Across teams on purpose: a number is unique in the whole deployment.
    row = (
        await session.execute(
            select(PhoneNumber.id).where(PhoneNumber.phone_number == number)
        )
    ).first()
    if row is None:
        return
    if await session.scalar(p.scope.select(PhoneNumber.id).where(PhoneNumber.id == row.id)):
        raise conflict(f"{number} is already one of this team's numbers ({row.id})")
    raise conflict(f"{number} is not available: it is already in use")


async def _insert(session: AsyncSession, n: PhoneNumber) -> None:
    session.add(n)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race for the same number (unique index): the other request owns it now.
        raise conflict(f"{n.phone_number} is not available: it is already in use") from None


async def running_campaigns(session: AsyncSession, team_id: str) -> list[Campaign]:
    rows = await session.scalars(
        TeamScope(team_id).select(Campaign).where(Campaign.status == "running",
                                                  Campaign.deleted_at.is_(None))
    )
    return list(rows)


def campaign_using(campaigns: list[Campaign], number_id: str) -> Campaign | None:
    """The first campaign listing ``number_id`` among its caller IDs."""
    for c in campaigns:
        if number_id in (c.from_number_ids or []):
            return c
    return None


# ---------------------------------------------------------------- search and purchase


async def search(
    carrier: Carrier, country_code: str, area_code: str | None, number_type: str, limit: int
) -> list[dict[str, Any]]:
    country = country_code.strip()
    if len(country) != 2 or not country.isalpha():
        raise bad_request("filters.countryCode must be an ISO-3166 alpha-2 code",
                          "filters.countryCode")
    area = (area_code or "").strip() or None
    if area is not None and not area.isdigit():
        raise bad_request("filters.areaCode must be digits", "filters.areaCode")
    offers = await carrier.search_numbers(country.upper(), area, number_type, limit)
    return [offer_out(a) for a in offers[:limit]]


async def purchase(
    session: AsyncSession, p: Principal, carrier: Carrier, data: dict[str, Any], region: str
) -> dict[str, Any]:
    """Buy a number the carrier offers. The offer is confirmed by searching the carrier again
    with the number's own country, type and area code (carrier-neutral: no adapter needs an
    "is this for sale" call)."""
    number = _e164(data.get("phone_number"), "phoneNumber", region)
    friendly = _clean(data.get("friendly_name"), "friendlyName", 200)
    await _existing(session, p, number)
    country, ntype, area, pretty = describe(number)
    offer = None
    find = getattr(carrier, "offer", None)  # a real carrier looks the number itself up
    if find is not None:
        offer = await find(number)
    elif country is not None:
        offers = await carrier.search_numbers(country, area, ntype, PURCHASE_SEARCH_LIMIT)
        offer = next((o for o in offers if o.phone_number == number), None)
    if offer is None:
        raise bad_request(
            f"phoneNumber {number} is not offered by the {carrier.name} carrier; "
            "pick one from POST /api/phone-numbers/search", "phoneNumber",
        )
    now = utcnow()
    n = PhoneNumber(
        id=ids.new_id("pn"), team_id=p.team_id, phone_number=number, provider=carrier.name,
        status="purchasing", friendly_name=friendly or pretty, country_code=offer.country_code,
        number_type=offer.number_type, monthly_price=Decimal(str(offer.monthly_price)),
        capabilities=list(offer.features), created_at=now, updated_at=now,
    )
    # Claim the number (unique index) before the carrier is asked to buy it.
    await _insert(session, n)
    n.provider_ref = await carrier.purchase_number(number)
    n.status = "active"
    await session.flush()
    return number_out(n)


async def import_number(
    session: AsyncSession, p: Principal, data: dict[str, Any], region: str,
    carriers: CarrierResolver,
) -> dict[str, Any]:
    """A number the team owns at a carrier. A real carrier confirms the account owns it and
    points its voice webhook at callfleet; its id for the number becomes ``provider_ref``."""
    number = _e164(data.get("phone_number"), "phoneNumber", region)
    provider = data.get("provider")
    if not provider:
        raise bad_request("provider is required (sim, twilio or telnyx)", "provider")
    ref = _clean(data.get("provider_ref"), "providerRef", 200)
    friendly = _clean(data.get("friendly_name"), "friendlyName", 200)
    await _existing(session, p, number)
    carrier = await carriers.for_team(p.team_id, provider)
    verify = getattr(carrier, "import_number", None)
    if verify is not None:
        ref = await verify(number)
    country, ntype, _, pretty = describe(number)
    now = utcnow()
    n = PhoneNumber(
        id=ids.new_id("pn"), team_id=p.team_id, phone_number=number, provider=provider,
        status="active", friendly_name=friendly or pretty, country_code=country,
        number_type=ntype, monthly_price=None, provider_ref=ref, capabilities=["voice"],
        created_at=now, updated_at=now,
    )
    await _insert(session, n)
    return number_out(n)


# ---------------------------------------------------------------- read, update, release


async def get_number(session: AsyncSession, p: Principal, number_id: str) -> dict[str, Any]:
    n = await p.scope.get(session, PhoneNumber, number_id)
    return number_out(n)


async def list_numbers(
    session: AsyncSession, p: Principal, *, status: str | None, assistant_id: str | None,
    limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(PhoneNumber)
    if status:
        if status not in STATUSES:
            raise bad_request("status must be one of " + ", ".join(STATUSES), "status")
        stmt = stmt.where(PhoneNumber.status == status)
    if assistant_id:
        if not ids.is_valid("asst", assistant_id):
            raise bad_request("assistantId is not a valid assistant id", "assistantId")
        stmt = stmt.where(PhoneNumber.assistant_id == assistant_id)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(PhoneNumber.id.desc()).limit(limit)
                                  .offset(offset))
    return [number_out(n) for n in rows], total


async def update_number(
    session: AsyncSession, p: Principal, number_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    n = await p.scope.get(session, PhoneNumber, number_id, for_update=True)
    if "friendly_name" in data:
        n.friendly_name = _clean(data["friendly_name"], "friendlyName", 200)
    if "status" in data:
        status = data["status"]
        if status is None:
            raise bad_request("status must be active or suspended", "status")
        if n.status in ("purchasing", "error") and status != n.status:
            raise conflict(f"A number in status {n.status} cannot be set to {status}")
        n.status = status
    if "company_id" in data:
        company_id = data["company_id"]
        if company_id is not None:
            await p.scope.get(session, Company, company_id)  # 404 / 403
        n.company_id = company_id
    n.updated_at = utcnow()
    await session.flush()
    return number_out(n)


async def release_number(
    session: AsyncSession, p: Principal, carriers: CarrierResolver, number_id: str
) -> None:
    """Delete the number and release it at its carrier (with the team's account for it).

    409 while a running campaign dials from it (pause or cancel the campaign first)."""
    n = await p.scope.get(session, PhoneNumber, number_id, for_update=True)
    using = campaign_using(await running_campaigns(session, p.team_id), n.id)
    if using is not None:
        raise ApiError(
            409,
            f"Phone number {n.phone_number} is a caller ID of running campaign "
            f"'{using.name}' ({using.id}); pause or cancel the campaign first",
        )
    carrier = await carriers.for_team(p.team_id, n.provider)
    await session.delete(n)
    await session.flush()
    await carrier.release_number(n.provider_ref)
