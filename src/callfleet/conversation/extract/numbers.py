"""Numbers in speech: digits, number words ("twenty five thousand"), scales, ranges."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from callfleet.conversation.extract.text import normalize

UNITS = {w: i for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
TENS = {w: 10 * (i + 2) for i, w in enumerate(
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
class Num:
    value: float
    start: int
    end: int
    lo: float | None = None  # set for ranges
    hi: float | None = None
    demoted: bool = False
    tentative: bool = False
    scale: float = 1  # the multiplier said with it: "thirty thousand" -> 1000


def _word_numbers(text: str) -> list[Num]:
    """Spelled-out numbers: "forty-five", "a hundred and eighty", "one fifty", "a dozen"."""
    low = text.lower()
    toks = [(m.group(), m.start(), m.end()) for m in _NUM_WORD_TOKEN.finditer(low)]
    out: list[Num] = []
    i = 0
    n = len(toks)

    def is_num(w: str) -> bool:
        return w in UNITS or w in TENS or w in ("hundred", "dozen") or w in _SCALES

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
            if t in UNITS:
                if last_kind in ("unit", "teen"):
                    break
                if last_kind == "tens":
                    current += UNITS[t]
                    last_kind = "unit"
                else:
                    current += UNITS[t]
                    last_kind = "teen" if UNITS[t] >= 10 else "unit"
            elif t in TENS:
                if last_kind in ("tens",):
                    break
                if last_kind in ("unit", "teen") and 0 < current < 20 and current % 100 == current:
                    current = current * 100 + TENS[t]  # "one fifty", "two-fifty"
                elif last_kind in ("unit", "teen"):
                    break
                else:
                    current += TENS[t]
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
        out.append(Num(value, s, end, scale=scale))
        i = max(j, i + 1)
    return out


def _digit_numbers(text: str) -> list[Num]:
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
        out.append(Num(value, start, m.end(), scale=_MULT[mult] if mult else 1))
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


def numbers(text: str, masks: Sequence[tuple[int, int]] = ()) -> list[Num]:
    """All numbers in ``text`` (outside ``masks``), ranges merged, times dropped."""
    text = normalize(text)
    nums = sorted(_digit_numbers(text) + _word_numbers(text), key=lambda x: x.start)
    low = text.lower()
    kept: list[Num] = []
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
    merged: list[Num] = []
    for x in kept:
        if merged:
            prev = merged[-1]
            between = low[prev.end:x.start]
            if _RANGE_JOIN.match(between) and prev.lo is None:
                before = low[max(0, prev.start - 9):prev.start]
                if between.strip() != "and" or "between" in before:
                    merged[-1] = Num((prev.value + x.value) / 2, prev.start, x.end,
                                      lo=min(prev.value, x.value), hi=max(prev.value, x.value))
                    continue
        merged.append(x)
    return merged


def choose_number(nums: list[Num], text: str) -> Num | None:
    if not nums:
        return None
    low = normalize(text).lower()
    pool = nums
    cues = [m.start() for m in _NUM_CUE.finditer(low)]
    later = [c for c in cues if any(x.start > c for x in nums) and any(x.start < c for x in nums)]
    if later:
        cut = max(later)
        pool = [x for x in nums if x.start > cut]
    firm = [x for x in pool if not x.demoted and not x.tentative]
    pool = firm or pool
    return pool[0]
