"""A team's own carrier accounts (``/api/team/carriers/{provider}``): checked with the carrier
before they are stored, kept encrypted at rest, shown masked.

The route owns the transaction; nothing here commits.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.carriers import accounts
from callfleet.carriers.accounts import (
    REAL_PROVIDERS,
    TWILIO_SID,
    Account,
    TelnyxAccount,
    TwilioAccount,
    deployment_account,
)
from callfleet.carriers.calling import PublicUrlError, public_base
from callfleet.carriers.models import CarrierAccount
from callfleet.carriers.router import CarrierRouter
from callfleet.config import Settings
from callfleet.db.base import iso, utcnow
from callfleet.errors import bad_request, conflict, not_found
from callfleet.teams.principal import Principal

CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def check_provider(provider: str) -> str:
    if provider not in REAL_PROVIDERS:
        raise bad_request("provider must be twilio or telnyx", "provider")
    return provider


def account_out(row: CarrierAccount) -> dict[str, Any]:
    return {"provider": row.provider, "source": "team", **(row.summary or {}),
            "calls_per_second": row.calls_per_second,
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


def _text(data: dict[str, Any], key: str, name: str, max_len: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name} is required", name)
    value = value.strip()
    if len(value) > max_len or any(ord(ch) < 32 for ch in value):
        raise bad_request(f"{name} must be at most {max_len} printable characters", name)
    return value


def parse_account(provider: str, data: dict[str, Any], team_id: str, settings: Settings
                  ) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    """(the account, its sealed secret's fields, what may be shown) from a PUT body."""
    cps = data.get("calls_per_second")
    if provider == "twilio":
        sid = _text(data, "account_sid", "accountSid", 64)
        if not TWILIO_SID.match(sid):
            raise bad_request("accountSid must be AC followed by 32 hex digits", "accountSid")
        token = _text(data, "auth_token", "authToken", 200)
        account: Account = TwilioAccount(
            sid, token, settings.twilio_api_base_url,
            cps if cps is not None else settings.twilio_calls_per_second, team_id)
        return (account, {"account_sid": sid, "auth_token": token},
                {"account_sid": sid, "auth_token": accounts.mask(token)})
    key = _text(data, "api_key", "apiKey", 500)
    public_key = _text(data, "public_key", "publicKey", 200)
    try:
        accounts.telnyx_public_key_bytes(public_key)
    except ValueError as exc:
        raise bad_request(f"publicKey {exc}", "publicKey") from None
    connection = _text(data, "connection_id", "connectionId", 100)
    if not CONNECTION_ID.match(connection):
        raise bad_request("connectionId must be letters, digits, '-' or '_'", "connectionId")
    account = TelnyxAccount(key, public_key, connection, settings.telnyx_api_base_url,
                            cps if cps is not None else settings.telnyx_calls_per_second,
                            team_id)
    return (account, {"api_key": key, "public_key": public_key, "connection_id": connection},
            {"connection_id": connection, "api_key": accounts.mask(key),
             "public_key": public_key})


async def put_account(session: AsyncSession, p: Principal, provider: str,
                      data: dict[str, Any], settings: Settings, router: CarrierRouter
                      ) -> dict[str, Any]:
    """Store the team's own account of ``provider`` once the carrier accepts it."""
    check_provider(provider)
    try:
        public_base(settings.public_url)
    except PublicUrlError as exc:
        raise conflict(f"{exc}; the operator must set it before a team can bring its own "
                       "carrier account") from None
    account, secret, summary = parse_account(provider, data, p.team_id, settings)
    await router.adapter(account).verify()
    row = await session.get(CarrierAccount, (p.team_id, provider))
    now = utcnow()
    if row is None:
        row = CarrierAccount(team_id=p.team_id, provider=provider, created_at=now)
        session.add(row)
    row.credentials = accounts.seal(settings, secret)
    row.summary = summary
    row.calls_per_second = data.get("calls_per_second")
    row.updated_at = now
    await session.flush()
    return account_out(row)


async def get_account(session: AsyncSession, p: Principal, provider: str) -> dict[str, Any]:
    row = await session.get(CarrierAccount, (p.team_id, check_provider(provider)))
    if row is None:
        raise not_found(f"The team's own {provider} account")
    return account_out(row)


async def list_accounts(session: AsyncSession, p: Principal, settings: Settings
                        ) -> list[dict[str, Any]]:
    """Per real provider: the team's own account, else whether the deployment's is used."""
    own = {r.provider: r for r in await session.scalars(p.scope.select(CarrierAccount))}
    out: list[dict[str, Any]] = []
    for provider in REAL_PROVIDERS:
        if provider in own:
            out.append(account_out(own[provider]))
        else:
            source = "deployment" if deployment_account(settings, provider) else None
            out.append({"provider": provider, "source": source})
    return out


async def delete_account(session: AsyncSession, p: Principal, provider: str) -> None:
    row = await session.get(CarrierAccount, (p.team_id, check_provider(provider)))
    if row is None:
        raise not_found(f"The team's own {provider} account")
    await session.delete(row)
    await session.flush()


def forget(team_id: str, provider: str) -> None:
    accounts.forget(team_id, provider)


