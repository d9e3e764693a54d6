"""The NANP fast path of ``fields.normalize_phone`` (used by contact create, update and import)
gives exactly the results of the full libphonenumber check, ``fields.normalize_phone_full``
(docs/decisions/0012-crm-performance.md)."""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest

from callfleet.crm import fields as F


def _reference(text: str, region: str) -> str | None:
    try:
        return F.normalize_phone_full(text, region)
    except ValueError:
        return "error"


def _fast(text: str, region: str) -> str | None:
    try:
        return F.normalize_phone(text, region)
    except ValueError:
        return "error"


def _spellings(d: str) -> list[str]:
    a, b, c = d[:3], d[3:6], d[6:]
    return [f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"{a}.{b}.{c}", d, f"+1{d}",
            f"({a}){b}-{c}", f"1-{a}-{b}-{c}", f"{a} {b} {c} x12", f" {a}-{b}-{c} "]


def test_fast_path_matches_libphonenumber_on_random_numbers() -> None:
    rnd = random.Random(7)
    F._NANP_VALID_PREFIXES.clear()
    numbers = []
    for _ in range(4000):
        # Mostly real area codes (warm prefixes), some anything (invalid ones, 0/1 starts).
        if rnd.random() < 0.7:
            area = rnd.choice(("212", "415", "646", "917", "305", "246", "268", "787", "800"))
        else:
            area = f"{rnd.randint(0, 999):03d}"
        numbers.append(area + f"{rnd.randint(0, 9_999_999):07d}")
    # The same first seven digits with different endings: a warm prefix must not change a
    # result.
    numbers += [n[:7] + f"{rnd.randint(0, 999):03d}" for n in numbers[:2000]]
    for region in ("US", "CA", "GB"):
        for n in numbers:
            for text in _spellings(n)[:4] if region != "US" else _spellings(n):
                assert _fast(text, region) == _reference(text, region), (text, region)


def test_nanp_validity_is_decided_by_the_first_seven_digits() -> None:
    """The premise of the prefix memo: every NANP pattern in libphonenumber's metadata leaves
    the last three digits free. Checked on the patterns themselves: replacing the last three
    digits of matching numbers never changes whether they match."""
    rnd = random.Random(11)
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]:
        md = phonenumbers.PhoneMetadata.metadata_for_region(region)
        for desc in (md.general_desc, md.fixed_line, md.mobile, md.toll_free, md.premium_rate,
                     md.shared_cost, md.personal_number, md.voip, md.pager, md.uan,
                     md.voicemail):
            if desc is None or not desc.national_number_pattern:
                continue
            pattern = re.compile(desc.national_number_pattern)
            for _ in range(400):
                n = f"{rnd.randint(2_000_000_000, 9_999_999_999)}"
                if pattern.fullmatch(n):
                    for tail in ("000", "999", f"{rnd.randint(0, 999):03d}"):
                        assert pattern.fullmatch(n[:7] + tail), (region, n, tail)


@pytest.mark.parametrize("text", ["", "   ", "555", "+44 20 7946 0958", "(415) 555-0100 ext 3",
                                  "415-555-010", "abc"])
def test_other_spellings_take_the_full_check(text: str) -> None:
    assert _fast(text, "US") == _reference(text, "US")
