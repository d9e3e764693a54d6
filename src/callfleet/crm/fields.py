"""Normalisation and validation of CRM field values, shared by the API, import and extraction.

Each function returns the normalised value or raises ``ValueError`` with a message that reads
after the field name ("is not a valid phone number").
"""

from __future__ import annotations

import math
import re
import zoneinfo
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import phonenumbers

from callfleet.errors import bad_request

LEAD_STATUSES = (
    "new",
    "contacted",
    "qualified",
    "unqualified",
    "converted",
    "customer",
    "churned",
    "do_not_contact",
)
FIELD_TYPES = ("text", "number", "date", "select", "boolean")
ENTITY_TYPES = ("contact", "company")

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\x00-\x1f\x7f]{1,64}"
                    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NON_DIGIT = re.compile(r"\D+")
_PHONE_QUERY = re.compile(r"^[\d\s+().\-/]+$")
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "on"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "f", "off"})


def clean_text(value: str | None, max_len: int) -> str | None:
    """Trimmed text without control characters; empty becomes None."""
    if value is None:
        return None
    value = _CONTROL.sub("", value).strip()
    if not value:
        return None
    if len(value) > max_len:
        raise ValueError(f"must be at most {max_len} characters")
    return value


def normalize_phone_full(value: str | None, region: str = "US") -> str | None:
    """Any common human format to E.164 through libphonenumber's parse and validity check;
    None for empty; ValueError for what cannot be valid."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > 40:
        raise ValueError("is not a valid phone number")
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a valid phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# Phone numbers: libphonenumber's parse + validity check costs ~90 µs a number, a large part
# of preparing an imported row or a created contact. For a NANP default region and the usual
# spellings of a 10-digit number ("(415) 555-0100", "415.555.0100", "+1 415 555 0100") the E.164 form is "+1" and the
# ten digits, and NANP validity in libphonenumber's metadata is decided by the first seven
# digits (area code, exchange, thousands block; every pattern ends in \d{3} or wider — see
# tests/crm/test_import_phone_fast_path.py). So a number whose first seven digits were already
# confirmed valid by the full check is valid too; anything else takes the full check.
_NANP_SPELLING = re.compile(r"(?:\+1[ .-]?)?(?:\((\d{3})\) ?|(\d{3})[ .-]?)(\d{3})[ .-]?(\d{4})")
_NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(1, ()))
_NANP_VALID_PREFIXES: set[str] = set()
_NANP_PREFIX_CAP = 250_000


def normalize_phone(text: str | None, region: str = "US") -> str | None:
    """Any common human format to E.164; None for empty; ValueError for what cannot be valid.
    Common NANP spellings take the fast path above (same results as
    :func:`normalize_phone_full`)."""
    if text and region in _NANP_REGIONS:
        m = _NANP_SPELLING.fullmatch(text.strip())
        if m:
            national = (m[1] or m[2]) + m[3] + m[4]
            if national[:7] in _NANP_VALID_PREFIXES:
                return "+1" + national
            # What parse() makes of these spellings: country code 1 and the ten digits (an
            # area code never starts with 0 or 1, where parse might strip a prefix).
            if national[0] not in "01" and phonenumbers.is_valid_number(
                phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
            ):
                if len(_NANP_VALID_PREFIXES) >= _NANP_PREFIX_CAP:
                    _NANP_VALID_PREFIXES.clear()
                _NANP_VALID_PREFIXES.add(national[:7])
                return "+1" + national
    return normalize_phone_full(text, region)


def digits(value: str | None) -> str:
    return _NON_DIGIT.sub("", value) if value else ""


def phone_query_digits(query: str) -> str | None:
    """The digits of a search that looks like a phone number ("415 555", "+1 (415)"), else None."""
    if _PHONE_QUERY.match(query):
        d = digits(query)
        if len(d) >= 3:
            return d
    return None


def normalize_email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > 320 or not _EMAIL.match(value):
        raise ValueError("is not a valid email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def normalize_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value not in _zones():
        raise ValueError("is not an IANA time zone name (e.g. America/Chicago)")
    return value


def normalize_country(value: str | None) -> str | None:
    """An ISO 3166-1 alpha-2 country code, upper-cased (``us`` -> ``US``)."""
    text = clean_text(value, 2)
    if text is None:
        return None
    if not (len(text) == 2 and text.isascii() and text.isalpha()):
        raise ValueError("must be an ISO-3166 alpha-2 code")
    return text.upper()


CONSENT_KINDS = ("prior_express_written", "prior_express", "none")


def parse_aware(text: str) -> datetime:
    """An ISO 8601 date-time that states its offset (``…Z`` or ``…+02:00``), as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ValueError("must include a time zone (e.g. Z)")
    return value.astimezone(UTC)


def query_time(raw: str | None, name: str) -> datetime | None:
    """A list filter's time (``startedAfter``, ``evaluatedBefore``…): absent -> None, else
    :func:`parse_aware` or a 400 naming the parameter."""
    if not raw:
        return None
    try:
        return parse_aware(raw)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}", name) from None


def parse_instant(value: str | None) -> datetime | None:
    """An ISO 8601 date-time (``2026-03-01T10:00:00-05:00``, ``…Z``) or date (midnight UTC)
    as an aware UTC datetime; a date-time without an offset is read as UTC."""
    text = clean_text(value, 64)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 date or date-time, e.g. 2026-03-01") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def normalize_consent_kind(value: str | None) -> str | None:
    """A consent kind: prior_express_written | prior_express | none."""
    text = clean_text(value, 40)
    if text is None:
        return None
    key = text.lower().replace(" ", "_").replace("-", "_")
    if key not in CONSENT_KINDS:
        raise ValueError("must be one of " + ", ".join(CONSENT_KINDS))
    return key


