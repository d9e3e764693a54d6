"""Jurisdiction resolution: a set with provenance, plausible zones, the conservative default,
and the shipped lookup tables checked against their sources."""

from __future__ import annotations

import phonenumbers
import pytest

from callfleet.compliance.jurisdiction import (
    DEFAULT_ZONES,
    area_code_regions,
    normalize_state,
    resolve,
    zip3_entry,
)
from callfleet.compliance.table import shipped_table

TABLE = shipped_table()


def found(**kw: object) -> list[tuple[str, str]]:
    return [(f.code, f.source) for f in resolve(TABLE, **kw).jurisdictions]  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["FL", "fl", " Florida ", "US-FL", "us-fl", "FLORIDA"])
def test_state_spellings(text: str) -> None:
    assert normalize_state(text) == "US-FL"


@pytest.mark.parametrize("text", [None, "", "Flo", "XX", "US-XX", "Bavaria"])
def test_unknown_states(text: str | None) -> None:
    assert normalize_state(text) is None


def test_explicit_state_and_federal() -> None:
    assert found(state="TX", contact_tz="America/Chicago") == [
        ("US-TX", "state"), ("US", "derived")]


def test_area_code_presumption_states_apply_even_with_another_address() -> None:
    # A Florida number of someone whose address is in Georgia: both, Florida by presumption.
    for mode in ("strict", "address_verified"):
        assert found(state="GA", phone="+13055550123", mode=mode) == [
            ("US-GA", "state"), ("US-FL", "area_code_presumption"), ("US", "derived")]


def test_address_verified_drops_other_area_code_states() -> None:
    assert found(state="GA", phone="+12125550123", mode="strict") == [
        ("US-GA", "state"), ("US-NY", "area_code"), ("US", "derived")]
    assert found(state="GA", phone="+12125550123", mode="address_verified") == [
        ("US-GA", "state"), ("US", "derived")]
    # Without an address the area code is all there is, in either mode.
    assert found(phone="+12125550123", mode="address_verified") == [
        ("US-NY", "area_code"), ("US", "derived")]
    with pytest.raises(ValueError, match="unknown jurisdiction mode"):
        resolve(TABLE, phone="+12125550123", mode="lenient")


def test_postal_code_and_its_zones() -> None:
    r = resolve(TABLE, postal_code="32401", phone="+14045550123")  # Panama City FL, Atlanta
    assert [(f.code, f.source) for f in r.jurisdictions] == [
        ("US-FL", "postal_code"), ("US-GA", "area_code"), ("US", "derived")]
    assert set(r.zone_names) == {"America/Chicago", "America/New_York"}
    assert zip3_entry("32401-1234") == (("FL",), ("America/Chicago", "America/New_York"))
    assert zip3_entry("ABCDE") is None and zip3_entry(None) is None


def test_a_foreign_postal_code_is_not_read_as_a_zip() -> None:
    assert found(country="DE", postal_code="10115", phone="+4930123456") == [("DE", "country")]


def test_zones_of_a_state_are_added_when_nothing_places_the_contact_there() -> None:
    # A California number, a Florida address: Florida's own zones join the phone's.
    r = resolve(TABLE, state="FL", phone="+14155550123")
    assert r.zone_names == ("America/Los_Angeles", "America/New_York", "America/Chicago")
    assert [z.source for z in r.zones] == ["phone", "jurisdiction", "jurisdiction"]
    # A contact zone inside the state: nothing added.
    r = resolve(TABLE, state="FL", contact_tz="America/New_York")
    assert r.zone_names == ("America/New_York",)


def test_unresolvable_us_contacts_get_the_conservative_default() -> None:
    for kw in ({"phone": "+18005550123"}, {"country": "US"}, {}):
        r = resolve(TABLE, **kw)  # type: ignore[arg-type]
        assert r.defaulted
        assert {c for c in TABLE.jurisdictions if c.startswith("US")} <= r.codes
        assert r.zone_names == DEFAULT_ZONES
    r = resolve(TABLE, phone="+18005550123", contact_tz="America/Denver")
    assert r.defaulted and r.zone_names == ("America/Denver",)


def test_foreign_contacts_get_their_country_and_no_us_rules() -> None:
    r = resolve(TABLE, phone="+442079460123")
    assert [(f.code, f.source) for f in r.jurisdictions] == [("GB", "country")]
    assert r.zone_names == ("Europe/London",) and not r.defaulted
    assert found(phone="+14165550123") == [("CA-ON", "area_code")]
    # Not a valid number, but plainly German: Germany, not the US default.
    assert found(phone="+4912") == [("DE", "country")]
    r = resolve(TABLE, country="DE", fallback_zone="Europe/Berlin")
    assert r.zone_names == ("Europe/Berlin",) and [z.source for z in r.zones] == ["fallback"]


def test_us_territories_are_us() -> None:
    assert found(phone="+17875550123") == [("US-PR", "area_code"), ("US", "derived")]


def test_bad_inputs_are_ignored_not_fatal() -> None:
    r = resolve(TABLE, state="Narnia", postal_code="!!", phone="not a number",
                contact_tz="Mars/Olympus")
    assert r.defaulted


@pytest.mark.parametrize(("npa", "country", "regions"), [
    ("305", "US", ("FL",)), ("850", "US", ("FL",)), ("212", "US", ("NY",)),
    ("415", "US", ("CA",)), ("405", "US", ("OK",)), ("203", "US", ("CT",)),
    ("401", "US", ("RI",)), ("214", "US", ("TX",)), ("801", "US", ("UT",)),
    ("504", "US", ("LA",)), ("207", "US", ("ME",)), ("202", "US", ("DC",)),
    ("416", "CA", ("ON",)), ("787", "PR", ()), ("800", "US", ()), ("876", "JM", ()),
])
def test_nanp_table_samples(npa: str, country: str, regions: tuple[str, ...]) -> None:
    assert area_code_regions(npa) == (country, regions)


def test_nanp_table_agrees_with_phonenumbers() -> None:
    """Every area code's country is the one the installed phonenumbers gives (an upgrade that
    moves an area code shows up here; regenerate with scripts/compliance-data)."""
    for n in range(200, 1000):
        entry = area_code_regions(str(n))
        if entry is None:
            continue
        region = phonenumbers.region_code_for_number(phonenumbers.parse(f"+1{n}2345678"))
        assert entry[0] == (region or "US"), n


@pytest.mark.parametrize(("zipcode", "state"), [
    ("02903", "RI"), ("33101", "FL"), ("10001", "NY"), ("84101", "UT"), ("70112", "LA"),
    ("36104", "AL"), ("73301", "TX"), ("19103", "PA"), ("04101", "ME"), ("99501", "AK"),
])
def test_zip3_table_samples(zipcode: str, state: str) -> None:
    entry = zip3_entry(zipcode)
    assert entry is not None and entry[0] == (state,)
