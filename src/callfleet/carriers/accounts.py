"""Carrier accounts: the deployment's (``CALLFLEET_TWILIO_*``, ``CALLFLEET_TELNYX_*``) and a
team's own (``PUT /api/team/carriers/{provider}``, table ``carrier_accounts``).

A team's numbers of a provider are dialed, bought and released with the team's own account
when it has one, else with the deployment's. Credentials are decrypted only here, kept out of
``repr`` and logs, and cached per process for a few seconds (:func:`forget`) so that a dial
batch costs no query for them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.carriers.models import CarrierAccount
from callfleet.config import Settings
from callfleet.secrets import secret_box

REAL_PROVIDERS = ("twilio", "telnyx")
PROVIDERS = ("sim", *REAL_PROVIDERS)
TWILIO_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TTL = 5.0
_cache: dict[tuple[str, str], tuple[float, Account | None]] = {}


@dataclass(frozen=True)
class TwilioAccount:
    account_sid: str
    auth_token: str = field(repr=False)
    api_base_url: str
    calls_per_second: float
    owner: str  # "deployment" or the team's id

    provider = "twilio"

    @property
    def key(self) -> str:
        """The pacing bucket: Twilio limits calls per second per account."""
        return f"twilio:{self.account_sid}"


@dataclass(frozen=True)
class TelnyxAccount:
    api_key: str = field(repr=False)
    public_key: str | None
    connection_id: str
    api_base_url: str
    calls_per_second: float
    owner: str

    provider = "telnyx"

    @property
    def key(self) -> str:
        """The pacing bucket: Telnyx limits calls per second per connection."""
        return f"telnyx:{self.connection_id}"


Account = TwilioAccount | TelnyxAccount


def deployment_account(settings: Settings, provider: str) -> Account | None:
    """The operator's account of ``provider``, when its variables are all set."""
    if provider == "twilio" and settings.twilio_account_sid and settings.twilio_auth_token:
        return TwilioAccount(settings.twilio_account_sid, settings.twilio_auth_token,
                             settings.twilio_api_base_url, settings.twilio_calls_per_second,
                             "deployment")
    if (provider == "telnyx" and settings.telnyx_api_key and settings.telnyx_connection_id):
        return TelnyxAccount(settings.telnyx_api_key, settings.telnyx_public_key,
                             settings.telnyx_connection_id, settings.telnyx_api_base_url,
                             settings.telnyx_calls_per_second, "deployment")
    return None


def missing_settings(settings: Settings, provider: str) -> list[str]:
    """The variables a deployment account of ``provider`` still needs."""
    wanted = {"twilio": ("twilio_account_sid", "twilio_auth_token"),
              "telnyx": ("telnyx_api_key", "telnyx_public_key", "telnyx_connection_id")}
    return [f"CALLFLEET_{name.upper()}" for name in wanted.get(provider, ())
            if not getattr(settings, name)]


def account_from_row(row: CarrierAccount, settings: Settings) -> Account:
    secret = json.loads(secret_box(settings).decrypt(row.credentials))
    if row.provider == "twilio":
        return TwilioAccount(secret["account_sid"], secret["auth_token"],
                             settings.twilio_api_base_url,
                             row.calls_per_second if row.calls_per_second is not None
                             else settings.twilio_calls_per_second, row.team_id)
    return TelnyxAccount(secret["api_key"], secret.get("public_key"), secret["connection_id"],
                         settings.telnyx_api_base_url,
                         row.calls_per_second if row.calls_per_second is not None
                         else settings.telnyx_calls_per_second, row.team_id)


async def team_account(session: AsyncSession, team_id: str, provider: str,
                       settings: Settings) -> Account | None:
    """The team's own account of ``provider`` (cached a few seconds per process)."""
    now = time.monotonic()
    hit = _cache.get((team_id, provider))
    if hit is not None and now - hit[0] < _TTL:
        return hit[1]
    row = await session.get(CarrierAccount, (team_id, provider))
    account = account_from_row(row, settings) if row is not None else None
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[(team_id, provider)] = (now, account)
    return account


def forget(team_id: str, provider: str) -> None:
    """Drop the cached account (the account routes call this after a change)."""
    _cache.pop((team_id, provider), None)


def seal(settings: Settings, secret: dict[str, Any]) -> str:
    return secret_box(settings).encrypt(json.dumps(secret, sort_keys=True))


def mask(secret: str) -> str:
    """``••••1a2b``: enough to recognise a key, never enough to use it."""
    return "••••" + secret[-4:] if len(secret) > 8 else "••••"


def telnyx_public_key_bytes(value: str) -> bytes:
    """A Telnyx webhook public key: base64 of 32 bytes (ValueError otherwise)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) != 32:
        raise ValueError("must be a 32-byte Ed25519 public key in base64")
    return raw
