"""What a carrier callback needs before its signature can be checked: the call it names and
the carrier account that signs for it (the team's own, else the deployment's).

The call id in a callback is untrusted until the signature holds; it only chooses which
account's key to check with. A call that is not this provider's is checked against the
deployment's key and then ignored, so a forged id learns nothing and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.carriers.accounts import Account, deployment_account
from callfleet.carriers.router import CarrierRouter
from callfleet.numbers.models import PhoneNumber

MAX_CALLBACK_BYTES = 256 * 1024


@dataclass(frozen=True)
class CallbackTarget:
    call_id: str | None  # None: no call of this provider by that id
    carrier_call_id: str | None
    account: Account | None  # whose key signs for the callback


async def target(router: CarrierRouter, provider: str, call_ref: str | None
                 ) -> CallbackTarget:
    row: Any = None
    if call_ref and ids.is_valid("call", call_ref):
        async with router.db.session(write=False) as s:
            row = (await s.execute(
                select(Call.id, Call.team_id, Call.carrier, Call.carrier_call_id)
                .where(Call.id == call_ref))).first()
            if row is not None and row.carrier == provider:
                account = await router.account(s, row.team_id, provider)
                return CallbackTarget(row.id, row.carrier_call_id, account)
    return CallbackTarget(None, None, deployment_account(router.settings, provider))


async def carrier_call_target(router: CarrierRouter, provider: str,
                              carrier_call_id: str | None) -> CallbackTarget | None:
    """The call the carrier knows as ``carrier_call_id`` (an inbound call's status callback,
    sent to the number's URL without callfleet's call id), None when there is none."""
    if not carrier_call_id or len(carrier_call_id) > 100:
        return None
    async with router.db.session(write=False) as s:
        row = (await s.execute(
            select(Call.id, Call.team_id, Call.carrier_call_id)
            .where(Call.carrier == provider, Call.carrier_call_id == carrier_call_id))).first()
        if row is None:
            return None
        account = await router.account(s, row.team_id, provider)
        return CallbackTarget(row.id, row.carrier_call_id, account)


async def number_target(router: CarrierRouter, provider: str, phone_number: str | None
                        ) -> CallbackTarget:
    """For a call *to* one of the deployment's numbers (inbound): the account that owns the
    number signs for it (the deployment's when the number is unknown)."""
    if phone_number:
        async with router.db.session(write=False) as s:
            row = (await s.execute(
                select(PhoneNumber.team_id, PhoneNumber.provider)
                .where(PhoneNumber.phone_number == phone_number[:32]))).first()
            if row is not None and row.provider == provider:
                account = await router.account(s, row.team_id, provider)
                return CallbackTarget(None, None, account)
    return CallbackTarget(None, None, deployment_account(router.settings, provider))
