"""What the real carrier adapters (``carriers/twilio``, ``carriers/telnyx``) share: the dial
request, callfleet's record of a call for reconciliation, the URLs a carrier calls back on,
and the check that the carrier's SDK is installed.

Every URL derives from ``CALLFLEET_PUBLIC_URL`` (:func:`public_base`). Callfleet's call id
travels with every call (in the callback URLs, the stream's parameters, Telnyx's
``client_state``), so a callback finds its call without trusting anything but the signature.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import phonenumbers
import structlog

from callfleet.carriers.base import CarrierError, CarrierRejected
from callfleet.secrets import secret_box

log = structlog.get_logger("callfleet.carriers")

STREAM_TOKEN_PURPOSE = "media-stream:"


class PublicUrlError(ValueError):
    """``CALLFLEET_PUBLIC_URL`` is missing or not an absolute http(s) URL."""


@dataclass(frozen=True)
class DialRequest:
    call_ref: str  # callfleet's call id
    from_number: str
    to_number: str
    ring_timeout: int  # seconds the callee's phone rings
    time_limit: int  # seconds the call may last once answered
    detect_machine: bool  # ask the carrier's answering-machine detection
    leave_message: bool  # ... and wait for the greeting's end (a voicemail will be left)


@dataclass(frozen=True)
class CallRecord:
    """callfleet's own record of a call, for asking the carrier what became of it."""

    call_ref: str
    carrier_call_id: str | None
    from_number: str
    to_number: str
    started_at: datetime | None


def public_base(public_url: str | None) -> str:
    """The public base URL without a trailing slash; PublicUrlError when unusable."""
    if not public_url or not public_url.strip():
        raise PublicUrlError(
            "CALLFLEET_PUBLIC_URL is not set: a real carrier (Twilio, Telnyx) needs the "
            "https URL at which it reaches callfleet (see docs/carriers.md)")
    url = public_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise PublicUrlError(
            f"CALLFLEET_PUBLIC_URL must be an absolute http(s) URL without a query, not "
            f"{public_url!r}")
    return url


def callback_url(public_url: str, path: str, call_ref: str | None = None) -> str:
    url = f"{public_base(public_url)}{path}"
    return f"{url}?call={call_ref}" if call_ref else url


def stream_token(call_id: str) -> str:
    """The unguessable per-call token in a media stream's path: the deployment's link
    signature of ``media-stream:<call id>`` (the voice runtime checks the same), so any
    process of the deployment can check it and a leaked URL opens one call only."""
    return secret_box().sign(STREAM_TOKEN_PURPOSE + call_id)


def stream_url(public_url: str, carrier: str, call_id: str) -> str:
    """``wss://<public host>/voice/{carrier}/{call_id}/{token}``: the voice runtime's media
    WebSocket for one call (``ws://`` behind a plain-http public URL)."""
    base = public_base(public_url)
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[1]}/voice/{carrier}/{call_id}/{stream_token(call_id)}"


def require_sdk(module: str, provider: str) -> None:
    """A clear error when the carrier's SDK (the ``carriers`` extra) is not installed."""
    if importlib.util.find_spec(module) is None:
        raise RuntimeError(
            f"the {provider} carrier needs the '{module}' package, which is not installed: "
            "pip install 'callfleet[carriers]'")


def number_kind(phone_number: str) -> tuple[str, str] | None:
    """(country, ``local`` or ``toll-free``) of an E.164 number; None when no country."""
    parsed = phonenumbers.parse(phone_number)
    country = phonenumbers.region_code_for_number(parsed)
    if not country or country == "ZZ":
        return None
    kind = phonenumbers.number_type(parsed)
    return country, ("toll-free" if kind == phonenumbers.PhoneNumberType.TOLL_FREE
                     else "local")


class LaterHangups:
    """Hang-ups asked for in a few seconds run as tasks of the adapter (a real carrier has
    no "hang up at" request); cancelled when the adapter closes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def hang_up_later(self, after: float, hang_up: Callable[[], Awaitable[None]],
                      carrier_call_id: str) -> None:
        async def run() -> None:
            await asyncio.sleep(after)
            try:
                await hang_up()
            except Exception:  # noqa: BLE001 - logged; the call's time limit still ends it
                log.warning("hangup_failed", carrier_call_id=carrier_call_id)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_hangups(self) -> None:
        for task in list(self._tasks):
            task.cancel()


@dataclass(frozen=True)
class ErrorCodes:
    """What a carrier's error codes mean (HTTP statuses written ``http:401``)."""

    carrier: str  # "Twilio"
    auth: frozenset[str]
    account: frozenset[str]  # the account is unusable: suspended, out of funds
    account_reason: str
    invalid_number: frozenset[str]
    rate_limit: frozenset[str]


def classify(table: ErrorCodes, status: int | None, codes: set[str], message: str,
             tag: str) -> CarrierRejected:
    """A refused dial: an outcome, a short reason (``ended_reason``), the carrier's whole
    message, and whether the account itself is unusable (its campaign pauses)."""
    found = codes | {f"http:{status}"}
    name = table.carrier

    def refused(outcome: str, reason: str, sentence: str, account: bool = False
                ) -> CarrierRejected:
        return CarrierRejected(outcome, f"{reason} ({name} {tag})"[:70],
                               account_error=account, detail=f"{sentence} ({message})")

    if found & table.auth:
        return refused("failed", "credentials rejected",
                       f"{name} rejected the account's credentials", True)
    if found & table.account:
        return refused("failed", table.account_reason,
                       f"the {name} account is unusable: {table.account_reason}", True)
    if found & table.invalid_number:
        return refused("invalid_number", "invalid number", f"{name} says the number is invalid")
    if found & table.rate_limit:
        return refused("failed", "rate limited", f"{name}'s rate limit was hit")
    return refused("failed", "refused", f"{name} refused the call")


def number_error(table: ErrorCodes, status: int | None, codes: set[str], message: str,
                 action: str) -> CarrierError:
    """A refused number operation as the HTTP error callfleet answers with."""
    found = codes | {f"http:{status}"}
    name = table.carrier
    if found & table.auth:
        return CarrierError(f"{name} rejected the account's credentials ({message})", 502)
    if found & table.account:
        return CarrierError(f"The {name} account is unusable: {table.account_reason} "
                            f"({message})", 402)
    if found & table.rate_limit:
        return CarrierError(f"{name}'s rate limit was hit; try again shortly ({message})", 503)
    if status is not None and 400 <= status < 500:
        return CarrierError(f"{name} could not {action} ({message})", 400, "phoneNumber")
    return CarrierError(f"{name} could not {action} ({message})", 502)