def normalize_lead_status(value: str | None) -> str:
    if value is None or not value.strip():
        return "new"
    low = value.strip().lower().replace(" ", "_").replace("-", "_")
    if low not in LEAD_STATUSES:
        raise ValueError("must be one of " + ", ".join(LEAD_STATUSES))
    return low


def normalize_tags(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,;|]", value)
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str):
            raise ValueError("must be a list of strings")  # noqa: TRY004 - see module doc
        t = clean_text(tag, 100)
        if t and t not in out:
            out.append(t)
    if len(out) > 100:
        raise ValueError("must have at most 100 tags")
    return out


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
    raise ValueError("must be true or false")


def check_custom_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError("must be snake_case: a lower-case letter, then letters, digits or _")
    return key


def header_to_key(header: str) -> str:
    """A CSV column name to a custom-field key: "Budget (USD)" -> "budget_usd"."""
    key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", header.strip())
    key = re.sub(r"[^a-zA-Z0-9]+", "_", key).strip("_").lower()
    if not key or not key[0].isalpha():
        key = f"field_{key}" if key else "field"
    return key[:64]


def coerce_custom_value(value: Any, ftype: str, options: list[str] | None) -> Any:
    """A value written to a defined custom field, coerced to the field's type."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if ftype == "text":
        if isinstance(value, (dict, list)):
            raise ValueError("must be text")
        return clean_text(str(value), 10_000)
    if ftype == "number":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, (int, float)):
            num = float(value)
        else:
            try:
                num = float(str(value).strip().replace(",", "").lstrip("$€£"))
            except ValueError:
                raise ValueError("must be a number") from None
        if not math.isfinite(num):
            raise ValueError("must be a finite number")
        return int(num) if num.is_integer() and abs(num) < 2**53 else num
    if ftype == "boolean":
        return parse_bool(value)
    if ftype == "date":
        if not isinstance(value, str):
            raise ValueError("must be a date (YYYY-MM-DD)")
        text = value.strip()
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text).date().isoformat()
        except ValueError:
            raise ValueError("must be a date (YYYY-MM-DD)") from None
    if ftype == "select":
        opts = options or []
        text = str(value).strip()
        for opt in opts:
            if opt.lower() == text.lower():
                return opt
        raise ValueError("must be one of " + ", ".join(opts))
    raise ValueError(f"has unknown type {ftype}")


MAX_CUSTOM_FIELDS = 200
MAX_CUSTOM_VALUE_CHARS = 10_000


def check_custom_fields(
    values: dict[str, Any] | None, definitions: dict[str, tuple[str, list[str] | None]]
) -> dict[str, Any]:
    """Validate free-form ``customFields``; coerce keys that have a definition.

    Raises ``ValueError`` whose message starts with the offending key.
    """
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError("must be an object")  # noqa: TRY004 - see module doc
    if len(values) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"may have at most {MAX_CUSTOM_FIELDS} keys")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > 64 or _CONTROL.search(key):
            raise ValueError(f"key {str(key)[:64]!r} must be 1-64 printable characters")
        value = _storable(key, value, 0)
        if key in definitions:
            ftype, options = definitions[key]
            try:
                out[key] = coerce_custom_value(value, ftype, options)
            except ValueError as exc:
                raise ValueError(f"{key} {exc}") from None
        else:
            if isinstance(value, str) and len(value) > MAX_CUSTOM_VALUE_CHARS:
                raise ValueError(f"{key} must be at most {MAX_CUSTOM_VALUE_CHARS} characters")
            if isinstance(value, (dict, list)) and len(repr(value)) > MAX_CUSTOM_VALUE_CHARS:
                raise ValueError(f"{key} is too large")
            out[key] = value
    return out


MAX_CUSTOM_DEPTH = 20
_INT64 = 2**63


def _storable(key: str, value: Any, depth: int) -> Any:
    """A custom field value both databases can store and every response can serialise: strings
    lose NUL characters (PostgreSQL cannot store them, as in clean_text) and must be valid
    Unicode; numbers must be finite and integers fit 64 bits; nesting is bounded."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{key} must be valid Unicode text") from None
        return value.replace("\x00", "")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{key} must be an integer within 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number")
        return value
    if depth >= MAX_CUSTOM_DEPTH:
        raise ValueError(f"{key} is nested more than {MAX_CUSTOM_DEPTH} levels deep")
    if isinstance(value, list):
        return [_storable(key, v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {
            _storable(key, str(k), depth + 1): _storable(key, v, depth + 1)
            for k, v in value.items()
        }
    raise ValueError(f"{key} must be JSON")


def search_text(
    first: str | None, last: str | None, email: str | None, phone: str | None,
    phone2: str | None,
) -> str:
    """What the contact ``search`` filter matches: names, email and phone digits, lower-cased."""
    parts = [p for p in (first, last, email) if p]
    for ph in (phone, phone2):
        if ph:
            # Stored phones are E.164 ("+" and digits): no regex needed for those.
            d = ph[1:] if ph[0] == "+" and ph[1:].isdigit() else digits(ph)
            if d:
                parts.append(d)
    return " ".join(parts).lower()
