"""TypeID-style identifiers: ``<prefix>_<26 lower-case Crockford base32 chars of a ULID>``.

ULIDs are time-ordered, so ids sort by creation time and index well.
"""

from __future__ import annotations

import re

from ulid import ULID

PREFIXES = frozenset(
    {"team", "key", "comp", "cont", "cf", "asst", "pn", "camp", "cc", "call", "wh", "whd", "evt",
     "dnc"}
)
_BODY = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")


def new_id(prefix: str) -> str:
    assert prefix in PREFIXES, prefix
    return f"{prefix}_{str(ULID()).lower()}"


def is_valid(prefix: str, value: object) -> bool:
    """True when ``value`` is a well-formed id with exactly this prefix."""
    if not isinstance(value, str) or len(value) != len(prefix) + 27:
        return False
    head, sep, body = value.partition("_")
    return head == prefix and sep == "_" and bool(_BODY.match(body))
