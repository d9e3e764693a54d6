"""Which jurisdictions' rules apply to a contact, and in which time zones (pure).

The law that applies is the called party's: where they live and where they are. callfleet
cannot know where a phone is, so it resolves a *set* of jurisdictions, each with where the
evidence came from, and applies every rule of every one of them:

1. ``state``: the contact's explicit state (``FL``, ``Florida`` or ``US-FL``);
2. ``postal_code``: a US ZIP code's first three digits (``data/zip3.json``);
3. ``area_code``: the phone's NANP area code (``data/nanp.json``). When that state presumes a
   number with its area code belongs to a resident (FL, OK, CT), the source is
   ``area_code_presumption`` and the state applies in every mode. In the default ``strict``
   mode every area-code state applies; in ``address_verified`` mode (the address is known to be
   right) only presumption states are added to an address that resolved;
4. ``US`` (federal) whenever anything in the set is in the US.

Plausible time zones: the contact's own zone, the zones ``phonenumbers`` gives a geographic
number, the zones of the ZIP prefix, and, for a jurisdiction none of those zones lies in, all
of that jurisdiction's zones. Every rule must hold in every one of them.

When no US state resolves for a US contact (no address, a toll-free or non-geographic number)
the documented conservative default applies: every US jurisdiction of the table, in the
contact's zone or else every zone of the contiguous US (``defaulted`` is set and the source is
``default``). A contact that is plainly foreign (a non-NANP number, a foreign country) gets
its country's code and no US rules; only the team's legal hours then apply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from importlib import resources

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from callfleet.compliance.table import RuleTable
from callfleet.dialer import rules as dial_rules

__all__ = [
    "DEFAULT_ZONES",
    "MODES",
    "Found",
    "JurisdictionSet",
    "ZoneFound",
    "area_code_regions",
    "normalize_state",
    "phone_facts",
    "resolve",
    "zip3_entry",
]

MODES: tuple[str, ...] = ("strict", "address_verified")

#: Zones of the contiguous US, used when nothing says where a US contact is.
DEFAULT_ZONES: tuple[str, ...] = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
)

_US_STATES: dict[str, str] = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA",
    "COLORADO": "CO", "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC",
    "FLORIDA": "FL", "GEORGIA": "GA", "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL",
    "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS", "KENTUCKY": "KY", "LOUISIANA": "LA",
    "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI",
    "MINNESOTA": "MN", "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT",
    "NEBRASKA": "NE", "NEVADA": "NV", "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ",
    "NEW MEXICO": "NM", "NEW YORK": "NY", "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND",
    "OHIO": "OH", "OKLAHOMA": "OK", "OREGON": "OR", "PENNSYLVANIA": "PA",
    "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD", "TENNESSEE": "TN",
    "TEXAS": "TX", "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA",
    "WEST VIRGINIA": "WV", "WISCONSIN": "WI", "WYOMING": "WY", "PUERTO RICO": "PR",
    "GUAM": "GU", "VIRGIN ISLANDS": "VI", "U.S. VIRGIN ISLANDS": "VI",
    "AMERICAN SAMOA": "AS", "NORTHERN MARIANA ISLANDS": "MP",
}
_US_CODES = frozenset(_US_STATES.values())
#: NANP and ISO country codes of US territories (their numbers are "+1" but not country US).
_US_TERRITORIES = frozenset({"PR", "VI", "GU", "AS", "MP"})
_US_NAMES = frozenset({"US", "USA", "U.S.", "U.S.A.", "UNITED STATES",
                       "UNITED STATES OF AMERICA"})
_ZIP = re.compile(r"([0-9]{5})(?:-?[0-9]{4})?")


@dataclass(frozen=True)
class Found:
    """One jurisdiction of a contact and the evidence for it."""

    code: str
    source: str  # state | postal_code | area_code | area_code_presumption | country | default
    detail: str


@dataclass(frozen=True)
class ZoneFound:
    zone: str
    source: str  # contact | phone | postal_code | jurisdiction | fallback | default


@dataclass(frozen=True)
class JurisdictionSet:
    jurisdictions: tuple[Found, ...]
    zones: tuple[ZoneFound, ...]
    defaulted: bool = False

    @cached_property
    def codes(self) -> frozenset[str]:
        return frozenset(f.code for f in self.jurisdictions)

    @cached_property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(z.zone for z in self.zones)

    @cached_property
    def key(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What the composed windows depend on (the provenance does not change them)."""
        return tuple(sorted(self.codes)), tuple(sorted(self.zone_names))


