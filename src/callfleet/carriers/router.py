"""One ``Carrier`` for the dialer that routes every call to its own carrier account.

A call goes through the carrier of its caller-ID number (``calls.carrier``, the number's
``provider``): the simulated network, or Twilio or Telnyx with the team's own account when it
has one (``carriers.accounts``), else the deployment's. The dialer, the call events and the
conversation keep talking to one object with the ``Carrier`` protocol and its batch forms;
this module looks the calls up (one query per batch) and hands each to its adapter.

Pacing: ``pace`` holds each carrier account's calls-per-second limit across every worker
(``carriers.pacing``), inside the dialer's claim transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign
from callfleet.carriers import pacing
from callfleet.carriers.accounts import (
    REAL_PROVIDERS,
    Account,
    TwilioAccount,
    deployment_account,
    missing_settings,
    team_account,
)
from callfleet.carriers.base import (
    AvailableNumber,
    CarrierCallStatus,
    CarrierError,
    CarrierEvent,
    CarrierRejected,
)
from callfleet.carriers.calling import CallRecord, DialRequest, PublicUrlError, public_base
from callfleet.carriers.metrics import DIALS
from callfleet.carriers.sim.carrier import SimCarrier
from callfleet.carriers.telnyx.adapter import TelnyxCarrier
from callfleet.carriers.twilio.adapter import TwilioCarrier
from callfleet.config import Settings
from callfleet.db.session import Database

log = structlog.get_logger("callfleet.carriers")

# Dials sent to real carriers at once by one process (each is one HTTP request).
DIAL_CONCURRENCY = 16


class RealCarrier(Protocol):
    name: str
    account: Account

    async def dial(self, req: DialRequest) -> str: ...

    async def hangup(self, carrier_call_id: str, after_seconds: float = 0.0) -> None: ...

    async def status(self, rec: CallRecord) -> CarrierCallStatus | None: ...

    async def search_numbers(self, country_code: str, area_code: str | None,
                             number_type: str, limit: int) -> list[AvailableNumber]: ...

    async def offer(self, phone_number: str) -> AvailableNumber | None: ...

    async def purchase_number(self, phone_number: str) -> str: ...

    async def import_number(self, phone_number: str) -> str: ...

    async def release_number(self, provider_ref: str | None) -> None: ...

    async def verify(self) -> None: ...

    async def aclose(self) -> None: ...


def check_startup(settings: Settings) -> None:
    """A deployment whose default carrier is real must say how carriers reach it, and have
    the account's variables: a clear error at start-up instead of failed calls later."""
    if settings.carrier not in ("sim", *REAL_PROVIDERS):
        raise ValueError(f"unknown carrier {settings.carrier!r}; available: sim, twilio, "
                         "telnyx")
    real = [p for p in REAL_PROVIDERS
            if settings.carrier == p or deployment_account(settings, p) is not None]
    if real or settings.public_url:
        public_base(settings.public_url)
    if settings.carrier in REAL_PROVIDERS:
        missing = missing_settings(settings, settings.carrier)
        if missing:
            raise ValueError(f"CALLFLEET_CARRIER={settings.carrier} needs "
                             + ", ".join(missing))


def _fingerprint(account: Account) -> str:
    secret = (account.auth_token if isinstance(account, TwilioAccount)
              else f"{account.api_key}|{account.public_key}")
    return hashlib.sha256(f"{account.key}|{secret}|{account.api_base_url}".encode()
                          ).hexdigest()[:16]


