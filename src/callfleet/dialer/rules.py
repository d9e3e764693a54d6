"""The dialer's rules, as pure functions ("sans-I/O").

Everything that decides *whether*, *when* and *from which number* a contact may be called, and
what happens to an enrollment after an attempt, lives here as functions of plain values and an
explicit ``now``. Nothing here reads the database, the clock, the network or the environment.
That is the point: the dialer engine (``dialer/engine.py``) only loads rows, asks these rules,
and writes the answers back, so every compliance guarantee of SPEC section 4 and 8 can be
checked exhaustively with property tests instead of being reconstructed from logs of a
running system.

Conventions used throughout:

* ``now`` is an aware datetime (normally UTC). Naive ``now`` values are rejected, because a
  naive time in a rule about local calling hours is exactly the bug these rules exist to avoid.
* Results that are instants are returned as aware UTC datetimes.
* Wall-clock rules (call windows, legal hours) are evaluated with :mod:`zoneinfo`. A window is
  turned into concrete UTC intervals, one per opening day, by resolving its local start and end
  on that day. A local time that does not exist (spring-forward gap) resolves to the first valid
  instant after it, i.e. the moment the clocks jump; an ambiguous local time (fall-back overlap)
  resolves to its first occurrence. Evaluating intervals instead of comparing wall-clock times
  keeps a window one contiguous stretch of real time even on the nights the clocks change.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

__all__ = [
    "CAMPAIGN_STATUSES",
    "ENROLLMENT_STATUSES",
    "ENROLLMENT_TRANSITIONS",
    "OUTCOMES",
    "RETRYABLE_OUTCOMES",
    "TRANSITIONS",
    "WEEKDAYS",
    "AttemptResult",
    "CallWindow",
    "Decision",
    "DialInput",
    "InvalidTransition",
    "LegalHours",
    "RetryPolicy",
    "after_attempt",
    "caller_id_pick",
    "can_transition",
    "check_enrollment_transition",
    "check_transition",
    "effective_timezone",
    "format_hhmm",
    "is_dialable",
    "legal_contains",
    "legal_window",
    "local_instant",
    "next_allowed_time",
    "next_window_open",
    "parse_days",
    "parse_hhmm",
    "retry_delay",
    "window_contains",
    "window_spans",
    "zone",
]

# --------------------------------------------------------------------------------------------
# Days, times and zones
# --------------------------------------------------------------------------------------------

#: Day names in :meth:`datetime.date.weekday` order, so ``WEEKDAYS[d.weekday()]`` names ``d``.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALL_DAYS: frozenset[str] = frozenset(WEEKDAYS)
_FULL_DAY_NAMES: dict[str, str] = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}

# ASCII digits only: ``\d`` would also accept e.g. Arabic-Indic digits, which int() parses.
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")


def parse_hhmm(value: str) -> time:
    """Parse a call-window time, ``"HH:MM"`` or ``"HH:MM:SS"``, into a naive :class:`time`.

    The API promises ``HH:MM`` and tolerates ``HH:MM:SS`` (SPEC section 2). Parsing is strict
    (two-digit fields, 00:00-23:59:59) because a window time that is silently misread moves
    calls to hours the user never chose. ``"24:00"`` is rejected: "end of day" is spelled
    ``23:59`` (ends are inclusive), or a start equal to the end for a whole-day window.
    """
    if not isinstance(value, str):
        raise TypeError(f"invalid time {value!r}: expected a string HH:MM or HH:MM:SS")
    match = _HHMM.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid time {value!r}: expected HH:MM or HH:MM:SS, e.g. 09:00")
    hour, minute = int(match.group(1)), int(match.group(2))
    second = int(match.group(3)) if match.group(3) is not None else 0
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"invalid time {value!r}: hours must be 00-23 and minutes/seconds 00-59")
    return time(hour, minute, second)


def format_hhmm(t: time) -> str:
    """Format a window time the way the API returns it: ``"09:00"``.

    Seconds are shown (``"09:00:30"``) only when present, so ``parse_hhmm(format_hhmm(t)) == t``
    for every time the parser can produce and a value never changes by being read back.
    """
    if t.second or t.microsecond:
        return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{t.hour:02d}:{t.minute:02d}"


def parse_days(values: list[str] | None) -> frozenset[str]:
    """Parse ``callWindowDays`` into a set of :data:`WEEKDAYS` names.

    ``None`` (the field was not given) means every day, the SPEC default. An empty list is an
    error rather than "never": a campaign that can never call is certainly a mistake, and
    rejecting it at input is kinder than a campaign that silently never dials. Accepts
    ``"mon"``..``"sun"`` and full names, case-insensitive, surrounding blanks ignored.
    """
    if values is None:
        return _ALL_DAYS
    if isinstance(values, str):
        raise TypeError('call window days must be a list of day names, e.g. ["mon", "tue"]')
    if not values:
        raise ValueError("call window days must name at least one day")
    days: set[str] = set()
    for raw in values:
        if not isinstance(raw, str):
            raise TypeError(f"unknown day {raw!r}: use mon, tue, wed, thu, fri, sat or sun")
        key = raw.strip().lower()
        key = _FULL_DAY_NAMES.get(key, key)
        if key not in _ALL_DAYS:
            raise ValueError(f"unknown day {raw!r}: use mon, tue, wed, thu, fri, sat or sun")
        days.add(key)
    return frozenset(days)


def _zone(tz: str) -> ZoneInfo:
    """Load an IANA zone, turning every failure into one clear :class:`ValueError`.

    ``zoneinfo`` raises four different exception types for bad keys (KeyError subclass,
    ValueError, IsADirectoryError for ``"America"``, TypeError). ``"localtime"`` is refused
    because it names whatever zone the server happens to be configured with, not a place.
    """
    if not isinstance(tz, str) or not tz or tz == "localtime":
        raise ValueError(f"unknown time zone {tz!r}: expected an IANA name like America/New_York")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise ValueError(
            f"unknown time zone {tz!r}: expected an IANA name like America/New_York"
        ) from None


def _is_zone(tz: str | None) -> bool:
    if not tz:
        return False
    try:
        _zone(tz)
    except ValueError:
        return False
    return True


def _utc(moment: datetime, what: str = "now") -> datetime:
    """Return ``moment`` in UTC; refuse naive datetimes (their zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def _stored_utc(moment: datetime) -> datetime:
    """Normalise a stored timestamp: the database keeps UTC, and SQLite hands it back naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _local_naive(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _resolve_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock of ``zone`` shows ``wall`` on ``day``.

    * Normal local time: its only instant.
    * Ambiguous (clocks fall back, the time happens twice): the first occurrence (``fold=0``
      is the pre-transition offset, which is the earlier instant).
    * Non-existent (clocks spring forward over it): the first valid instant after it, which
      is the transition itself (e.g. 02:30 on 2026-03-08 in New York -> 03:00 EDT). A window
      "opening at 02:30" opens as soon as there is a 02:30-or-later on that day's clock.
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _local_naive(first, zone) == naive:
        return first
    # In a gap, fold=1 applies the post-transition offset and lands before the transition;
    # fold=0 applies the pre-transition offset and lands after it. The transition is the first
    # whole second whose wall clock is at or past ``naive`` (tzdata transitions are on whole
    # seconds). Binary search keeps this exact for any gap size (30 min on Lord Howe, a whole
    # day for Samoa in 2011) without reaching into zoneinfo's private transition tables.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(microsecond=0)
    hi = first
    if not _local_naive(hi, zone) >= naive or _local_naive(lo, zone) >= naive:
        return first  # not a simple gap; zoneinfo's own answer is the best we have
    low, high = 0, math.ceil((hi - lo).total_seconds())
    while low < high:
        mid = (low + high) // 2
        if _local_naive(lo + timedelta(seconds=mid), zone) >= naive:
            high = mid
        else:
            low = mid + 1
    return lo + timedelta(seconds=low)


def zone(tz: str) -> ZoneInfo:
    """Load an IANA zone; any bad name is one clear :class:`ValueError` (see ``_zone``)."""
    return _zone(tz)


def local_instant(day: date, wall: time, tz: str | ZoneInfo) -> datetime:
    """The UTC instant at which ``tz``'s wall clock first shows ``wall`` on ``day``.

    The one resolution rule of this module (a time in a spring-forward gap is the moment the
    clocks jump, a repeated time is its first occurrence), for other pure rules that build
    UTC intervals from local days (``callfleet.compliance``).
    """
    return _resolve_local(day, wall, tz if isinstance(tz, ZoneInfo) else _zone(tz))


# --------------------------------------------------------------------------------------------
# Call windows and legal hours
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallWindow:
    """When a campaign may *start* calls, in one zone's wall-clock time.

    ``start``/``end`` are naive local times. ``end`` bounds call starts and is inclusive to the
    instant: with 09:00-17:00 a call may start at 17:00:00 but not at 17:00:00.000001 (a call
    is never cut off by the window; it just may not begin after it). ``start > end`` spans
    midnight (22:00-02:00), ``start == end`` is a whole 24 hours beginning at ``start``. ``days``
    filters on the day the window *opened*: a Monday 22:00-02:00 window with only ``"mon"``
    still allows Tuesday 01:30. ``tz`` is the IANA zone the window is evaluated in (the dialer
    sets it to the contact's effective zone, see :func:`effective_timezone`).

    Validation happens here so that a bad window is a clear ``ValueError`` at input time
    rather than a crash inside the dialer loop.
    """

    start: time
    end: time
    days: frozenset[str]
    tz: str

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, time) or value.tzinfo is not None:
                raise ValueError(f"call window {name} must be a naive local time")
        unknown = set(self.days) - _ALL_DAYS
        if unknown:
            raise ValueError(f"unknown call window days: {sorted(unknown)}")
        _zone(self.tz)


@dataclass(frozen=True)
class LegalHours:
    """A team's legal calling hours in the recipient's local time (SPEC section 8).

    Default 08:00-21:00, the US (TCPA) rule. Same convention as :class:`CallWindow`: ``end``
    bounds call starts inclusively. Legal hours never span midnight and are never "all day":
    they apply on top of every window and cannot be bypassed, so a configuration that would
    disable them (``start >= end``) is refused.
    """

    start: time = time(8, 0)
    end: time = time(21, 0)

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, time) or value.tzinfo is not None:
                raise ValueError(f"legal hours {name} must be a naive local time")
        if self.start >= self.end:
            raise ValueError(
                "legal calling hours must start before they end on the same day "
                f"(got {format_hhmm(self.start)}-{format_hhmm(self.end)})"
            )


def _span(window: CallWindow, zone: ZoneInfo, day: date) -> tuple[datetime, datetime, bool]:
    """The UTC interval of the window that opens on ``day``: (open, close, close_inclusive).

    Whole-day windows are half-open so that consecutive days tile without overlapping; the
    others are closed because the end minute itself is allowed.
    """
    opens = _resolve_local(day, window.start, zone)
    if window.start < window.end:
        return opens, _resolve_local(day, window.end, zone), True
    if window.start > window.end:
        return opens, _resolve_local(day + timedelta(days=1), window.end, zone), True
    return opens, _resolve_local(day + timedelta(days=1), window.start, zone), False


def _contains(window: CallWindow, zone: ZoneInfo, now_utc: datetime) -> bool:
    today = now_utc.astimezone(zone).date()
    # An instant belongs to the interval of the day it is on or of the day before (windows
    # spanning midnight); one more day each side covers clocks that move across midnight.
    for offset in (-2, -1, 0, 1):
        day = today + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opens, closes, inclusive = _span(window, zone, day)
        if opens <= now_utc and (now_utc <= closes if inclusive else now_utc < closes):
            return True
    return False


def _next_open(window: CallWindow, now_utc: datetime, deadline: datetime) -> datetime | None:
    """Earliest instant in ``[now_utc, deadline]`` inside ``window``, or ``None``."""
    if not window.days or now_utc > deadline:
        return None
    zone = _zone(window.tz)
    if _contains(window, zone, now_utc):
        return now_utc
    # Not inside now, so the answer is the opening of a later interval. Openings increase
    # strictly with the day, so the first opening after ``now_utc`` is the earliest one.
    day = now_utc.astimezone(zone).date() - timedelta(days=2)
    last_day = deadline.astimezone(zone).date() + timedelta(days=1)
    while day <= last_day:
        if WEEKDAYS[day.weekday()] in window.days:
            opens = _resolve_local(day, window.start, zone)
            if opens > deadline:
                return None
            if opens > now_utc:
                return opens
        day += timedelta(days=1)
    return None


def window_spans(
    window: CallWindow, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """The window's stretches of real time that overlap ``[since, until)``, as half-open UTC
    intervals ``[open, close)`` in order, clipped to ``[since, until)``.

    The same spans :func:`window_contains` tests, so ``window_contains(w, t)`` holds exactly
    when ``t`` lies in one of them. A closed span (the end minute is allowed) ends one
    microsecond after its close, the resolution of :class:`datetime`. Overlapping spans (only
    possible on exotic clock changes) are merged.
    """
    since_utc, until_utc = _utc(since, "since"), _utc(until, "until")
    if not window.days or since_utc >= until_utc:
        return []
    zone_info = _zone(window.tz)
    out: list[tuple[datetime, datetime]] = []
    day = since_utc.astimezone(zone_info).date() - timedelta(days=2)
    last_day = until_utc.astimezone(zone_info).date() + timedelta(days=1)
    while day <= last_day:
        if WEEKDAYS[day.weekday()] in window.days:
            opens, closes, inclusive = _span(window, zone_info, day)
            if inclusive:
                closes += timedelta(microseconds=1)
            opens, closes = max(opens, since_utc), min(closes, until_utc)
            if opens < closes:
                if out and opens <= out[-1][1]:
                    out[-1] = (out[-1][0], max(out[-1][1], closes))
                else:
                    out.append((opens, closes))
        day += timedelta(days=1)
    return out


def window_contains(window: CallWindow, now: datetime) -> bool:
    """True when a call may start at ``now`` as far as ``window`` is concerned."""
    return _contains(window, _zone(window.tz), _utc(now))


def next_window_open(window: CallWindow, now: datetime, horizon_days: int = 14) -> datetime | None:
    """The earliest instant ``>= now`` at which :func:`window_contains` is true.

    Returns ``now`` itself (in UTC) when already inside, and ``None`` when the window does not
    open within ``horizon_days`` (only possible for a window with no days, since every other
    window opens at least weekly). The horizon keeps a pathological input from looping; the
    dialer uses the answer to tell users when calling resumes and to sleep until then.
    """
    if horizon_days < 0:
        raise ValueError("horizon_days must be >= 0")
    now_utc = _utc(now)
    return _next_open(window, now_utc, now_utc + timedelta(days=horizon_days))


def legal_window(hours: LegalHours, tz: str) -> CallWindow:
    """Legal hours in the recipient's zone ``tz`` as an every-day :class:`CallWindow`."""
    return CallWindow(start=hours.start, end=hours.end, days=_ALL_DAYS, tz=tz)



def legal_contains(hours: LegalHours, tz: str, now: datetime) -> bool:
    """True when ``now`` is inside the legal calling hours in the recipient's zone ``tz``.

    Implemented as an every-day :class:`CallWindow` so the legal rule and the campaign rule
    share one definition of "inside", including on the nights the clocks change.
    """
    return window_contains(legal_window(hours, tz), now)


def effective_timezone(
    *, contact_tz: str | None, phone: str | None, campaign_tz: str, use_contact_timezone: bool
) -> tuple[str, str]:
    """Which zone a contact's call window is evaluated in, and why: ``(zone, source)``.

    ``source`` is ``"contact"``, ``"phone"`` or ``"campaign"``, so the dashboard and the
    skip reasons can say *why* a contact is called at the time it is. In order (SPEC 4.4):

    1. the contact's own zone, when ``use_contact_timezone`` is on and the contact has one
       (an unknown zone name is ignored rather than crashing the dialer on one bad row);
    2. the zone implied by the phone number when it maps to exactly one zone (``+1 415`` ->
       America/Los_Angeles; ``+1 800`` maps to dozens and implies nothing; "Etc/Unknown" is
       ignored): the recipient's real local time is the best guess left;
    3. the campaign's zone.

    Legal hours concern the *recipient's* clock whatever the campaign says, so callers
    compute the legal-hours zone with ``use_contact_timezone=True``.
    """
    if use_contact_timezone and contact_tz and _is_zone(contact_tz):
        return contact_tz, "contact"
    inferred = _zone_for_phone(phone)
    if inferred is not None:
        return inferred, "phone"
    return campaign_tz, "campaign"


def _parse_phone(phone: str | None) -> phonenumbers.PhoneNumber | None:
    if not phone or not isinstance(phone, str):
        return None
    try:
        return phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None


def _zone_for_phone(phone: str | None) -> str | None:
    parsed = _parse_phone(phone)
    if parsed is None:
        return None
    zones = {z for z in phone_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"}
    if len(zones) != 1:
        return None
    (zone,) = zones
    return zone if _is_zone(zone) else None


def next_allowed_time(
    window: CallWindow,
    legal: LegalHours,
    contact_tz: str,
    now: datetime,
    horizon_days: int = 14,
) -> datetime | None:
    """The earliest instant ``>= now`` inside both the campaign window and legal hours.

    The window is evaluated in ``window.tz`` (callers set it to the effective zone), legal hours
    in ``contact_tz``. Alternates "next opening of the window" and "next opening of legal hours"
    until both hold: every instant inside both is at or after each step, so the first fixed
    point is the earliest answer, and each step moves to a strictly later opening so the loop
    ends within the horizon. ``None`` when the two never overlap within ``horizon_days``
    (e.g. a 22:00-23:00 window against 08:00-21:00 legal hours, in the same zone).
    """
    if horizon_days < 0:
        raise ValueError("horizon_days must be >= 0")
    now_utc = _utc(now)
    deadline = now_utc + timedelta(days=horizon_days)
    legal_span = legal_window(legal, contact_tz)
    window_zone = _zone(window.tz)
    candidate = now_utc
    while True:
        in_window = _next_open(window, candidate, deadline)
        if in_window is None:
            return None
        in_both = _next_open(legal_span, in_window, deadline)
        if in_both is None:
            return None
        if in_both == in_window or _contains(window, window_zone, in_both):
            return in_both
        candidate = in_both


# --------------------------------------------------------------------------------------------
# Is this contact dialable now?
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialInput:
    """Everything :func:`is_dialable` needs, as plain values loaded by the engine.

    ``window.tz`` is the contact's effective window zone and ``contact_tz`` the recipient's
    zone for legal hours (both from :func:`effective_timezone`). Active-call counts are the
    calls in progress *before* this one would start.
    """

    campaign_status: str
    campaign_deleted: bool
    enrollment_status: str
    next_attempt_at: datetime | None
    phone: str | None
    do_not_call: bool
    lead_status: str
    on_team_dnc: bool
    window: CallWindow
    legal: LegalHours
    contact_tz: str
    campaign_active_calls: int
    max_concurrent_calls: int
    team_active_calls: int
    team_max_concurrent: int


@dataclass(frozen=True)
class Decision:
    """The answer of :func:`is_dialable`.

    ``reason`` is machine-readable (one of the strings listed on :func:`is_dialable`) so
    every skipped dial has a recorded reason (SPEC section 8). ``next_time`` tells the engine
    when asking again can change the answer, for refusals that only time will lift.
    ``permanent`` marks refusals no amount of waiting lifts: the enrollment becomes
    ``skipped``.
    """

    ok: bool
    reason: str | None
    next_time: datetime | None
    permanent: bool


_OK = Decision(ok=True, reason=None, next_time=None, permanent=False)


def _refuse(reason: str, next_time: datetime | None = None, permanent: bool = False) -> Decision:
    return Decision(ok=False, reason=reason, next_time=next_time, permanent=permanent)


def is_dialable(d: DialInput, now: datetime) -> Decision:
    """May this enrollment be dialed at ``now``? Checks in SPEC section 4's order.

    1. ``campaign_not_running``: campaign not ``running``, or deleted.
    2. ``not_pending``: enrollment not ``pending``; ``not_due``: ``next_attempt_at`` after now
       (``next_time`` = ``next_attempt_at``).
    3. ``no_phone``, ``do_not_call``, ``do_not_contact`` (lead status), ``team_dnc``:
       permanent, checked at dial time because any of them may have changed since enrollment.
    4. ``outside_window`` and 5. ``outside_legal_hours``: ``next_time`` is the next instant
       inside both (``None`` if they never overlap within two weeks).
    6. ``campaign_concurrency``, ``team_concurrency``: no free slot; retry on the next pass.

    Compliance (3-5) comes before capacity (6) so that the reason recorded for a refused
    contact is the one that matters: a DNC contact is skipped, not "waiting for a slot".
    Pacing (calls per second) is a rate over time, not a property of one contact; the engine
    enforces it when it starts calls.
    """
    now_utc = _utc(now)
    if d.campaign_status != "running" or d.campaign_deleted:
        return _refuse("campaign_not_running")
    if d.enrollment_status != "pending":
        return _refuse("not_pending")
    if d.next_attempt_at is not None:
        due = _stored_utc(d.next_attempt_at)
        if due > now_utc:
            return _refuse("not_due", next_time=due)
    if d.phone is None or not d.phone.strip():
        return _refuse("no_phone", permanent=True)
    if d.do_not_call:
        return _refuse("do_not_call", permanent=True)
    if d.lead_status == "do_not_contact":
        return _refuse("do_not_contact", permanent=True)
    if d.on_team_dnc:
        return _refuse("team_dnc", permanent=True)
    if not window_contains(d.window, now_utc):
        return _refuse(
            "outside_window", next_time=next_allowed_time(d.window, d.legal, d.contact_tz, now_utc)
        )
    if not legal_contains(d.legal, d.contact_tz, now_utc):
        return _refuse(
            "outside_legal_hours",
            next_time=next_allowed_time(d.window, d.legal, d.contact_tz, now_utc),
        )
    if d.campaign_active_calls >= d.max_concurrent_calls:
        return _refuse("campaign_concurrency")
    if d.team_active_calls >= d.team_max_concurrent:
        return _refuse("team_concurrency")
    return _OK


# --------------------------------------------------------------------------------------------
# After an attempt: outcomes and retries
# --------------------------------------------------------------------------------------------

OUTCOMES: tuple[str, ...] = (
    "answered",
    "voicemail",
    "no_answer",
    "busy",
    "failed",
    "invalid_number",
    "declined",
    "opted_out",
)
#: Outcomes that may be retried; also the keys allowed in per-outcome delays and caps.
RETRYABLE_OUTCOMES: tuple[str, ...] = ("no_answer", "busy", "voicemail", "failed")

#: Ceiling on any retry delay, so an exponential policy without ``max_delay_minutes`` still
#: yields a representable datetime. Thirty days is longer than any sensible campaign retry.
_MAX_DELAY_MINUTES = 30 * 24 * 60


@dataclass(frozen=True)
class RetryPolicy:
    """A campaign's retry settings (SPEC section 4, the ``retry*``/``maxAttempts*`` fields).

    ``delay_overrides`` and ``attempt_caps`` are keyed by a retryable outcome
    (:data:`RETRYABLE_OUTCOMES`; the API's ``...Error`` fields map to ``"failed"``). A cap
    counts attempts that *ended* with that outcome. Validated on construction, so the API can
    build one from a request to validate it and the dialer can trust the one it loads.
    ``multiplier >= 1`` keeps exponential delays non-decreasing.
    """

    max_attempts: int = 3
    base_delay_minutes: int = 60
    delay_overrides: dict[str, int] | None = None
    attempt_caps: dict[str, int] | None = None
    retry_on_error: bool = True
    backoff: str = "fixed"
    multiplier: float = 2.0
    max_delay_minutes: int | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max attempts per contact must be at least 1")
        if self.base_delay_minutes < 0:
            raise ValueError("retry delay must be 0 minutes or more")
        for name, mapping, minimum in (
            ("retry delay", self.delay_overrides, 0),
            ("max attempts", self.attempt_caps, 1),
        ):
            for key, value in (mapping or {}).items():
                if key not in RETRYABLE_OUTCOMES:
                    raise ValueError(
                        f"{name} per outcome: unknown outcome {key!r} "
                        f"(use one of {', '.join(RETRYABLE_OUTCOMES)})"
                    )
                if value < minimum:
                    raise ValueError(f"{name} for {key} must be at least {minimum}")
        if self.backoff not in ("fixed", "exponential"):
            raise ValueError(
                f"retry backoff must be 'fixed' or 'exponential', not {self.backoff!r}"
            )
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            raise ValueError("retry backoff multiplier must be a number >= 1")
        if self.max_delay_minutes is not None and self.max_delay_minutes < 0:
            raise ValueError("maximum retry delay must be 0 minutes or more")


@dataclass(frozen=True)
class AttemptResult:
    """What becomes of an enrollment after an attempt (see :func:`after_attempt`)."""

    enrollment_status: str
    next_attempt_at: datetime | None
    reason: str
    contact_do_not_call: bool


def retry_delay(outcome: str, attempts_made: int, policy: RetryPolicy) -> timedelta:
    """How long to wait after attempt number ``attempts_made`` ended with ``outcome``.

    The outcome's override, else the base delay. Exponential backoff multiplies it by
    ``multiplier ** (attempts_made - 1)`` (the retries so far; the first retry waits the plain
    delay). ``max_delay_minutes`` caps the result for both backoff kinds, since a cap the user
    sets should hold whatever the curve. The caller later moves the time into the window.
    """
    if attempts_made < 1:
        raise ValueError("attempts_made must be at least 1")
    base = float((policy.delay_overrides or {}).get(outcome, policy.base_delay_minutes))
    minutes = base
    if policy.backoff == "exponential" and base > 0:
        try:
            minutes = base * policy.multiplier ** (attempts_made - 1)
        except OverflowError:
            minutes = math.inf
    if policy.max_delay_minutes is not None:
        minutes = min(minutes, float(policy.max_delay_minutes))
    minutes = min(minutes, float(_MAX_DELAY_MINUTES))
    return timedelta(minutes=minutes)


def after_attempt(
    outcome: str,
    attempts_made: int,
    outcome_counts: dict[str, int],
    policy: RetryPolicy,
    now: datetime,
) -> AttemptResult:
    """Decide the enrollment's fate after an attempt ended with ``outcome``.

    ``attempts_made`` counts every attempt including this one; ``outcome_counts`` counts
    attempts per outcome including this one (a missing entry is read as 1, since this attempt
    itself had the outcome, so a caller's off-by-one can never allow an extra attempt).

    * ``answered`` -> ``completed``.
    * ``opted_out`` -> ``completed`` and the contact becomes do-not-call (the engine also sets
      lead status ``do_not_contact`` and adds the number to the team DNC list).
    * ``declined`` -> ``completed``: a person was reached and said no. Calling again would be
      badgering; the conversation happened, which is what ``completed`` means in the SPEC.
    * ``invalid_number`` -> ``failed`` at once: retrying cannot fix a number.
    * ``no_answer``, ``busy``, ``voicemail``, ``failed`` -> ``pending`` after
      :func:`retry_delay`, unless the attempt limit or the outcome's cap is reached (or the
      outcome is ``failed`` and ``retry_on_error`` is off) -> ``failed``.

    Reasons: the outcome for terminal outcomes; ``"max_attempts"``, ``"cap_<outcome>"``,
    ``"error_no_retry"`` when retries stop; ``"retry_<outcome>"`` when pending.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown call outcome {outcome!r}")
    if attempts_made < 1:
        raise ValueError("attempts_made must be at least 1 (it includes this attempt)")
    now_utc = _utc(now)
    if outcome in ("answered", "declined"):
        return AttemptResult("completed", None, outcome, contact_do_not_call=False)
    if outcome == "opted_out":
        return AttemptResult("completed", None, "opted_out", contact_do_not_call=True)
    if outcome == "invalid_number":
        return AttemptResult("failed", None, "invalid_number", contact_do_not_call=False)
    if outcome == "failed" and not policy.retry_on_error:
        return AttemptResult("failed", None, "error_no_retry", contact_do_not_call=False)
    if attempts_made >= policy.max_attempts:
        return AttemptResult("failed", None, "max_attempts", contact_do_not_call=False)
    cap = (policy.attempt_caps or {}).get(outcome)
    if cap is not None and max(outcome_counts.get(outcome, 1), 1) >= cap:
        return AttemptResult("failed", None, f"cap_{outcome}", contact_do_not_call=False)
    return AttemptResult(
        "pending",
        now_utc + retry_delay(outcome, attempts_made, policy),
        f"retry_{outcome}",
        contact_do_not_call=False,
    )


# --------------------------------------------------------------------------------------------
# Status machines
# --------------------------------------------------------------------------------------------


class InvalidTransition(ValueError):
    """A status change the state machine does not allow (the API answers 409)."""


CAMPAIGN_STATUSES: tuple[str, ...] = (
    "draft",
    "scheduled",
    "running",
    "paused",
    "completed",
    "cancelled",
)

#: Campaign lifecycle edges (SPEC section 4: draft -> (scheduled) -> running <-> paused ->
#: completed | cancelled).
#:
#: * draft -> scheduled (a future start time was set), running (``/run``), cancelled.
#: * scheduled -> running (start time reached, or ``/run`` now), draft (unscheduled, to edit
#:   it or hold it), cancelled. Not paused: "resume" would then start a campaign before its
#:   start time; holding a scheduled campaign is "back to draft".
#: * running -> paused, completed (nothing pending or calling), cancelled.
#: * paused -> running (resume), cancelled. Not completed: a paused campaign is finished by
#:   resuming it (it completes at once if nothing is left) or by cancelling it.
#: * completed and cancelled are terminal: their enrollments are final and reviving them
#:   would redial people the user considered done. A new campaign is the way to call again.
#:
#: A status to itself is not an edge; whether a repeated request is a harmless no-op is the
#: service's call (it knows whether anything would change).
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"scheduled", "running", "cancelled"}),
    "scheduled": frozenset({"running", "draft", "cancelled"}),
    "running": frozenset({"paused", "completed", "cancelled"}),
    "paused": frozenset({"running", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}


def can_transition(src: str, dst: str) -> bool:
    """True when a campaign may move from ``src`` to ``dst`` (see :data:`TRANSITIONS`)."""
    return dst in TRANSITIONS.get(src, frozenset())


def check_transition(src: str, dst: str) -> None:
    """Raise :class:`InvalidTransition` unless a campaign may move from ``src`` to ``dst``."""
    if not can_transition(src, dst):
        raise InvalidTransition(f"cannot move a campaign from {src} to {dst}")


ENROLLMENT_STATUSES: tuple[str, ...] = (
    "pending",
    "calling",
    "completed",
    "failed",
    "skipped",
    "cancelled",
)

#: Enrollment edges.
#:
#: * pending -> calling (claimed for an attempt), skipped (found never dialable: no phone,
#:   DNC), cancelled (campaign cancelled), failed (e.g. every caller-ID number for it is gone).
#: * calling -> pending (retry scheduled), completed (reached), failed (attempts exhausted or
#:   invalid number). Not cancelled: a call in progress finishes and records its outcome first;
#:   if the campaign was cancelled meanwhile the enrollment goes pending -> cancelled.
#: * completed, failed, skipped, cancelled are terminal: the SPEC guarantees every enrollment
#:   ends in one of them, and a terminal enrollment moving again would break "attempts never
#:   exceed the caps" and the campaign's counters.
ENROLLMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"calling", "skipped", "cancelled", "failed"}),
    "calling": frozenset({"pending", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "skipped": frozenset(),
    "cancelled": frozenset(),
}


def check_enrollment_transition(src: str, dst: str) -> None:
    """Raise :class:`InvalidTransition` unless an enrollment may move from ``src`` to ``dst``."""
    if dst not in ENROLLMENT_TRANSITIONS.get(src, frozenset()):
        raise InvalidTransition(f"cannot move an enrollment from {src} to {dst}")


# --------------------------------------------------------------------------------------------
# Caller ID
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def _locality(phone: str | None) -> tuple[int, str | None] | None:
    """(country calling code, geographic area code or None) of an E.164 number.

    NANP (+1) area codes are the first three national digits. Elsewhere the area code is the
    geographic prefix ``phonenumbers`` knows (``+44 20`` London, ``+49 30`` Berlin); mobile
    and non-geographic numbers have none and only match on the country.
    """
    parsed = _parse_phone(phone)
    if parsed is None or parsed.country_code is None:
        return None
    national = phonenumbers.national_significant_number(parsed)
    if parsed.country_code == 1:
        return 1, national[:3] if len(national) == 10 else None
    length = phonenumbers.length_of_geographical_area_code(parsed)
    return parsed.country_code, national[:length] if length > 0 else None


def _score(enrollment_id: str, number_id: str) -> int:
    digest = hashlib.sha256(f"{enrollment_id}\x00{number_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def caller_id_pick(
    enrollment_id: str, numbers: list[tuple[str, str]], contact_phone: str | None
) -> str | None:
    """Pick the caller-ID number (its id) for an enrollment among the campaign's active numbers.

    Preference (local presence): numbers with the contact's country calling code and area
    code, else the same country calling code, else all. Within the preferred group the pick is
    by rendezvous (highest-random-weight) hashing: each number scores
    ``sha256(enrollment_id, number_id)`` and the highest wins. That is

    * stable: retries of an enrollment show the same number (people answer numbers they have
      seen), independent of the list's order and of the Python process (no ``hash()``);
    * even: every number is equally likely to win, so calls spread across numbers;
    * minimally disruptive: when a number stops being active, only the enrollments that were
      on it move; everyone else keeps their number.

    ``None`` when there are no numbers (the engine then pauses the campaign with a reason).
    """
    if not numbers:
        return None
    candidates = [number_id for number_id, _ in numbers]
    target = _locality(contact_phone)
    if target is not None:
        localities = [(number_id, _locality(e164)) for number_id, e164 in numbers]
        same_area = [n for n, loc in localities if target[1] is not None and loc == target]
        same_country = [n for n, loc in localities if loc is not None and loc[0] == target[0]]
        candidates = same_area or same_country or candidates
    return max(candidates, key=lambda number_id: (_score(enrollment_id, number_id), number_id))


# ---------------------------------------------------------------------------------- pacing


def pacing_tokens(tokens: float, last: datetime | None, now: datetime, rate: float) -> float:
    """Calls a team may start now under a limit of ``rate`` calls per second.

    A token bucket whose capacity is one second of calls (so a burst never exceeds the
    per-second limit carriers enforce): it refills at ``rate`` tokens per second since
    ``last`` and is capped at ``max(rate, 1)``. ``rate <= 0`` means no limit (infinite).
    """
    if rate <= 0:
        return float("inf")
    capacity = max(rate, 1.0)
    if last is None:
        return capacity
    elapsed = max(0.0, (_utc(now) - _stored_utc(last)).total_seconds())
    return min(capacity, max(0.0, tokens) + elapsed * rate)
