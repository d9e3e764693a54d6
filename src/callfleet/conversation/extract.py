"""Deterministic post-call extraction: the fallback when no LLM is configured.

``extract(messages, fields, now=...)`` reads a call's messages and returns, for each field it
is reasonably sure about, an :class:`ExtractedValue` (value, confidence, evidence). Fields it
is unsure about are left out: a missing value is better than a wrong one written to the CRM.

How it works, in short:

* Only ``user`` turns are evidence. Each user turn is *bound* to the fields the preceding
  assistant turn asks about (key words, description words, a few synonyms, cues such as
  "how many" / "when" / "email", select options named in the question). A user turn that
  follows the user's own question ("Why do you ask?") keeps the earlier binding.
* Emails and phone numbers identify themselves, so every user turn is searched (bound turns
  win); values the assistant said itself are ignored.
* Numbers, dates, yes/no, select options and free text are read from bound turns only
  (plus a turn that names the field itself: "our budget is around 2000").
* Later values override earlier ones ("actually, make that Friday"); negated mentions give
  nothing ("I don't have an email", "not a condo", "Monday won't work").

Pure: no I/O, no clock (``now`` is a parameter), no model.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from callfleet.crm.fields import coerce_custom_value, normalize_email

__all__ = ["ExtractedValue", "extract"]


@dataclass(frozen=True)
class ExtractedValue:
    value: Any
    confidence: float
    evidence: str


# --------------------------------------------------------------------------------------------
# Text helpers

_APOS = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|(?<=\.\.\.)\s*")

STOPWORDS = frozenset(["a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "from", "with", "and", "or", "but", "if", "so", "as", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing", "have", "has", "had", "having", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "i", "me", "my", "mine", "we", "us", "our", "ours", "you", "your", "yours", "he", "she", "it", "its", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who", "whom", "whose", "where", "how", "there", "here", "than", "then", "too", "very", "just", "also", "only", "any", "some", "all", "each", "every", "no", "not", "nor", "same", "other", "such", "more", "most", "much", "many", "few", "person's", "whether", "n't", "about", "into", "over", "under", "up", "down", "out", "off", "again", "further", "once", "get", "got", "let", "please", "okay", "ok", "well", "yes", "yeah", "sure", "hi", "hello", "thanks", "thank", "one", "ones", "like", "made", "want", "wants", "need", "needs", "know", "now", "today"])
# Never field terms, even when a key or description contains them.
_NEVER_TERMS = frozenset({"in", "one", "the", "a"})


def _norm(text: str) -> str:
    return (text or "").translate(_APOS)


def _stem(word: str) -> str:
    w = word.lower().replace("'", "")
    if len(w) <= 2:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suf in ("ing", "ion", "ed", "er", "ly"):
        if w.endswith(suf) and len(w) - len(suf) >= 2:
            w = w[: -len(suf)]
            break
    if w.endswith("e") and len(w) >= 3:
        w = w[:-1]
    return w


def _words(text: str) -> list[str]:
    low = _norm(text).lower().replace("-", " ")
    return _WORD.findall(low)


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENT_SPLIT.split(_norm(text).strip())]
    return [p for p in parts if p]


# Concept groups: words that name the same thing in a question and in a field description.
_CONCEPT_WORDS = [
    "date day when schedule reschedule",
    "employee employ staff people team headcount size big",
    "budget spend afford",
    "phone number mobile cell landline reach",
    "relocate relocation move",
    "own owner homeowner",
    "attend join come coming count",
    "pledge give gift donate donation donor support contribute",
    "decision decide decides maker",
    "year long experience",
    "guest bring anyone",
    "dietary diet eat food",
    "reason why help",
    "salary compensation",
    "pay paying premium cost",
    "bill electric electricity power",
    "contact reach touch follow",
    "appointment checkup check visit consultation booking",
    "interest interested hear learn",
    "revenue turnover",
    "provider vendor",
    "email mail",
]
_CONCEPTS: dict[str, set[int]] = {}
for _i, _group in enumerate(_CONCEPT_WORDS):
    for _w in _group.split():
        _CONCEPTS.setdefault(_stem(_w), set()).add(_i)

_AUX = ("do", "does", "did", "are", "is", "was", "were", "will", "would", "can", "could",
        "have", "has", "should", "shall", "may", "any")
_NUMBER_CUE = re.compile(r"\bhow (?:many|much|big|long|old|large)\b|\bwhat amount\b|\broughly\b")
_DATE_CUE = re.compile(r"\bwhen\b|\b(?:what|which) (?:day|date|time)\b|\bwhat time\b")
_EMAIL_CUE = re.compile(r"\be-?mail\b")
_PHONE_CUE = re.compile(r"\b(?:number|phone|mobile|cell|landline)\b")
_NEG_IN_QUESTION = re.compile(r"\b(?:not|never)\b|n't\b")


# --------------------------------------------------------------------------------------------
# Field profiles


@dataclass
class _Field:
    key: str
    type: str
    description: str
    options: list[str]
    key_terms: set[str] = field(default_factory=set)
    terms: set[str] = field(default_factory=set)
    temporal: bool = False
    ranges: list[tuple[float, float]] | None = None
    option_phrases: list[list[tuple[str, bool]]] = field(default_factory=list)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _profile(raw: Any) -> _Field:
    key = str(_get(raw, "key") or "")
    ftype = str(_get(raw, "type") or "text").lower()
    target = str(_get(raw, "target") or "").lower()
    if ftype == "text" and target == "email":  # a text field written to the contact's email
        ftype = "email"
    elif ftype == "text" and target.startswith("phone"):
        ftype = "phone"
    desc = str(_get(raw, "description") or "")
    options = [str(o) for o in (_get(raw, "options") or [])]
    f = _Field(key=key, type=ftype, description=desc, options=options)
    desc_clean = re.sub(r"\bthe contact'?s?\b", " ", desc, flags=re.IGNORECASE)
    desc_stems = {_stem(w) for w in _words(desc_clean) if w not in STOPWORDS}
    key_stems: set[str] = set()
    for tok in re.split(r"[_\W]+", key.lower()):
        if not tok or tok in STOPWORDS:
            continue
        key_stems.add(_stem(tok))
        for cut in range(3, len(tok) - 2):  # compounds: callback -> call + back
            left, right = tok[:cut], tok[cut:]
            if _stem(left) in desc_stems and _stem(right) in desc_stems:
                key_stems.update({_stem(left), _stem(right)})
    drop = {"numb"} if ftype != "phone" else set()
    f.key_terms = {s for s in key_stems - drop if s not in _NEVER_TERMS}
    f.terms = {s for s in (desc_stems | key_stems) - drop if s not in _NEVER_TERMS}
    f.temporal = ftype == "text" and bool(
        {"day", "date", "time", "when", "callback"} & set(_words(desc + " " + key.replace("_", " ")))
    )
    if ftype == "select" and options:
        f.ranges = _option_ranges(options)
        f.option_phrases = [_option_phrases(o, options) for o in options]
    return f


def _field_score(f: _Field, stems: set[str], concepts: set[int]) -> float:
    score = 0.0
    for term in f.terms:
        weight = 1.5 if term in f.key_terms else 1.0
        if term in stems or (_CONCEPTS.get(term, set()) & concepts):
            score += weight
    return score


def _type_bonus(f: _Field, low: str, question: bool) -> float:
    bonus = 0.0
    numeric = f.type == "number" or (f.type == "select" and f.ranges)
    if numeric and _NUMBER_CUE.search(low):
        bonus += 1.0
    if (f.type == "date" or f.temporal) and _DATE_CUE.search(low):
        bonus += 1.0
    if f.type == "email" and _EMAIL_CUE.search(low):
        bonus += 1.0
    if f.type == "phone" and _PHONE_CUE.search(low):
        bonus += 1.0
    if f.type == "select" and f.options and not f.ranges:
        named = sum(1 for i in range(len(f.options)) if _find_option(f, i, low, strong_only=True))
        bonus += min(2, named)
    if f.type == "boolean" and question:
        first = _words(low)[:1]
        if first and first[0] in _AUX and " or " not in low:
            bonus += 0.5
    return bonus


_WH_QUESTION = re.compile(r"^\W*(?:\w+[,.!]\s+)*(?:what|what's|how|when|where|which|who|why)\b")


def _asks_yes_no(questions: list[str]) -> bool:
    """False when every question is a wh-question ("How much would you like to give?")."""
    return not questions or any(not _WH_QUESTION.match(q.lower()) for q in questions)


def _bind(assistant_text: str, fields: list[_Field]) -> set[str]:
    """Keys of the fields an assistant turn asks about."""
    sents = _sentences(assistant_text)
    questions = [s for s in sents if s.endswith("?")]
    context = [s for s in sents if not s.endswith("?")]
    if not questions:
        questions, context = sents, []
    scores: dict[str, float] = {}
    yes_no = _asks_yes_no([s for s in sents if s.endswith("?")])
    for f in fields:
        total = 0.0
        if f.type == "boolean" and not yes_no:
            scores[f.key] = 0.0
            continue
        for group, weight, is_q in ((questions, 1.0, True), (context, 0.5, False)):
            if not group:
                continue
            low = _norm(" ".join(group)).lower()
            ws = _words(low)
            stems = {_stem(w) for w in ws if w not in STOPWORDS}
            concepts: set[int] = set()
            for s in stems:
                concepts |= _CONCEPTS.get(s, set())
            total += weight * (_field_score(f, stems, concepts) + _type_bonus(f, low, is_q))
        scores[f.key] = total
    best: dict[str, float] = {}
    for f in fields:
        kind = f"{f.type}:{f.temporal}"
        best[kind] = max(best.get(kind, 0.0), scores[f.key])
    return {f.key for f in fields
            if scores[f.key] >= 1.0 and scores[f.key] >= 0.5 * best[f"{f.type}:{f.temporal}"]}


# --------------------------------------------------------------------------------------------
# Numbers

_UNITS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_MULT = {"k": 1_000, "grand": 1_000, "thousand": 1_000, "m": 1_000_000, "mm": 1_000_000,
         "million": 1_000_000, "mil": 1_000_000, "bn": 1_000_000_000, "billion": 1_000_000_000}
_DIGIT_NUM = re.compile(
    r"(?<![\w.,/:@-])[$£€]?\s?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
    r"(?:(k|m|mm|bn)\b|\s+(thousand|grand|million|mil|billion)\b)?(?![\w/:@%]|[.,]\d)",
    re.IGNORECASE,
)
_NUM_WORD_TOKEN = re.compile(r"[a-z]+")
_PRONOUN_ONE = frozenset(
    ["the", "this", "that", "which", "a", "any", "each", "every", "no", "my", "your", "our", "old", "new", "other", "work", "personal", "first", "second", "last", "right", "same", "only", "another"])


@dataclass
class _Num:
    value: float
    start: int
    end: int
    lo: float | None = None  # set for ranges
    hi: float | None = None
    demoted: bool = False
    tentative: bool = False
    scale: float = 1  # the multiplier said with it: "thirty thousand" -> 1000


def _word_numbers(text: str) -> list[_Num]:
    """Spelled-out numbers: "forty-five", "a hundred and eighty", "one fifty", "a dozen"."""
    low = text.lower()
    toks = [(m.group(), m.start(), m.end()) for m in _NUM_WORD_TOKEN.finditer(low)]
    out: list[_Num] = []
    i = 0
    n = len(toks)

    def is_num(w: str) -> bool:
        return w in _UNITS or w in _TENS or w in ("hundred", "dozen") or w in _SCALES

    def gap_ok(a: int, b: int) -> bool:
        return re.fullmatch(r"[\s-]*", low[toks[a][2]:toks[b][1]]) is not None

    while i < n:
        w, s, _ = toks[i]
        start_i = i
        if w == "a" and i + 1 < n and toks[i + 1][0] in ("hundred", "dozen", "thousand",
                                                            "million") and gap_ok(i, i + 1):
            i += 1
            w = toks[i][0]
        if not is_num(w) or w in _SCALES:
            i = start_i + 1
            continue
        if w == "one" and start_i > 0 and toks[start_i - 1][0] in _PRONOUN_ONE \
                and not (i + 1 < n and is_num(toks[i + 1][0])):
            i += 1
            continue
        total, current, last_kind, scale = 0.0, 0.0, "", 1
        j = i
        end = toks[i][2]
        while j < n:
            t = toks[j][0]
            if j > i and not gap_ok(j - 1, j):
                break
            if t in _UNITS:
                if last_kind in ("unit", "teen"):
                    break
                if last_kind == "tens":
                    current += _UNITS[t]
                    last_kind = "unit"
                else:
                    current += _UNITS[t]
                    last_kind = "teen" if _UNITS[t] >= 10 else "unit"
            elif t in _TENS:
                if last_kind in ("tens",):
                    break
                if last_kind in ("unit", "teen") and 0 < current < 20 and current % 100 == current:
                    current = current * 100 + _TENS[t]  # "one fifty", "two-fifty"
                elif last_kind in ("unit", "teen"):
                    break
                else:
                    current += _TENS[t]
                last_kind = "tens"
            elif t == "hundred":
                current = (current or 1) * 100
                last_kind = "hundred"
            elif t == "dozen":
                current = (current or 1) * 12
                last_kind = "dozen"
            elif t in _SCALES:
                total += (current or 1) * _SCALES[t]
                current = 0
                last_kind = "scale"
                scale = max(scale, _SCALES[t])
            elif t == "and" and j + 1 < n and last_kind in ("hundred", "scale") \
                    and is_num(toks[j + 1][0]):
                j += 1
                continue
            elif t == "and" and j + 2 < n and toks[j + 1][0] == "a" and toks[j + 2][0] == "half":
                current += 0.5
                end = toks[j + 2][2]
                j += 3
                break
            else:
                break
            end = toks[j][2]
            j += 1
        value = total + current
        out.append(_Num(value, s, end, scale=scale))
        i = max(j, i + 1)
    return out


def _digit_numbers(text: str) -> list[_Num]:
    out = []
    for m in _DIGIT_NUM.finditer(text):
        raw = m.group(1).replace(",", "")
        try:
            value = float(raw)
        except ValueError:  # pragma: no cover - the regex only matches numbers
            continue
        mult = (m.group(2) or m.group(3) or "").lower()
        if mult:
            value *= _MULT[mult]
        start = m.start() if text[m.start()] in "$£€" else m.start(1)
        out.append(_Num(value, start, m.end(), scale=_MULT[mult] if mult else 1))
    return out


_SHARED_SCALE = re.compile(
    r"^\s*(?:,|or|to|-|–|and)?\s*(?:maybe|perhaps|possibly|or|even|up to)?\s*$")
_RANGE_JOIN = re.compile(r"^\s*(?:to|or|-|–|and)\s*$")
_DEMOTE = re.compile(r"(?:under|below|less than|over|above|more than|almost|nearly|up to)\s*$")
_TIME_BEFORE = re.compile(r"\bat\s*$")
_TIME_AFTER = re.compile(r"^\s*(?:a\.?m\.?|p\.?m\.?|o'clock)\b|^:\d\d")
_NUM_CUE = re.compile(
    r"\b(?:actually|make (?:that|it)|no wait|oh wait|wait|sorry|i mean|rather|correction|"
    r"scratch that|instead|i'd say|more like|so|but)\b|(?:^|[.!?]\s*|,\s*)no\b[,.]",
    re.IGNORECASE,
)


def _numbers(text: str, masks: Sequence[tuple[int, int]] = ()) -> list[_Num]:
    """All numbers in ``text`` (outside ``masks``), ranges merged, times dropped."""
    text = _norm(text)
    nums = sorted(_digit_numbers(text) + _word_numbers(text), key=lambda x: x.start)
    low = text.lower()
    kept: list[_Num] = []
    for x in nums:
        if any(a <= x.start < b for a, b in masks):
            continue
        if _TIME_BEFORE.search(low[max(0, x.start - 4):x.start]) or _TIME_AFTER.search(
                low[x.end:x.end + 6]):
            continue
        if re.match(r"(?:st|nd|rd|th)\b", low[x.end:x.end + 3]):
            continue
        if kept and kept[-1].end > x.start:
            continue
        x.demoted = bool(_DEMOTE.search(low[max(0, x.start - 12):x.start]))
        kept.append(x)
    # "thirty, maybe thirty-five thousand", "two or three million": the scale is shared.
    for prev, x in pairwise(kept):
        if prev.scale == 1 and x.scale > 1 and 0 < prev.value < 1000 and x.value > 0 and \
                _SHARED_SCALE.match(
                low[prev.end:x.start]) and 0.1 <= prev.value * x.scale / x.value <= 10:
            prev.value *= x.scale
            prev.scale = x.scale
    merged: list[_Num] = []
    for x in kept:
        if merged:
            prev = merged[-1]
            between = low[prev.end:x.start]
            if _RANGE_JOIN.match(between) and prev.lo is None:
                before = low[max(0, prev.start - 9):prev.start]
                if between.strip() != "and" or "between" in before:
                    merged[-1] = _Num((prev.value + x.value) / 2, prev.start, x.end,
                                      lo=min(prev.value, x.value), hi=max(prev.value, x.value))
                    continue
        merged.append(x)
    return merged


def _choose_number(nums: list[_Num], text: str) -> _Num | None:
    if not nums:
        return None
    low = _norm(text).lower()
    pool = nums
    cues = [m.start() for m in _NUM_CUE.finditer(low)]
    later = [c for c in cues if any(x.start > c for x in nums) and any(x.start < c for x in nums)]
    if later:
        cut = max(later)
        pool = [x for x in nums if x.start > cut]
    firm = [x for x in pool if not x.demoted and not x.tentative]
    pool = firm or pool
    return pool[0]


# --------------------------------------------------------------------------------------------
# Emails

_LITERAL_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_EMAIL_TOKEN = re.compile(r"@|[A-Za-z0-9]+(?:[._+\-][A-Za-z0-9]+)*(?:'[A-Za-z]+)?|[,.;:!?—–]")
_DOT = {"dot", "point", "period"}
_CONNECT = {"underscore": "_", "dash": "-", "hyphen": "-", "plus": "+"}
_LOCAL_STOP = frozenset(["it's", "its", "is", "was", "my", "me", "email", "e-mail", "mail", "address", "use", "to", "at", "reach", "you", "can", "the", "sure", "yes", "yeah", "yep", "fine", "ok", "okay", "and", "it", "that's", "that", "send", "one", "work", "personal", "i", "guess", "try", "write", "please", "just", "so", "on", "er", "um", "uh", "which", "account", "old", "new", "here", "this", "email's", "is", "it", "be", "would", "could", "should", "your", "our", "we", "i'm", "i'd", "i'll", "of", "for", "from", "by", "with", "or", "but", "not", "no", "thanks", "thank"])
_NUMBER_WORD_VALUE = {**_UNITS, **_TENS}


def _spelled(tok: str) -> str | None:
    """ "k-a-t-e" -> "kate"; None if the token is not spelled letter by letter."""
    parts = tok.split("-")
    if len(parts) >= 2 and all(len(p) == 1 for p in parts):
        return "".join(parts)
    return None


def _emails(text: str) -> list[tuple[str, int, int]]:
    """(email, start, end) for literal and spoken emails, in order."""
    text = _norm(text)
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


# --------------------------------------------------------------------------------------------
# Phones

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


def _phones(text: str, region: str) -> list[tuple[str, int, int]]:
    text = _spoken_digits(_norm(text))
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


# --------------------------------------------------------------------------------------------
# Dates

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_ORD = (r"(?:\d{1,2}(?:st|nd|rd|th)?|(?:twenty|thirty)[\s-]?(?:first|second|third|fourth|fifth"
        r"|sixth|seventh|eighth|ninth)|" + "|".join(_ORDINAL_WORDS) + ")")
_MON = r"(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WD = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_COUNT = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_MDY_REGIONS = frozenset({"US", "PH", "FM", "MH", "PW", "GU", "AS", "VI", "MP", "PR", "UM"})

_DATE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("numeric", re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?(?![\d/])")),
    ("month_day", re.compile(rf"\b({_MON})\s+(?:the\s+)?({_ORD})\b(?:,?\s+(\d{{4}}))?")),
    ("day_month", re.compile(rf"\b(?:the\s+)?({_ORD})\s+(?:of\s+)?({_MON})(?:,?\s+(\d{{4}}))?")),
    ("nth_rel_month", re.compile(rf"\bthe\s+({_ORD})\s+of\s+(next|this)\s+month\b")),
    ("end_month", re.compile(r"\b(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?(next\s+)?month\b")),
    ("day_after", re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b")),
    ("rel_day", re.compile(r"\b(today|tonight|tomorrow)\b")),
    ("in_n", re.compile(rf"\bin\s+({_COUNT})\s+(day|week|month)s?\b")),
    ("n_from_now", re.compile(rf"\b({_COUNT})\s+(day|week|month)s?\s+from\s+(?:now|today)\b")),
    ("weekday", re.compile(rf"\b(?:(next|this|coming|last)\s+)?({_WD})s?\b")),
    ("nth", re.compile(rf"\bthe\s+(\d{{1,2}}(?:st|nd|rd|th)|{'|'.join(_ORDINAL_WORDS)})\b"
                       r"(?!\s+(?:one|option|choice|time|of\s+(?:us|them|those|these)))")),
]
_DATE_NEG_BEFORE = re.compile(
    r"(?:\bnot\b|\bno\b|n't\b|\bcannot\b|\bexcept\b|\bbesides\b|\bother than\b|\bbut\b|"
    r"\b(?:off|away|busy|unavailable|travell?ing|out of (?:the )?office)\b)"
    r"(?:\s+\w+){0,2}\s*$")
_DATE_NEG_AFTER = re.compile(
    r"^\W*(?:won't|will not|doesn't|does not|isn't|is not|wouldn't|can't|is out|is bad|"
    r"is no good|doesn't work|isn't good|is difficult|is tough)\b")


def _parse_ordinal(text: str) -> int | None:
    t = text.lower().replace("-", " ").strip()
    m = re.match(r"(\d{1,2})", t)
    if m:
        return int(m.group(1))
    parts = t.split()
    if len(parts) == 2 and parts[0] in ("twenty", "thirty"):
        return _TENS[parts[0]] + _ORDINAL_WORDS.get(parts[1], 0)
    return _ORDINAL_WORDS.get(t)


def _count(text: str) -> int | None:
    t = text.lower()
    if t.isdigit():
        return int(t)
    if t in ("a", "an"):
        return 1
    return _UNITS.get(t)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _next_year_if_past(d: date | None, today: date) -> date | None:
    if d is not None and d < today:
        return _safe_date(d.year + 1, d.month, d.day)
    return d


@dataclass
class _Date:
    value: date
    start: int
    end: int
    negated: bool = False
    kind: str = ""


def _dates(text: str, today: date, region: str) -> list[_Date]:
    low = _norm(text).lower()
    out: list[_Date] = []
    taken: list[tuple[int, int]] = []
    for kind, pat in _DATE_PATTERNS:
        for m in pat.finditer(low):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            d = _resolve(kind, m, today, region)
            if d is None:
                continue
            taken.append((m.start(), m.end()))
            before = low[max(0, m.start() - 24):m.start()]
            before = re.split(r"[.!?;]|,\s*(?=\w)", before)[-1]
            after = low[m.end():m.end() + 24]
            negated = bool(_DATE_NEG_BEFORE.search(before) or _DATE_NEG_AFTER.search(after))
            out.append(_Date(d, m.start(), m.end(), negated, kind))
    out.sort(key=lambda x: x.start)
    # "Monday the 3rd of March", "Tuesday, the 28th": the explicit date stands for both.
    merged: list[_Date] = []
    for d in out:
        if merged and merged[-1].kind == "weekday" and d.kind in (
                "nth", "day_month", "month_day", "numeric", "iso") \
                and re.fullmatch(r"[\s,]*(?:the\s*)?", low[merged[-1].end:d.start]):
            d = _Date(d.value, merged[-1].start, d.end, d.negated or merged[-1].negated, d.kind)
            merged[-1] = d
            continue
        merged.append(d)
    return merged


def _resolve(kind: str, m: re.Match[str], today: date, region: str) -> date | None:
    g = m.groups()
    if kind == "iso":
        return _safe_date(int(g[0]), int(g[1]), int(g[2]))
    if kind == "numeric":
        a, b = int(g[0]), int(g[1])
        month, day = (a, b) if region.upper() in _MDY_REGIONS else (b, a)
        if g[2]:
            year = int(g[2]) + (2000 if len(g[2]) == 2 else 0)
            return _safe_date(year, month, day)
        return _next_year_if_past(_safe_date(today.year, month, day), today)
    if kind in ("month_day", "day_month"):
        mon, ordinal = (g[0], g[1]) if kind == "month_day" else (g[1], g[0])
        month = _MONTHS.get(mon.rstrip(".").lower())
        day = _parse_ordinal(ordinal)
        if not month or not day:
            return None
        if g[2]:
            return _safe_date(int(g[2]), month, day)
        return _next_year_if_past(_safe_date(today.year, month, day), today)
    if kind == "nth_rel_month":
        day = _parse_ordinal(g[0])
        base = _add_months(today.replace(day=1), 1 if g[1] == "next" else 0)
        return _safe_date(base.year, base.month, day) if day else None
    if kind == "end_month":
        base = _add_months(today.replace(day=1), 1 if g[0] else 0)
        return base.replace(day=calendar.monthrange(base.year, base.month)[1])
    if kind == "day_after":
        return today + timedelta(days=2)
    if kind == "rel_day":
        return today + timedelta(days=1 if g[0] == "tomorrow" else 0)
    if kind in ("in_n", "n_from_now"):
        n = _count(g[0])
        if n is None or n > 400:
            return None
        if g[1] == "day":
            return today + timedelta(days=n)
        if g[1] == "week":
            return today + timedelta(weeks=n)
        return _add_months(today, n)
    if kind == "weekday":
        if g[0] == "last":
            return None
        target = _WEEKDAYS[g[1]]
        delta = (target - today.weekday()) % 7
        if delta == 0 and g[0] != "this":
            delta = 7
        return today + timedelta(days=delta)
    if kind == "nth":
        day = _parse_ordinal(g[0])
        if not day:
            return None
        d = _safe_date(today.year, today.month, day)
        if d is None or d < today:
            nxt = _add_months(today.replace(day=1), 1)
            d = _safe_date(nxt.year, nxt.month, day)
        return d
    return None  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Yes / no

_YES = [
    "yes", "yeah", "yep", "yup", "yea", "ya", "sure", "absolutely", "definitely", "of course",
    "certainly", "correct", "that's right", "that is right", "exactly", "indeed", "why not",
    "count me in", "put me down", "sign me up", "sounds good", "i'd love to", "i would love to",
    "glad to", "happy to", "i'll be there", "we'll be there", "i will be there",
    "wouldn't miss it", "that's me", "that'd be me", "that would be me", "it's me", "mm-hmm",
    "uh-huh", "i believe so", "of course", "for sure", "you bet", "go for it",
]
_YES_AUX = r"(?:i|we)\s+(?:do|am|are|have|will|would|can|did)|i'?m in"
_NO = [
    "no", "nope", "nah", "not really", "not yet", "not me", "not at all", "not this year",
    "not anymore", "not any more", "no longer", "i don't think so", "don't think so",
    "afraid not", "no thanks", "no thank you", "not for me", "not now", "not interested",
    "i don't", "we don't", "i do not", "we do not", "i'm not", "we're not", "i am not",
    "we are not", "i haven't", "we haven't", "i won't", "we won't", "i can't", "we can't",
    "i wouldn't", "we wouldn't", "not us", "negative",
]
_NO_VERB = re.compile(
    r"\b(?:can't|cannot|can not|won't|will not|unable to|not able to|not going to)\s+"
    r"(?:\w+\s+)?(?:make|come|attend|be there|do it|join)")
_HEDGE = [
    "not sure", "i'm not sure", "i am not sure", "we're not sure", "we are not sure",
    "not so sure", "i think so", "don't know", "do not know", "no idea", "maybe", "perhaps",
    "probably", "partly", "depends", "kind of", "sort of", "can't remember", "no need",
    "no problem", "no worries", "not a problem", "no rush", "rather not say", "rather not",
    "no good", "not good", "doesn't work", "won't work", "not ideal",
]


def _phrase_re(phrases: Iterable[str]) -> re.Pattern[str]:
    alts = sorted({re.escape(p) for p in phrases}, key=len, reverse=True)
    return re.compile(r"(?<![\w'])(?:" + "|".join(alts) + r")(?![\w'])")


_SIGNAL = re.compile(
    r"(?P<hedge>" + _phrase_re(_HEDGE).pattern + r")"
    r"|(?P<yesaux>(?<![\w'])" + _YES_AUX + r")(?=\s*(?:[,.!?;]|$|\s+(?:yes|yeah|so|too)\b))"
    r"|(?P<no>" + _phrase_re(_NO).pattern + r")"
    r"|(?P<yes>" + _phrase_re(_YES).pattern + r")"
)
_AGREE = {"correct", "that's right", "that is right", "exactly", "indeed"}


_PITCH_NO = {"not interested", "no thanks", "no thank you", "not for me"}
_CORRECTING_NO = re.compile(
    r"\bno\b[,\s]+(?=(?:make (?:it|that)|wait|actually|sorry|i mean|scratch that)\b)")


def _yes_no(answer: str, question: str, inherited: bool = False) -> tuple[bool, float] | None:
    low = _CORRECTING_NO.sub("   ", _norm(answer).lower())
    signals: list[tuple[int, bool, str]] = []
    for m in _SIGNAL.finditer(low):
        if m.group("hedge"):
            continue
        if inherited and m.group() in _PITCH_NO:  # refuses the pitch, not the question
            continue
        kind = m.lastgroup
        signals.append((m.start(), kind in ("yes", "yesaux"), m.group()))
    for m in _NO_VERB.finditer(low):
        signals.append((m.start(), False, m.group()))
    signals.sort()
    q_sents = [s for s in _sentences(question) if s.endswith("?")] or _sentences(question)
    q_last = q_sents[-1].lower() if q_sents else ""
    negative_q = bool(_NEG_IN_QUESTION.search(_norm(q_last)))
    if signals:
        _, value, word = signals[-1]
        if negative_q:
            if word in _AGREE:
                return (not value, 0.8)
            if word in ("yes", "yeah", "yep", "no", "nope", "nah", "sure"):
                return None
        return (value, 0.9)
    # "We use HubSpot" to "Are you using a CRM?": the question's verb, affirmed.
    q_stems = {_stem(w) for w in _words(q_last) if w not in STOPWORDS}
    m = re.match(r"^\W*(?:i|we)\s+(?:also\s+|already\s+|currently\s+)?([a-z]+)", low)
    if m and _stem(m.group(1)) in q_stems and not re.search(r"\bnot\b|n't\b|\bnever\b", low):
        return (True, 0.6)
    return None


# --------------------------------------------------------------------------------------------
# Select options

_OPTION_SYNONYMS: dict[str, tuple[list[str], list[str]]] = {
    # option word: (strong synonyms, weak synonyms)
    "high": (["very interested", "really interested", "highly", "high"],
             ["definitely", "very much", "really keen", "keen", "absolutely", "extremely",
              "very", "love to", "can't wait"]),
    "medium": (["medium", "moderately", "somewhat"],
               ["maybe", "possibly", "perhaps", "kind of", "sort of", "i guess", "might",
                "could be", "open to it"]),
    "low": (["low", "not very", "not much", "low priority", "slightly"],
            ["a little", "not a priority", "not really a priority"]),
    "none": (["none", "not interested", "no interest", "nothing", "no restrictions",
              "no requirements", "no preference", "not at all"],
             ["no", "nope", "nah", "not really", "no thanks", "no thank you"]),
    "sms": (["text", "texts", "texting", "text message", "sms", "message me"], []),
    "text": (["text message", "texting", "sms"], []),
    "phone": (["phone", "phone call", "call", "calls", "calling", "ring"], []),
    "call": (["phone", "call", "ring"], []),
    "email": (["email", "e-mail", "emails", "mail"], []),
    "send info": (["send", "info", "information", "details", "email me", "brochure",
                   "send me"], []),
    "call later": (["call back", "call me back", "later", "try me again", "try again",
                    "another time", "call later"], []),
    "meeting": (["meet", "meeting", "sit down"], []),
    "not interested": (["not interested", "no thanks", "no thank you", "no interest"], []),
    "townhouse": (["townhouse", "townhome", "town house", "town home", "townhouses"], []),
    "condo": (["condo", "condos", "condominium", "apartment"], []),
    "house": (["house", "houses", "detached"], []),
    "vegetarian": (["vegetarian", "veggie"], []),
    "vegan": (["vegan", "plant based", "plant-based"], []),
    "gluten free": (["gluten free", "gluten-free", "coeliac", "celiac"], []),
    "shingle": (["shingle", "shingles", "asphalt"], []),
    "tile": (["tile", "tiles", "clay"], []),
    "metal": (["metal", "steel", "tin"], []),
    "flat": (["flat"], []),
}
_HEDGE_OPTION_WORDS = {"maybe", "possibly", "perhaps", "later", "call later", "call back",
                       "call me back", "might", "could be"}
_NEGATORS = re.compile(r"(?:\bnot\b|\bno\b|n't\b|\bnever\b|\bwithout\b|\bexcept\b|\bnor\b)")


def _option_phrases(option: str, options: list[str]) -> list[tuple[str, bool]]:
    """(phrase, strong) pairs that name ``option``."""
    name = re.sub(r"[_\-]+", " ", option.lower()).strip()
    others = {re.sub(r"[_\-]+", " ", o.lower()).strip() for o in options if o != option}
    phrases: list[tuple[str, bool]] = [(name, True)]
    if not name.endswith("s"):
        phrases.append((name + "s", True))
    strong, weak = _OPTION_SYNONYMS.get(name, ([], []))
    phrases += [(p, True) for p in strong] + [(p, False) for p in weak]
    return [(p, s) for p, s in phrases if p not in others or p == name]


def _find_option(f: _Field, index: int, low: str, strong_only: bool = False) -> bool:
    for phrase, strong in f.option_phrases[index]:
        if strong_only and not strong:
            continue
        if re.search(r"(?<![\w'])" + re.escape(phrase) + r"(?:'s)?(?![\w'])", low):
            return True
    return False


def _option_ranges(options: list[str]) -> list[tuple[float, float]] | None:
    out = []
    for o in options:
        t = o.replace(",", "").strip().lower()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:-|–|to)\s*(\d+(?:\.\d+)?)", t)
        if m:
            out.append((float(m.group(1)), float(m.group(2))))
            continue
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*\+|(?:over|more than|above)\s*(\d+(?:\.\d+)?)", t)
        if m:
            out.append((float(m.group(1) or m.group(2)), float("inf")))
            continue
        m = re.fullmatch(r"(?:<|under|less than|below)\s*(\d+(?:\.\d+)?)", t)
        if m:
            out.append((float("-inf"), float(m.group(1)) - 1e-9))
            continue
        return None
    return out


_SEL_CUE = re.compile(
    r"\b(?:actually|make (?:that|it)|no wait|oh wait|wait|sorry|i mean|rather|instead|"
    r"on second thought|scratch that)\b|(?:^|[.!?]\s*|,\s*|\.\.\.\s*)no\b[,.]")
_ORDINAL_REF = re.compile(r"\bthe\s+(first|second|third|fourth|last|latter|former)(?:\s+one)?\b")


def _select(f: _Field, answer: str, question: str) -> tuple[str, float] | None:
    low = _norm(answer).lower()
    hits: list[tuple[int, int, bool, int]] = []  # start, end, strong, option index
    for idx in range(len(f.options)):
        for phrase, strong in f.option_phrases[idx]:
            for m in re.finditer(r"(?<![\w'])" + re.escape(phrase) + r"(?:'s)?(?![\w'])", low):
                hits.append((m.start(), m.end(), strong, idx))
    # Longest match wins where hits overlap ("not very" over "very", "townhouse" over "house").
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    kept: list[tuple[int, int, bool, int]] = []
    for h in hits:
        if any(k[0] < h[1] and h[0] < k[1] for k in kept):
            continue
        kept.append(h)
    positive = []
    for start, end, strong, idx in kept:
        phrase = low[start:end]
        if not _NEGATORS.match(phrase):
            clause = re.split(r"[.!?;,]|\bbut\b", low[:start])[-1]
            window = " ".join(clause.split()[-3:])
            if _NEGATORS.search(window):
                continue
        clause = re.split(r"[.!?;,]|\bbut\b", low[:start])[-1]
        hedged = bool(re.search(r"\b(?:maybe|perhaps|possibly|eventually|later)\b",
                                clause + " " + re.split(r"[.!?;,]", low[end:])[0]))
        if hedged and phrase not in _HEDGE_OPTION_WORDS:
            strong = False
        positive.append((start, strong, idx))
    if not positive:
        ref = _ORDINAL_REF.search(low)
        if ref:
            q = _norm(question).lower()
            named = sorted((q.find(p), i) for i in range(len(f.options))
                           for p, s in f.option_phrases[i] if s and q.find(p) >= 0)
            order: list[int] = []
            for _, i in named:
                if i not in order:
                    order.append(i)
            word = ref.group(1)
            pos = {"first": 0, "former": 0, "second": 1, "third": 2, "fourth": 3}.get(word, -1)
            if len(order) >= 2 and (pos < len(order)):
                return (f.options[order[pos]], 0.7)
        return None
    cues = [m.start() for m in _SEL_CUE.finditer(low)]
    if cues and any(p[0] > max(cues) for p in positive) and any(p[0] < max(cues)
                                                                for p in positive):
        cut = max(cues)
        positive = [p for p in positive if p[0] > cut]
    strong = [p for p in positive if p[1]]
    if strong:
        distinct = {p[2] for p in strong}
        if len(distinct) > 1:
            return None
        return (f.options[strong[0][2]], 0.85)
    return (f.options[positive[0][2]], 0.65)


# --------------------------------------------------------------------------------------------
# Free text

_LEAD_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|yeah|yes|yep|um+|uh+|er|erm|so|well|oh|okay|ok|sure|right|honestly|"
    r"basically|look|listen|hmm+)\b[\s,.!-]*)+", re.IGNORECASE)
_LEAD_CALLING = re.compile(
    r"^(?:i'?m|i am|we'?re|we are)\s+calling\s+(?:to|about|because|since|regarding|for)\s+",
    re.IGNORECASE)
_LEAD_USING = re.compile(
    r"^(?:(?:we'?re|we are|i'?m|i am)\s+(?:with|using|on)|(?:we|i)\s+(?:use|go with|work with)|"
    r"(?:it's|its|it is|that's|that would be|that'd be))\s+", re.IGNORECASE)
_TRAIL = re.compile(r"\s*(?:,?\s*(?:at the moment|right now|currently|these days|for now|"
                    r"at present|i think|i guess|to be honest))+\s*$", re.IGNORECASE)
_NON_ANSWER = re.compile(
    r"\b(?:don't know|do not know|not sure|no idea|rather not|prefer not|can't remember|"
    r"cannot remember|can't say)\b", re.IGNORECASE)
_BARE_YES_NO = re.compile(
    r"^(?:(?:yes|yeah|yep|no|nope|nah|sure|not really|not at all|not yet|absolutely|"
    r"definitely|of course|okay|ok|maybe|honestly|thanks|no thanks|not me|correct)"
    r"[\s,.!]*)+$", re.IGNORECASE)

_TEMPORAL_CORE = re.compile(
    rf"^(?:{_WD}s?|{_MON}|today|tonight|tomorrow|weekends?|mornings?|afternoons?|evenings?|"
    r"noon|midday|lunchtime|\d{1,2}(?:st|nd|rd|th)|"
    r"\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{4}-\d{2}-\d{2})$")
_TEMPORAL_PART = re.compile(
    r"^(?:next|this|coming|sometime|some time|maybe|morning|afternoon|evening|night|noon|"
    r"midday|lunch|lunchtime|after|before|around|at|the|of|am|pm|a\.m\.|p\.m\.|early|late|"
    r"later|week|day|o'clock|by|or|on|end|\d{1,2}(?::\d\d)?(?:am|pm)?|one|two|three|four|five|"
    r"six|seven|eight|nine|ten|eleven|twelve|half|past|ish|" + "|".join(_ORDINAL_WORDS) + ")$")
_TRIM = {"at", "the", "of", "on", "by", "or", "after", "before", "around", "maybe", "this",
         "next", "coming", "some", "end", ","}
_TRIM_LEAD = _TRIM - {"next", "this", "coming", "some", "end", "maybe"}


def _temporal_span(answer: str) -> tuple[str, int] | None:
    text = _norm(answer)
    toks = [(m.group(), m.start(), m.end())
            for m in re.finditer(r"[A-Za-z0-9:/\-]+(?:'s)?|,", text)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        j = i
        has_core = False
        while j < len(toks):
            w = toks[j][0].lower()
            w = w.removesuffix("'s")
            if w == "," or _TEMPORAL_CORE.match(w) or _TEMPORAL_PART.match(w):
                if j > i and re.search(r"[.!?;]", text[toks[j - 1][2]:toks[j][1]]):
                    break
                has_core = has_core or bool(_TEMPORAL_CORE.match(w))
                j += 1
            else:
                break
        if j > i and has_core:
            a, b = i, j - 1
            while a <= b and toks[a][0].lower() in _TRIM_LEAD:
                a += 1
            while b >= a and (toks[b][0].lower() in _TRIM):
                b -= 1
            if a <= b:
                spans.append((a, b))
        i = max(j, i + 1)
    best: tuple[str, int] | None = None
    low = text.lower()
    for a, b in spans:
        start, end = toks[a][1], toks[b][2]
        phrase = text[start:end]
        if phrase.lower().endswith("'s"):
            phrase, end = phrase[:-2], end - 2
        before = re.split(r"[.!?;]|,\s*(?=\w)", low[max(0, start - 24):start])[-1]
        if _DATE_NEG_BEFORE.search(before) or _DATE_NEG_AFTER.search(low[end:end + 24]):
            continue
        best = (phrase, start)
    return best


def _free_text(answer: str) -> str | None:
    if _NON_ANSWER.search(answer):
        return None
    for sent in _sentences(answer):
        s = _LEAD_FILLER.sub("", sent.strip()).strip()
        if not s or _BARE_YES_NO.match(s) or s.endswith("?"):
            continue
        s = _LEAD_CALLING.sub("", s)
        s = _LEAD_USING.sub("", s)
        s = s.rstrip(" .!")
        s = _TRAIL.sub("", s).strip(" ,.")
        if s:
            return s
    return None


# --------------------------------------------------------------------------------------------
# The extractor


@dataclass
class _Turn:
    index: int
    text: str
    question: str  # the assistant turn it answers ("" when none)
    bound: set[str]
    is_question: bool
    inherited: bool = False


_CORRECTION = re.compile(
    r"^\W*(?:oh\W+|um\W+|uh\W+)*(?:actually|wait|sorry|no wait|correction|i mean|"
    r"scratch that|make (?:it|that)|on second thought)\b")


def _message_fields(m: Any) -> tuple[str, str]:
    role = str(_get(m, "role") or "").lower()
    text = _get(m, "text")
    if text is None:
        text = _get(m, "content") or _get(m, "message") or ""
    return role, str(text)


def _turns(messages: Sequence[Any], fields: list[_Field]) -> tuple[list[_Turn], list[str]]:
    turns: list[_Turn] = []
    assistant_texts: list[str] = []
    last_assistant = ""  # the assistant turn the current binding comes from
    bound: set[str] = set()
    prev_user_question = False
    inherited = False
    carry: tuple[set[str], str] | None = None  # binding before an acknowledgement
    for i, m in enumerate(messages):
        role, text = _message_fields(m)
        if not text.strip():
            continue
        if role in ("assistant", "bot", "ai", "agent"):
            assistant_texts.append(text)
            new = _bind(text, fields)
            carry = (bound, last_assistant) if not new and "?" not in text else None
            if new or not prev_user_question or inherited:
                bound, inherited, last_assistant = new, False, text
            else:  # "Why do you ask?" - explanation - the answer: keep the question's fields
                inherited = True
        elif role in ("user", "customer", "callee", "human"):
            is_q = text.strip().endswith("?")
            if carry and not bound and _CORRECTION.search(_norm(text).lower()):
                # "Monday it is." - "Wait, no, Tuesday is better.": still the same question.
                turns.append(_Turn(i, text, carry[1], set(carry[0]), is_q, True))
            else:
                turns.append(_Turn(i, text, last_assistant, set(bound), is_q, inherited))
            carry = None
            prev_user_question = is_q
    return turns, assistant_texts


def _mentions_key(f: _Field, text: str) -> list[int]:
    """Positions where the user names the field itself ("our budget is ...")."""
    out = []
    for m in _WORD.finditer(_norm(text).lower()):
        w = m.group()
        if w not in STOPWORDS and _stem(w) in f.key_terms:
            out.append(m.start())
    return out


def _question_kind(sentence: str) -> str:
    """'real' for a question asked ("Is fifty the minimum?"), 'proposal' ("How about X?")."""
    low = sentence.strip().lower()
    if not low.endswith("?"):
        return "statement"
    if re.match(r"^(?:how about|what about|maybe|perhaps|or)\b", low):
        return "proposal"
    first = _words(low)[:1]
    if first and first[0] in _AUX + ("what", "who", "why", "how", "where", "which", "isn't",
                                     "aren't", "don't", "doesn't"):
        if re.match(r"^(?:can|could|shall)\s+(?:we|you|i)\s+(?:do|make|say|go|try|book)", low):
            return "proposal"
        return "real"
    return "proposal"


def _sentence_spans(text: str) -> list[tuple[int, int, str]]:
    out = []
    for m in re.finditer(r"[^.!?]+(?:[.!?]+|$)", text):
        if m.group().strip():
            out.append((m.start(), m.end(), _question_kind(m.group())))
    return out


def extract(
    messages: Sequence[Any],
    fields: Sequence[Any],
    *,
    now: datetime,
    region: str = "US",
    timezone: str = "UTC",
    threshold: float = 0.5,
) -> dict[str, ExtractedValue]:
    """Values for ``fields`` found in the user's turns of ``messages``.

    ``messages``: dicts (or objects) with ``role`` and ``text``; ``fields``: dicts with
    ``key``, ``type`` (text, number, date, select, boolean, email, phone), ``description``
    and, for select, ``options`` (a ``text`` field whose ``target`` is ``email`` or a phone
    field is read as that type). Relative dates are resolved against ``now`` in ``timezone``;
    phone numbers and d/m vs m/d dates use ``region``. Values: email as normalised, phone
    E.164, date ``YYYY-MM-DD``, number int/float, boolean, select the option as defined,
    text as said. Confidence is about 0.9 for an answer to the field's own question, 0.75
    for an email or phone given elsewhere or a field the user named, 0.6 for a tentative
    answer ("Maybe in 3 weeks?"); only values with ``confidence >= threshold`` are returned.
    Never raises.
    """
    try:
        return _extract(messages, fields, now=now, region=region, timezone=timezone,
                        threshold=threshold)
    except Exception:  # noqa: BLE001 - best effort: a bug must not cost the call's analysis
        result: dict[str, ExtractedValue] = {}
        for f in fields:  # one field at a time, so one failing field loses only itself
            try:
                result.update(_extract(messages, [f], now=now, region=region,
                                       timezone=timezone, threshold=threshold))
            except Exception:  # noqa: BLE001, S112
                continue
        return result


def _extract(
    messages: Sequence[Any], fields: Sequence[Any], *, now: datetime, region: str,
    timezone: str, threshold: float,
) -> dict[str, ExtractedValue]:
    """:func:`extract` without the safety net (the tests call this one)."""
    profiles = [_profile(f) for f in fields]
    profiles = [p for p in profiles if p.key]
    if not profiles:
        return {}
    turns, assistant_texts = _turns(messages, profiles)
    today = _local_today(now, timezone)
    region = (region or "US").upper()
    said_by_assistant = _assistant_values(assistant_texts, region)
    result: dict[str, ExtractedValue] = {}
    number_bind = _number_self_binding(turns, profiles)
    for f in profiles:
        found = _extract_field(f, profiles, turns, today, region, said_by_assistant,
                               number_bind)
        if found is None or found.confidence < threshold:
            continue
        value = _storable(found.value, f)
        if value is None:
            continue
        result[f.key] = ExtractedValue(value, round(found.confidence, 2), found.evidence)
    return result


def _local_today(now: datetime, tz: str) -> date:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(tz or "UTC")
    except Exception:  # noqa: BLE001 - unknown zone: fall back to UTC
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).date()


def _assistant_values(texts: list[str], region: str) -> set[str]:
    out: set[str] = set()
    for t in texts:
        out.update(e for e, _, _ in _emails(t))
        out.update(p for p, _, _ in _phones(t, region))
    return out


def _storable(value: Any, f: _Field) -> Any:
    try:
        if f.type == "email":
            return normalize_email(value)
        if f.type == "phone":
            return value
        if f.type in ("number", "date", "select", "boolean", "text"):
            return coerce_custom_value(value, f.type, f.options)
        return value
    except (ValueError, TypeError):
        return None


def _number_self_binding(turns: list[_Turn], fields: list[_Field]) -> dict[int, set[str]]:
    """Per user turn, number fields named before a number ("our budget is around 2000")."""
    out: dict[int, set[str]] = {}
    for t in turns:
        nums = _numbers(t.text)
        if not nums:
            continue
        named = set()
        for f in fields:
            if f.type != "number":
                continue
            for pos in _mentions_key(f, t.text):
                if any(x.start > pos for x in nums):
                    named.add(f.key)
        if named:
            out[t.index] = named
    return out


def _extract_field(
    f: _Field, fields: list[_Field], turns: list[_Turn], today: date, region: str,
    said: set[str], number_bind: dict[int, set[str]],
) -> ExtractedValue | None:
    if f.type == "email":
        return _extract_contact(f, fields, turns, said, lambda t: _emails(t))
    if f.type == "phone":
        return _extract_contact(f, fields, turns, said, lambda t: _phones(t, region))
    best: ExtractedValue | None = None
    for t in turns:
        bound = f.key in t.bound
        conf_scale = 1.0
        if f.type == "number":
            named = number_bind.get(t.index)
            if named:  # the user named a number field: the number is for that one
                conf_scale = 1.0 if bound else 0.85
                bound = f.key in named
        elif (f.type == "date" or f.temporal) and not bound and _mentions_key(f, t.text) \
                and not any(g.key in t.bound for g in fields
                            if g.type == f.type and g.temporal == f.temporal):
            # "Call me back tomorrow" in a turn that answers no date question.
            bound, conf_scale = True, 0.8
        if not bound:
            continue
        got = _from_turn(f, t, today, region)
        if got is not None:
            best = None if got.value is None else ExtractedValue(
                got.value, got.confidence * conf_scale, got.evidence)
    return best


def _from_turn(f: _Field, t: _Turn, today: date, region: str) -> ExtractedValue | None:
    text = _norm(t.text)
    if f.type in ("number", "date", "select") and _denies(f, text):
        return ExtractedValue(None, 0.0, text)  # "we haven't set a budget": clears the field
    if f.type == "number":
        return _number_value(f, text, region)
    if f.type == "date":
        spans = _sentence_spans(text)
        cands = []
        for d in _dates(text, today, region):
            if d.negated:
                continue
            kind = next((k for a, b, k in spans if a <= d.start < b), "statement")
            cands.append((d, kind))
        if not cands:
            return None
        cues = [m.end() for m in _SEL_CUE.finditer(text.lower())]
        cut = max((c for c in cues if any(d.start >= c for d, _ in cands)
                   and any(d.start < c for d, _ in cands)), default=None)
        d, kind = cands[-1] if cut is None else next(x for x in cands if x[0].start >= cut)
        return ExtractedValue(d.value.isoformat(), 0.6 if kind != "statement" else 0.85, text)
    if f.type == "boolean":
        got = _yes_no(text, t.question, t.inherited)
        return ExtractedValue(got[0], got[1], text) if got else None
    if f.type == "select":
        if f.ranges:
            num = _choose_number([x for x in _numbers(text) if not _in_real_question(x, text)]
                                 + _no_count(f, text), text)
            if num is None:
                return None
            for opt, (lo, hi) in zip(f.options, f.ranges, strict=True):
                if lo <= num.value <= hi:
                    return ExtractedValue(opt, 0.75, text)
            return None
        got = _select(f, text, t.question)
        return ExtractedValue(got[0], got[1], text) if got else None
    # text
    if f.temporal:
        span = _temporal_span(text)
        return ExtractedValue(span[0], 0.75, text) if span else None
    value = _free_text(text)
    return ExtractedValue(value, 0.7, text) if value else None


_DENIAL = re.compile(
    r"\b(?:don't|do not|haven't|have not|didn't|did not|never|without|hasn't|has not|no)\s+"
    r"(?:(?:really|yet|even|got|have|had|set|made|decided|agreed|on|a|an|any|the|fixed|real)\s+)"
    r"{0,3}([a-z]+)")


def _denies(f: _Field, text: str) -> bool:
    """ "We haven't set a budget yet", "no fixed date": the field itself is denied."""
    for m in _DENIAL.finditer(text.lower()):
        if _stem(m.group(1)) not in f.key_terms:
            continue
        if m.group().startswith("no ") and f.type == "number":
            continue  # "no guests" is a count: 0
        return True
    return False


def _in_real_question(x: _Num, text: str) -> bool:
    return any(a <= x.start < b and k == "real" for a, b, k in _sentence_spans(text))


def _no_count(f: _Field, text: str) -> list[_Num]:
    """ "No guests" -> 0 for a field about guests."""
    out = []
    for m in re.finditer(r"\b(?:no|zero)\s+([a-z]+)", text.lower()):
        if _stem(m.group(1)) in f.terms:
            out.append(_Num(0.0, m.start(), m.end()))
    return out


def _number_value(f: _Field, text: str, region: str) -> ExtractedValue | None:
    masks = [(a, b) for _, a, b in _emails(text)] + [(a, b) for _, a, b in _phones(text, region)]
    spans = _sentence_spans(text)
    nums = []
    for x in _numbers(text, masks) + _no_count(f, text):
        kind = next((k for a, b, k in spans if a <= x.start < b), "statement")
        if kind == "real" or re.match(r"\s+(?:other|others|more|extra)\b", text[x.end:]):
            continue  # a question back, or a partial count ("me and one other")
        x.tentative = kind == "proposal"
        nums.append(x)
    nums.sort(key=lambda x: x.start)
    chosen = _choose_number(nums, text)
    if chosen is None or chosen.lo is not None:
        return None
    value = chosen.value
    value = int(value) if float(value).is_integer() else value
    return ExtractedValue(value, 0.6 if chosen.tentative else 0.85, text)


def _extract_contact(f: _Field, fields: list[_Field], turns: list[_Turn], said: set[str],
                     finder: Any) -> ExtractedValue | None:
    """Emails and phones: every user turn (more confident when bound); later turns win."""
    same_type = [g for g in fields if g.type == f.type and g.key != f.key]
    best: ExtractedValue | None = None
    for t in turns:
        text = _norm(t.text)
        cands = [c for c in finder(text) if c[0] not in said]
        if not cands:
            continue
        chosen = _pick_contact(f, same_type, cands, text)
        if chosen is None:
            continue
        best = ExtractedValue(chosen, 0.9 if f.key in t.bound else 0.75, text)
    return best


def _pick_contact(f: _Field, others: list[_Field], cands: list[tuple[str, int, int]],
                  text: str) -> str | None:
    distinct = list(dict.fromkeys(c[0] for c in cands))
    if len(distinct) == 1:
        return distinct[0]
    low = text.lower()
    masked = low
    for _, a, b in cands:
        masked = masked[:a] + " " * (b - a) + masked[b:]
    cues = [m.start() for m in _SEL_CUE.finditer(masked) if cands[0][1] < m.start() < cands[-1][1]]
    if cues:
        return next(c for c in cands if c[1] > max(cues))[0]

    def near(g: _Field, start: int) -> bool:
        before = low[max(0, start - 40):start]
        return any(_stem(w) in (g.key_terms - {"email", "phon", "numb"})
                   for w in _words(before))

    mine = [c for c in cands if near(f, c[1])]
    if mine:
        return mine[0][0]
    theirs = [c for c in cands if any(near(g, c[1]) for g in others)]
    rest = [c for c in cands if c not in theirs]
    if rest and len({c[0] for c in rest}) == 1:
        return rest[0][0]
    keyed = {w for w in f.key_terms} - {"email", "phon", "numb", "mobil", "cell"}
    if keyed:
        # "work email" vs "personal one": a field with a qualifier and no match stays empty.
        return None
    return cands[0][0]
