from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from callfleet.api.deps import Auth, Paging, ReadSession, WriteSession
from callfleet.api.responses import JSON
from callfleet.api.schemas import CamelIn, errors
from callfleet.errors import not_found
from callfleet.outbound import allowed_networks
from callfleet.teams import service as svc
from callfleet.teams.llm_settings import forget_team as forget_team_llm

router = APIRouter(prefix="/api", tags=["teams"])


class ApiKeyIn(CamelIn):
    name: str | None = Field(default=None, max_length=200)
    scopes: list[str] | None = Field(default=None, max_length=10)
    expires_at: datetime | None = None


class TeamSettingsIn(CamelIn):
    legal_hours_start: str | None = Field(default=None, max_length=8)
    legal_hours_end: str | None = Field(default=None, max_length=8)
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=1_000_000)
    calls_per_second: float | None = Field(default=None, gt=0, le=10_000)
    recording_retention_days: int | None = Field(default=None, ge=1, le=36500)
    llm_base_url: str | None = Field(default=None, max_length=500)
    llm_api_key: str | None = Field(default=None, max_length=500, description="Write-only.")
    llm_model: str | None = Field(default=None, max_length=120)
    # Live voice: an OpenAI-compatible speech endpoint and the speech providers' keys.
    speech_base_url: str | None = Field(default=None, max_length=500)
    speech_api_key: str | None = Field(default=None, max_length=500, description="Write-only.")
    deepgram_api_key: str | None = Field(default=None, max_length=500,
                                         description="Write-only.")
    cartesia_api_key: str | None = Field(default=None, max_length=500,
                                         description="Write-only.")
    elevenlabs_api_key: str | None = Field(default=None, max_length=500,
                                           description="Write-only.")


class TeamIn(CamelIn):
    name: str | None = Field(default=None, max_length=200)
    settings: TeamSettingsIn | None = None


class TeamSettingsOut(BaseModel):
    legal_hours_start: str | None
    legal_hours_end: str | None
    max_concurrent_calls: int | None
    calls_per_second: float | None
    recording_retention_days: int | None
    llm_base_url: str | None
    llm_model: str | None
    llm_api_key_set: bool
    speech_base_url: str | None
    speech_api_key_set: bool
    deepgram_api_key_set: bool
    cartesia_api_key_set: bool
    elevenlabs_api_key_set: bool


class TeamOut(BaseModel):
    id: str
    slug: str
    account_slug: str
    name: str
    settings: TeamSettingsOut
    active_calls: int
    created_at: str
    updated_at: str


class TeamEnvelope(BaseModel):
    success: bool = True
    team: TeamOut


class ApiKeyOut(BaseModel):
    id: str
    team_id: str
    name: str | None
    prefix: str
    scopes: list[str]
    expires_at: str | None
    revoked_at: str | None
    created_at: str
    key: str | None = Field(default=None, description="The token; only in the create response.")


class ApiKeyEnvelope(BaseModel):
    success: bool = True
    api_key: ApiKeyOut


class ApiKeyList(BaseModel):
    success: bool = True
    api_keys: list[ApiKeyOut]
    count: int
    limit: int
    offset: int


@router.get("/team", response_model=None, responses={200: {"model": TeamEnvelope}, **errors()})
async def get_team(p: Auth, s: ReadSession) -> JSON:
    team = await svc.get_team(s, p.team_id)
    if team is None:
        raise not_found("Team")
    return JSON({"success": True, "team": svc.team_out(team)})


@router.patch("/team", response_model=None,
              responses={200: {"model": TeamEnvelope}, **errors()})
async def update_team(body: TeamIn, p: Auth, s: WriteSession, request: Request) -> JSON:
    """Rename the team or set its dialing settings: legal hours (only narrower than the
    operator's), a team-wide cap on calls in progress, and calls started per second."""
    settings = request.app.state.settings
    changes = body.settings.model_dump(exclude_unset=True) if body.settings else {}
    team = await svc.update_team(s, p.team_id, body.name, changes,
                                 (settings.legal_hours_start, settings.legal_hours_end),
                                 allowed_networks(settings))
    await s.commit()
    forget_team_llm(p.team_id)
    return JSON({"success": True, "team": svc.team_out(team)})


@router.get("/api-keys", response_model=None, responses={200: {"model": ApiKeyList}, **errors()})
async def list_keys(p: Auth, s: ReadSession, page: Paging) -> JSON:
    items, total = await svc.list_keys(s, p, page.limit, page.offset)
    return page.respond("api_keys", items, total)


@router.post("/api-keys", status_code=201, response_model=None,
             responses={201: {"model": ApiKeyEnvelope}, **errors(403)})
async def create_key(body: ApiKeyIn, p: Auth, s: WriteSession) -> JSON:
    """Not idempotent by design: replaying would mean storing the token, which we never do."""
    key, token = await svc.create_key(
        s, p.team_id, name=body.name, scopes=body.scopes, expires_at=body.expires_at
    )
    await s.commit()
    return JSON({"success": True, "api_key": svc.key_out(key, token)}, status_code=201)


@router.delete("/api-keys/{key_id}", response_model=None,
               responses={200: {"model": ApiKeyEnvelope}, **errors(403, 404)})
async def revoke_key(key_id: str, p: Auth, s: WriteSession, request: Request) -> JSON:
    out = await svc.revoke_key(s, p, key_id)
    await s.commit()
    request.app.state.auth_cache.drop_key(key_id)
    return JSON({"success": True, "api_key": out})
