"""Phone numbers, written or spoken digit by digit."""

from __future__ import annotations

import re

import phonenumbers

from callfleet.conversation.extract.text import normalize

_DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3",
                "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_SPOKEN_RUN = re.compile(
    r"\b(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|\d+)"
    r"(?:[\s,\-]+(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|\d+)\b)+",
    re.IGNORECASE,
)
_TAIL_FIX = re.compile(
    r"\b(?:sorry|i mean|actually|no|wait|correction|rather)\b[,\s]*(?:it's\s+|make (?:it|that)\s+"
    r"|that's\s+)?(\d{3,4})\b", re.IGNORECASE)
_AREA_CODE = re.compile(r"area code[^0-9.]{0,24}?(\d{3})\b|(\d{3})\s+(?:is the )?area code", re.IGNORECASE)
_LOCAL7 = re.compile(r"(?<![\d-])(\d{3})[\s.\-]?(\d{4})(?![\d-])")


def _spoken_digits(text: str) -> str:
    """ "six four six, two zero one" -> "646 201" (same length kept where possible)."""
    def repl(m: re.Match[str]) -> str:
        toks = re.findall(r"[A-Za-z]+|\d+", m.group())
        words = [t for t in toks if not t.isdigit()]
        if len(words) < 3 or any(t.lower() not in _DIGIT_WORDS for t in words):
            return m.group()
        groups = re.split(r"\s*,\s*|\s+-\s+", m.group())
        out = []
        for g in groups:
            out.append("".join(_DIGIT_WORDS.get(t.lower(), t)
                               for t in re.findall(r"[A-Za-z]+|\d+", g)))
        return " ".join(out)

    return _SPOKEN_RUN.sub(repl, text)


def phones(text: str, region: str) -> list[tuple[str, int, int]]:
    text = _spoken_digits(normalize(text))
    found: list[tuple[str, int, int, phonenumbers.PhoneNumber]] = []
    try:
        matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
        for m in matcher:
            if len(str(m.number.national_number)) + len(str(m.number.country_code)) < 9:
                continue  # "3100000": a count, not a phone number
            found.append((phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164),
                          m.start, m.end, m.number))
    except Exception:  # noqa: BLE001 - phonenumbers must never break extraction
        found = []
    # A seven-digit number completed by an area code said separately.
    for m in _LOCAL7.finditer(text):
        if any(a <= m.start() < b for _, a, b, _ in found):
            continue
        area = _AREA_CODE.search(text)
        if not area:
            continue
        code = area.group(1) or area.group(2)
        e164 = _valid(code + m.group(1) + m.group(2), region)
        if e164:
            found.append((e164, m.start(), max(m.end(), area.end()), phonenumbers.parse(e164)))
    found.sort(key=lambda x: x[1])
    out: list[tuple[str, int, int]] = []
    for e164, a, b, num in found:
        fix = _TAIL_FIX.search(text, b)
        if fix and not any(a2 > b and a2 < fix.start() for _, a2, _, _ in found):
            national = str(num.national_number)
            tail = fix.group(1)
            fixed = _valid(f"+{num.country_code}{national[:-len(tail)]}{tail}", region)
            if fixed:
                e164, b = fixed, fix.end()
        out.append((e164, a, b))
    return out


def _valid(raw: str, region: str) -> str | None:
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
