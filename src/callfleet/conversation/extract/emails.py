"""Email addresses, written or spoken ("jane dot doe at example dot com")."""

from __future__ import annotations

import re

from callfleet.conversation.extract.numbers import TENS, UNITS
from callfleet.conversation.extract.text import normalize
from callfleet.crm.fields import normalize_email

_LITERAL_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_EMAIL_TOKEN = re.compile(r"@|[A-Za-z0-9]+(?:[._+\-][A-Za-z0-9]+)*(?:'[A-Za-z]+)?|[,.;:!?—–]")
_DOT = {"dot", "point", "period"}
_CONNECT = {"underscore": "_", "dash": "-", "hyphen": "-", "plus": "+"}
_LOCAL_STOP = frozenset(["it's", "its", "is", "was", "my", "me", "email", "e-mail", "mail", "address", "use", "to", "at", "reach", "you", "can", "the", "sure", "yes", "yeah", "yep", "fine", "ok", "okay", "and", "it", "that's", "that", "send", "one", "work", "personal", "i", "guess", "try", "write", "please", "just", "so", "on", "er", "um", "uh", "which", "account", "old", "new", "here", "this", "email's", "is", "it", "be", "would", "could", "should", "your", "our", "we", "i'm", "i'd", "i'll", "of", "for", "from", "by", "with", "or", "but", "not", "no", "thanks", "thank"])
_NUMBER_WORD_VALUE = {**UNITS, **TENS}


def _spelled(tok: str) -> str | None:
    """ "k-a-t-e" -> "kate"; None if the token is not spelled letter by letter."""
    parts = tok.split("-")
    if len(parts) >= 2 and all(len(p) == 1 for p in parts):
        return "".join(parts)
    return None


def emails(text: str) -> list[tuple[str, int, int]]:
    """(email, start, end) for literal and spoken emails, in order."""
    text = normalize(text)
    found: list[tuple[str, int, int]] = []
    masked = text
    for m in _LITERAL_EMAIL.finditer(text):
        raw = m.group().rstrip(".-")
        try:
            email = normalize_email(raw)
        except ValueError:
            continue
        if email:
            found.append((email, m.start(), m.start() + len(raw)))
            masked = masked[:m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
    masked = re.sub(r"\b[A-Za-z0-9._%+\-]+@(?=[\s,]|$)", lambda m: " " * len(m.group()), masked)
    toks = [(m.group(), m.start(), m.end()) for m in _EMAIL_TOKEN.finditer(masked)]
    for i, (tok, s, e) in enumerate(toks):
        if tok.lower() not in ("at", "@"):
            continue
        spoken = _spoken_email(toks, i)
        if spoken:
            email, a, b = spoken
            found.append((email, a, b))
    found.sort(key=lambda x: x[1])
    return found


def _spoken_email(toks: list[tuple[str, int, int]], at: int) -> tuple[str, int, int] | None:
    # Domain, forwards.
    j = at + 1
    if j < len(toks) and toks[j][0].lower() == "sign":
        j += 1
    labels: list[str] = []
    cur: list[str] = []
    end = toks[at][2]
    while j < len(toks):
        tok = toks[j][0]
        low = tok.lower()
        if low in _DOT:
            if not cur:
                return None
            labels.append("".join(cur))
            cur = []
        elif low in ("dash", "hyphen"):
            cur.append("-")
        elif re.fullmatch(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*", low) and (
                low not in _LOCAL_STOP or (labels and not cur)):
            if labels and cur:  # after the first dot a label is one word
                break
            if len(cur) >= 3:
                return None
            cur.append(_spelled(low) or low)
        else:
            break
        end = toks[j][2]
        j += 1
    if cur:
        labels.append("".join(cur))
    elif labels:
        return None
    if len(labels) < 2 or not re.fullmatch(r"[a-z]{2,24}", labels[-1]):
        return None
    # Local part, backwards.
    k = at - 1
    parts: list[str] = []
    words = 0
    start = toks[at][1]
    while k >= 0:
        tok = toks[k][0]
        low = tok.lower()
        if low in _DOT or low in _CONNECT:
            parts.append("." if low in _DOT else _CONNECT[low])
            start = toks[k][1]
            k -= 1
            if k >= 0 and toks[k][0] == ",":
                k -= 1
            continue
        if tok == ",":
            prev_is_connector = parts and parts[-1] in (".", "_", "-", "+")
            if prev_is_connector:
                k -= 1
                continue
            # "olivia, o-l-i-v-i-a, dot grant": a name followed by its spelling.
            if k >= 1 and parts and toks[k - 1][0].lower() == parts[-1]:
                k -= 2
                continue
            break
        if low in _LOCAL_STOP or not re.fullmatch(r"[a-z0-9]+(?:[._+\-][a-z0-9]+)*", low):
            break
        if words >= 4:
            break
        if parts and parts[-1] not in (".", "_", "-", "+") and len(low) > 1 and words >= 2:
            break
        parts.append(_spelled(low) or low)
        words += 1
        start = toks[k][1]
        k -= 1
    while parts and parts[-1] in (".", "_", "-", "+"):
        parts.pop()
    if not parts:
        return None
    if any(p not in _NUMBER_WORD_VALUE and p.isalpha() for p in parts):  # "ada seventy": ada70
        parts = [str(_NUMBER_WORD_VALUE[p]) if p in _NUMBER_WORD_VALUE else p for p in parts]
    local = "".join(reversed(parts))
    email = f"{local}@{'.'.join(labels)}".lower()
    try:
        norm = normalize_email(email)
    except ValueError:
        return None
    return (norm, start, end) if norm else None
