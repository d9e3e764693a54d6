"""HTTP for a team's own carrier accounts: ``/api/team/carriers[/{provider}]``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from callfleet.api.deps import Auth, ReadSession, WriteSession, get_settings_dep
from callfleet.api.responses import JSON
from callfleet.api.schemas import CamelIn, OkOut, errors
from callfleet.carriers import service as svc

router = APIRouter(prefix="/api", tags=["teams"])


class CarrierAccountIn(CamelIn):
    """Twilio: ``accountSid`` and ``authToken``. Telnyx: ``apiKey``, ``publicKey`` (the
    webhook verification key) and ``connectionId``. Both: ``callsPerSecond`` (default: the
    deployment's setting)."""

    account_sid: str | None = Field(default=None, max_length=64)
    auth_token: str | None = Field(default=None, max_length=200, description="Write-only.")
    api_key: str | None = Field(default=None, max_length=500, description="Write-only.")
    public_key: str | None = Field(default=None, max_length=200)
    connection_id: str | None = Field(default=None, max_length=100)
    calls_per_second: float | None = Field(default=None, gt=0, le=1000)


class CarrierAccountOut(BaseModel):
    provider: str
    source: str | None
    account_sid: str | None = None
    auth_token: str | None = Field(default=None, description="Masked.")
    connection_id: str | None = None
    api_key: str | None = Field(default=None, description="Masked.")
    public_key: str | None = None
    calls_per_second: float | None = None
    created_at: str | None = None
    updated_at: str | None = None


class CarrierAccountEnvelope(BaseModel):
    success: bool = True
    carrier: CarrierAccountOut


class CarrierAccountList(BaseModel):
    success: bool = True
    carriers: list[CarrierAccountOut]
    count: int


@router.get("/team/carriers", response_model=None,
            responses={200: {"model": CarrierAccountList}, **errors()})
async def list_carrier_accounts(p: Auth, s: ReadSession, request: Request) -> JSON:
    """Which account dials each real carrier for the team: its own, or the deployment's."""
    items = await svc.list_accounts(s, p, get_settings_dep(request))
    return JSON({"success": True, "carriers": items, "count": len(items)})


@router.get("/team/carriers/{provider}", response_model=None,
            responses={200: {"model": CarrierAccountEnvelope}, **errors(404)})
async def get_carrier_account(provider: str, p: Auth, s: ReadSession) -> JSON:
    return JSON({"success": True, "carrier": await svc.get_account(s, p, provider)})


@router.put("/team/carriers/{provider}", response_model=None,
            responses={200: {"model": CarrierAccountEnvelope}, **errors(409)})
async def put_carrier_account(provider: str, body: CarrierAccountIn, p: Auth,
                              s: WriteSession, request: Request) -> JSON:
    """Bring the team's own Twilio or Telnyx account: it dials, buys and releases the team's
    numbers of that provider instead of the deployment's account. The credentials are
    checked with the carrier, stored encrypted, and shown masked."""
    out = await svc.put_account(s, p, provider, body.model_dump(exclude_unset=True),
                                get_settings_dep(request), request.app.state.carrier)
    await s.commit()
    svc.forget(p.team_id, provider)
    return JSON({"success": True, "carrier": out})


@router.delete("/team/carriers/{provider}", response_model=None,
               responses={200: {"model": OkOut}, **errors(404)})
async def delete_carrier_account(provider: str, p: Auth, s: WriteSession) -> JSON:
    """Forget the team's own account: its numbers use the deployment's again."""
    await svc.delete_account(s, p, provider)
    await s.commit()
    svc.forget(p.team_id, provider)
    return JSON({"success": True})