@cache
def _data(name: str) -> dict[str, dict[str, object]]:
    text = resources.files("callfleet.compliance").joinpath("data", name).read_text()
    loaded: dict[str, dict[str, object]] = json.loads(text)
    return loaded


def zip3_entry(postal_code: str | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """``(states, zones)`` for a US ZIP code (``12345`` or ``12345-6789``), else ``None``."""
    if not postal_code:
        return None
    match = _ZIP.fullmatch(postal_code.strip())
    if match is None:
        return None
    entry = _data("zip3.json").get(match.group(1)[:3])
    if entry is None:
        return None
    states, zones = entry["states"], entry["zones"]
    assert isinstance(states, list) and isinstance(zones, list)
    return tuple(states), tuple(zones)


def area_code_regions(npa: str) -> tuple[str, tuple[str, ...]] | None:
    """``(country, regions)`` for a NANP area code, e.g. ``("US", ("FL",))``."""
    entry = _data("nanp.json").get(npa)
    if entry is None:
        return None
    country, regions = entry["country"], entry["regions"]
    assert isinstance(country, str) and isinstance(regions, list)
    return country, tuple(regions)


def normalize_state(value: str | None) -> str | None:
    """``"FL"``, ``"fl"``, ``"Florida"``, ``"US-FL"`` -> ``"US-FL"``; unknown -> ``None``."""
    if not value or not isinstance(value, str):
        return None
    text = " ".join(value.strip().upper().split())
    text = text.removeprefix("US-")
    if text in _US_CODES:
        return f"US-{text}"
    code = _US_STATES.get(text)
    return f"US-{code}" if code else None


def _country(value: str | None) -> str | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip().upper()
    if text in _US_NAMES:
        return "US"
    return text if re.fullmatch(r"[A-Z]{2}", text) else None


def phone_facts(phone: str | None) -> tuple[str | None, str | None, tuple[str, ...]]:
    """What a number tells :func:`resolve`: (country, NANP area code, zones). Two numbers
    with the same facts resolve alike, so callers may cache resolutions by them."""
    return _phone_facts(phone) if phone else (None, None, ())


@lru_cache(maxsize=65_536)
def _phone_facts(phone: str) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(country, NANP area code or None, the zones of a geographic number).

    Numbers are stored in E.164, so the common case is table lookups: the area code table
    for NANP numbers, ``phonenumbers``' country-code and time-zone prefix tables for the rest.
    Anything else is parsed with ``phonenumbers``.
    """
    digits = phone[1:] if phone.startswith("+") else ""
    if not digits.isdigit() or not 4 <= len(digits) <= 15:
        return _phone_facts_parsed(phone)
    if digits[0] == "1":
        if len(digits) != 11:
            return None, None, ()
        npa = digits[1:4]
        entry = area_code_regions(npa)
        if entry is None:
            return None, npa, ()
        # A US area code with no state (toll-free, non-geographic) says nothing about zones.
        geographic = bool(entry[1]) or entry[0] != "US"
        return entry[0], npa, _prefix_zones(digits) if geographic else ()
    for size in (1, 2, 3):
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if regions:
            country = regions[0] if regions[0] != "001" else None
            return country, None, _prefix_zones(digits)
    return None, None, ()


def _prefix_zones(digits: str) -> tuple[str, ...]:
    """The zones ``phonenumbers`` gives the longest known prefix of a number; none when the
    prefix spans many zones (a whole country) or is unknown."""
    for size in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:size])
        if zones is not None:
            found = tuple(sorted(z for z in zones if z != "Etc/Unknown"))
            return found if len(found) <= 3 else ()
    return ()


def _phone_facts_parsed(phone: str) -> tuple[str | None, str | None, tuple[str, ...]]:
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None, None, ()
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return _phone_facts(e164) if e164 != phone else (None, None, ())


def _valid_zone(tz: str | None) -> bool:
    if not tz:
        return False
    try:
        dial_rules.zone(tz)
    except ValueError:
        return False
    return True


def resolve(
    table: RuleTable,
    *,
    state: str | None = None,
    postal_code: str | None = None,
    country: str | None = None,
    phone: str | None = None,
    contact_tz: str | None = None,
    fallback_zone: str | None = None,
    mode: str = "strict",
) -> JurisdictionSet:
    """Resolve a contact's jurisdictions and plausible zones (see the module docstring).

    ``fallback_zone`` (the campaign's zone) is used only when nothing else gives a zone for a
    contact that is not in the US.
    """
    if mode not in MODES:
        raise ValueError(f"unknown jurisdiction mode {mode!r} (use {', '.join(MODES)})")
    found: list[Found] = []
    zones: list[ZoneFound] = []

    def add(code: str, source: str, detail: str) -> None:
        if not any(f.code == code and f.source == source for f in found):
            found.append(Found(code, source, detail))

    def add_zone(zone: str, source: str) -> None:
        if _valid_zone(zone) and zone not in (z.zone for z in zones):
            zones.append(ZoneFound(zone, source))

    if _valid_zone(contact_tz):
        assert contact_tz is not None
        add_zone(contact_tz, "contact")
    declared = _country(country)
    explicit = normalize_state(state) if declared in (None, "US") else None
    if explicit:
        add(explicit, "state", state or "")
    postal = zip3_entry(postal_code) if declared in (None, "US") else None
    if postal is not None:
        for code in postal[0]:
            add(f"US-{code}", "postal_code", postal_code or "")
        for zone in postal[1]:
            add_zone(zone, "postal_code")
    address_states = {f.code for f in found}
    phone_country = None
    if phone:
        phone_country, npa, phone_zones = _phone_facts(phone)
        regions = area_code_regions(npa) if npa else None
        if regions is not None and regions[0] in ("US", *_US_TERRITORIES):
            codes = [f"US-{r}" for r in regions[1]] if regions[0] == "US" \
                else [f"US-{regions[0]}"]
            for code in codes:
                j = table.jurisdictions.get(code)
                if j is not None and j.area_code_presumption:
                    add(code, "area_code_presumption", npa or "")
                elif mode == "strict" or not address_states:
                    add(code, "area_code", npa or "")
        elif regions is not None and regions[1]:
            for region in regions[1]:
                add(f"{regions[0]}-{region}", "area_code", npa or "")
        for zone in phone_zones:
            add_zone(zone, "phone")
    if any(f.code.startswith("US-") for f in found):
        for f in found:
            j = table.jurisdictions.get(f.code)
            if j is not None and j.zones and not set(j.zones) & {z.zone for z in zones}:
                for zone in j.zones:
                    add_zone(zone, "jurisdiction")
        add("US", "derived", "a US jurisdiction applies")
        return JurisdictionSet(tuple(found), tuple(zones))
    foreign = declared not in (None, "US") or (
        declared is None and phone_country not in (None, "US"))
    if not foreign:
        return _default(table, found, zones)
    code = declared or phone_country or ""
    if not any(f.code.startswith(f"{code}-") for f in found):
        add(code, "country", country or f"phone number of {phone_country}")
    if not zones and fallback_zone:
        add_zone(fallback_zone, "fallback")
    return JurisdictionSet(tuple(found), tuple(zones))


def _default(table: RuleTable, found: list[Found], zones: list[ZoneFound]) -> JurisdictionSet:
    """No US state resolved for a US contact: every US jurisdiction, everywhere plausible."""
    everything = [Found(code, "default", "no state could be resolved")
                  for code in sorted(table.jurisdictions) if code == "US" or
                  code.startswith("US-")]
    if not zones:
        zones = [ZoneFound(z, "default") for z in DEFAULT_ZONES]
    return JurisdictionSet(tuple(found + everything), tuple(zones), defaulted=True)