class CarrierRouter:
    """The dialer's carrier: the simulated network plus every real account in use."""

    def __init__(self, db: Database, settings: Settings, sim: SimCarrier) -> None:
        self.db = db
        self.settings = settings
        self.sim = sim
        self.name = settings.carrier
        self._adapters: dict[tuple[str, str], tuple[str, RealCarrier]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ accounts

    async def account(self, session: AsyncSession, team_id: str, provider: str
                      ) -> Account | None:
        own = await team_account(session, team_id, provider, self.settings)
        return own or deployment_account(self.settings, provider)

    def adapter(self, account: Account) -> RealCarrier:
        """The adapter of one account (kept while its credentials stay the same)."""
        slot = (account.owner, account.provider)
        fingerprint = _fingerprint(account)
        held = self._adapters.get(slot)
        if held is not None and held[0] == fingerprint:
            return held[1]
        try:
            public = public_base(self.settings.public_url)
        except PublicUrlError as exc:
            raise CarrierError(str(exc), 409) from None
        timeout = self.settings.carrier_timeout_seconds
        made: RealCarrier = (TwilioCarrier(account, public, timeout=timeout)
                             if isinstance(account, TwilioAccount)
                             else TelnyxCarrier(account, public, timeout=timeout))
        if held is not None:  # the credentials changed: close the old client
            closing = asyncio.get_running_loop().create_task(held[1].aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._adapters[slot] = (fingerprint, made)
        return made

    async def for_team(self, team_id: str, provider: str | None) -> Any:
        """The adapter for the team's numbers of ``provider`` (default: CALLFLEET_CARRIER).
        400 naming ``provider`` when no account of it is configured."""
        provider = provider or self.name
        if provider == "sim":
            return self.sim
        if provider not in REAL_PROVIDERS:
            raise CarrierError(f"provider must be one of sim, {', '.join(REAL_PROVIDERS)}",
                               400, "provider")
        async with self.db.session(write=False) as s:
            account = await self.account(s, team_id, provider)
        if account is None:
            raise CarrierError(
                f"No {provider} account is configured: set the deployment's "
                f"CALLFLEET_{provider.upper()}_* variables or PUT /api/team/carriers/"
                f"{provider}", 400, "provider")
        return self.adapter(account)

    async def aclose(self) -> None:
        for _, adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()

    # ------------------------------------------------------------ the simulated network

    async def pump(self, deliver: Callable[[list[CarrierEvent]], Awaitable[None]],
                   limit: int = 500, claim_seconds: float = 10.0) -> int:
        return await self.sim.pump(deliver, limit=limit, claim_seconds=claim_seconds)

    async def set_profile(self, phone_number: str, behaviours: list[str],
                          persona: str | None = None, ring_seconds: int | None = None,
                          **more: Any) -> None:
        """Fix what a simulated number does (tests and the demo)."""
        await self.sim.set_profile(phone_number, behaviours, persona, ring_seconds, **more)

    # The Carrier protocol's number operations act on the default provider's deployment
    # account; the API resolves the team's own first (``for_team``).

    async def search_numbers(self, country_code: str, area_code: str | None,
                             number_type: str, limit: int) -> list[AvailableNumber]:
        return list(await self.sim.search_numbers(country_code, area_code, number_type, limit))

    async def purchase_number(self, phone_number: str) -> str:
        return await self.sim.purchase_number(phone_number)

    async def release_number(self, provider_ref: str | None) -> None:
        await self.sim.release_number(provider_ref)

    # ------------------------------------------------------------ pacing

    async def pace(self, session: AsyncSession, team_id: str, providers: list[str],
                   now: datetime) -> list[bool]:
        """Which of these dials (one provider each, in order) fit their carrier account's
        calls-per-second limit now; their tokens are taken in ``session``."""
        accounts: dict[str, Account | None] = {}
        for provider in set(providers):
            if provider in REAL_PROVIDERS:
                accounts[provider] = await self.account(session, team_id, provider)
        wanted: dict[str, tuple[int, float]] = {}
        for provider in providers:
            account = accounts.get(provider)
            if account is not None and account.calls_per_second > 0:
                n, _ = wanted.get(account.key, (0, 0.0))
                wanted[account.key] = (n + 1, account.calls_per_second)
        if not wanted:
            return [True] * len(providers)
        granted = await pacing.take(session, wanted, now)
        out = []
        for provider in providers:
            account = accounts.get(provider)
            if account is None or account.calls_per_second <= 0:
                out.append(True)
            elif granted[account.key] > 0:
                granted[account.key] -= 1
                out.append(True)
            else:
                out.append(False)
        return out

    # ------------------------------------------------------------ calls

    async def _rows(self, where: Any) -> list[Any]:
        async with self.db.session(write=False) as s:
            return list(await s.execute(
                select(Call.id, Call.team_id, Call.carrier, Call.carrier_call_id,
                       Call.from_number, Call.to_number, Call.started_at,
                       Assistant.voicemail_detection_enabled, Assistant.voicemail_action,
                       Campaign.voicemail_action.label("campaign_voicemail_action"))
                .outerjoin(Assistant, Assistant.id == Call.assistant_id)
                .outerjoin(Campaign, Campaign.id == Call.campaign_id)
                .where(where)))

    async def _adapter_for(self, team_id: str, provider: str) -> RealCarrier:
        adapter = await self.for_team(team_id, provider)
        return adapter  # type: ignore[no-any-return]

    def _dial_request(self, row: Any) -> DialRequest:
        action = row.campaign_voicemail_action or row.voicemail_action or "hangup"
        return DialRequest(
            call_ref=row.id, from_number=row.from_number, to_number=row.to_number,
            ring_timeout=self.settings.carrier_ring_timeout_seconds,
            time_limit=self.settings.carrier_max_call_seconds,
            detect_machine=bool(row.voicemail_detection_enabled),
            leave_message=action == "leave_message")

    async def place_call(self, call_ref: str, from_number: str, to_number: str) -> str:
        result = (await self.place_calls([(call_ref, from_number, to_number)]))[0]
        if isinstance(result, CarrierRejected):
            raise result
        if result is None:
            raise RuntimeError("the carrier did not confirm the dial")
        return result

    async def place_calls(self, dials: list[tuple[str, str, str]]
                          ) -> list[str | CarrierRejected | None]:
        """Dial each call through its carrier: the carrier's call id, a rejection, or None
        when the outcome is unknown (a timeout: the dial may have reached the carrier, so
        the call is left to reconciliation, never re-dialed)."""
        rows = {r.id: r for r in await self._rows(Call.id.in_([d[0] for d in dials]))}
        out: dict[str, str | CarrierRejected | None] = {}
        sim = [d for d in dials if rows.get(d[0]) is None or rows[d[0]].carrier == "sim"]
        if sim:
            out.update(zip([d[0] for d in sim], await self.sim.place_calls(sim), strict=True))
        gate = asyncio.Semaphore(DIAL_CONCURRENCY)

        async def dial(ref: str) -> None:
            row = rows[ref]
            async with gate:
                try:
                    adapter = await self._adapter_for(row.team_id, row.carrier)
                    out[ref] = await adapter.dial(self._dial_request(row))
                    result = "placed"
                except CarrierRejected as exc:
                    out[ref] = exc
                    result = "account_error" if exc.account_error else "rejected"
                except CarrierError as exc:  # no usable account for this call
                    out[ref] = CarrierRejected("failed", "no carrier account",
                                               account_error=True, detail=exc.error)
                    result = "account_error"
                except Exception as exc:  # noqa: BLE001 - unknown: reconciliation decides
                    log.warning("dial_unconfirmed", call_id=ref, carrier=row.carrier,
                                error=type(exc).__name__)
                    out[ref] = None
                    result = "unconfirmed"
                DIALS.labels(row.carrier, result).inc()

        await asyncio.gather(*(dial(d[0]) for d in dials if d[0] not in out))
        return [out.get(d[0]) for d in dials]

    async def hangup(self, carrier_call_id: str, after_seconds: float = 0.0) -> None:
        await self.hangup_many([(carrier_call_id, after_seconds)])

    async def hangup_many(self, hangups: list[tuple[str, float]]) -> None:
        rows = await self._rows(Call.carrier_call_id.in_([h[0] for h in hangups]))
        real = {r.carrier_call_id: r for r in rows if r.carrier != "sim"}
        sim = [h for h in hangups if h[0] not in real]
        if sim:
            await self.sim.hangup_many(sim)
        for carrier_call_id, after in hangups:
            row = real.get(carrier_call_id)
            if row is None:
                continue
            try:
                adapter = await self._adapter_for(row.team_id, row.carrier)
                await adapter.hangup(carrier_call_id, after)
            except Exception:
                log.warning("hangup_failed", call_id=row.id, carrier=row.carrier,
                            exc_info=True)

    async def transfer(self, carrier_call_id: str, to_number: str, *,
                       briefing: str | None = None, briefing_audio_url: str | None = None
                       ) -> None:
        """Transfer a live real-carrier call (cold; warm with a briefing the transferee
        hears first: text for Twilio, an audio URL for Telnyx). The caller ID shown to the
        transferee is the call's own number."""
        rows = await self._rows(Call.carrier_call_id == carrier_call_id)
        row = next((r for r in rows if r.carrier != "sim"), None)
        if row is None:
            raise CarrierError("Only a call on a real carrier can be transferred", 409)
        adapter: Any = await self._adapter_for(row.team_id, row.carrier)
        caller_id = row.from_number
        if row.carrier == "twilio":
            await adapter.transfer(carrier_call_id, to_number, caller_id=caller_id,
                                   briefing=briefing, call_ref=row.id)
        else:
            await adapter.transfer(carrier_call_id, to_number, caller_id=caller_id,
                                   briefing_audio_url=briefing_audio_url)

    async def call_status(self, call_ref: str) -> CarrierCallStatus | None:
        return (await self.call_statuses([call_ref]))[call_ref]

    async def call_statuses(self, call_refs: list[str]) -> dict[str, CarrierCallStatus | None]:
        rows = {r.id: r for r in await self._rows(Call.id.in_(call_refs))}
        sim = [ref for ref in call_refs if rows.get(ref) is None or rows[ref].carrier == "sim"]
        out: dict[str, CarrierCallStatus | None] = {}
        if sim:
            out.update(await self.sim.call_statuses(sim))
        by_account: dict[str, list[str]] = defaultdict(list)
        for ref in call_refs:
            if ref not in out:
                by_account[rows[ref].carrier].append(ref)

        async def ask(ref: str) -> None:
            row = rows[ref]
            try:
                adapter = await self._adapter_for(row.team_id, row.carrier)
                out[ref] = await adapter.status(CallRecord(
                    row.id, row.carrier_call_id, row.from_number, row.to_number,
                    row.started_at))
            except Exception:
                log.warning("reconcile_status_failed", call_id=ref, carrier=row.carrier,
                            exc_info=True)
                out[ref] = CarrierCallStatus(row.carrier_call_id or "", "ringing", None, None,
                                             None)

        await asyncio.gather(*(ask(ref) for refs in by_account.values() for ref in refs))
        return out


def make_router(db: Database, settings: Settings, sim: SimCarrier) -> CarrierRouter:
    check_startup(settings)
    return CarrierRouter(db, settings, sim)
