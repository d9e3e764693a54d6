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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from callfleet.conversation.extract.binding import bind, profile
from callfleet.conversation.extract.dates import dates
from callfleet.conversation.extract.emails import emails
from callfleet.conversation.extract.field import FieldProfile, attr_of
from callfleet.conversation.extract.freetext import free_text, temporal_span
from callfleet.conversation.extract.numbers import Num, choose_number, numbers
from callfleet.conversation.extract.options import SEL_CUE, select
from callfleet.conversation.extract.phones import phones
from callfleet.conversation.extract.text import AUX, STOPWORDS, WORD, normalize, stem, word_list
from callfleet.conversation.extract.yesno import read_yes_no
from callfleet.crm.fields import coerce_custom_value, normalize_email


@dataclass(frozen=True)
class ExtractedValue:
    value: Any
    confidence: float
    evidence: str


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
    role = str(attr_of(m, "role") or "").lower()
    text = attr_of(m, "text")
    if text is None:
        text = attr_of(m, "content") or attr_of(m, "message") or ""
    return role, str(text)


def _turns(messages: Sequence[Any], fields: list[FieldProfile]) -> tuple[list[_Turn], list[str]]:
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
            new = bind(text, fields)
            carry = (bound, last_assistant) if not new and "?" not in text else None
            if new or not prev_user_question or inherited:
                bound, inherited, last_assistant = new, False, text
            else:  # "Why do you ask?" - explanation - the answer: keep the question's fields
                inherited = True
        elif role in ("user", "customer", "callee", "human"):
            is_q = text.strip().endswith("?")
            if carry and not bound and _CORRECTION.search(normalize(text).lower()):
                # "Monday it is." - "Wait, no, Tuesday is better.": still the same question.
                turns.append(_Turn(i, text, carry[1], set(carry[0]), is_q, True))
            else:
                turns.append(_Turn(i, text, last_assistant, set(bound), is_q, inherited))
            carry = None
            prev_user_question = is_q
    return turns, assistant_texts


def _mentions_key(f: FieldProfile, text: str) -> list[int]:
    """Positions where the user names the field itself ("our budget is ...")."""
    out = []
    for m in WORD.finditer(normalize(text).lower()):
        w = m.group()
        if w not in STOPWORDS and stem(w) in f.key_terms:
            out.append(m.start())
    return out


def _question_kind(sentence: str) -> str:
    """'real' for a question asked ("Is fifty the minimum?"), 'proposal' ("How about X?")."""
    low = sentence.strip().lower()
    if not low.endswith("?"):
        return "statement"
    if re.match(r"^(?:how about|what about|maybe|perhaps|or)\b", low):
        return "proposal"
    first = word_list(low)[:1]
    if first and first[0] in AUX + ("what", "who", "why", "how", "where", "which", "isn't",
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
    profiles = [profile(f) for f in fields]
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
        out.update(e for e, _, _ in emails(t))
        out.update(p for p, _, _ in phones(t, region))
    return out


def _storable(value: Any, f: FieldProfile) -> Any:
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


def _number_self_binding(turns: list[_Turn], fields: list[FieldProfile]) -> dict[int, set[str]]:
    """Per user turn, number fields named before a number ("our budget is around 2000")."""
    out: dict[int, set[str]] = {}
    for t in turns:
        nums = numbers(t.text)
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
    f: FieldProfile, fields: list[FieldProfile], turns: list[_Turn], today: date, region: str,
    said: set[str], number_bind: dict[int, set[str]],
) -> ExtractedValue | None:
    if f.type == "email":
        return _extract_contact(f, fields, turns, said, lambda t: emails(t))
    if f.type == "phone":
        return _extract_contact(f, fields, turns, said, lambda t: phones(t, region))
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


def _from_turn(f: FieldProfile, t: _Turn, today: date, region: str) -> ExtractedValue | None:
    text = normalize(t.text)
    if f.type in ("number", "date", "select") and _denies(f, text):
        return ExtractedValue(None, 0.0, text)  # "we haven't set a budget": clears the field
    if f.type == "number":
        return _number_value(f, text, region)
    if f.type == "date":
        spans = _sentence_spans(text)
        cands = []
        for d in dates(text, today, region):
            if d.negated:
                continue
            kind = next((k for a, b, k in spans if a <= d.start < b), "statement")
            cands.append((d, kind))
        if not cands:
            return None
        cues = [m.end() for m in SEL_CUE.finditer(text.lower())]
        cut = max((c for c in cues if any(d.start >= c for d, _ in cands)
                   and any(d.start < c for d, _ in cands)), default=None)
        d, kind = cands[-1] if cut is None else next(x for x in cands if x[0].start >= cut)
        return ExtractedValue(d.value.isoformat(), 0.6 if kind != "statement" else 0.85, text)
    if f.type == "boolean":
        got = read_yes_no(text, t.question, t.inherited)
        return ExtractedValue(got[0], got[1], text) if got else None
    if f.type == "select":
        if f.ranges:
            num = choose_number([x for x in numbers(text) if not _in_real_question(x, text)]
                                 + _no_count(f, text), text)
            if num is None:
                return None
            for opt, (lo, hi) in zip(f.options, f.ranges, strict=True):
                if lo <= num.value <= hi:
                    return ExtractedValue(opt, 0.75, text)
            return None
        got = select(f, text, t.question)
        return ExtractedValue(got[0], got[1], text) if got else None
    # text
    if f.temporal:
        span = temporal_span(text)
        return ExtractedValue(span[0], 0.75, text) if span else None
    value = free_text(text)
    return ExtractedValue(value, 0.7, text) if value else None


_DENIAL = re.compile(
    r"\b(?:don't|do not|haven't|have not|didn't|did not|never|without|hasn't|has not|no)\s+"
    r"(?:(?:really|yet|even|got|have|had|set|made|decided|agreed|on|a|an|any|the|fixed|real)\s+)"
    r"{0,3}([a-z]+)")


def _denies(f: FieldProfile, text: str) -> bool:
    """ "We haven't set a budget yet", "no fixed date": the field itself is denied."""
    for m in _DENIAL.finditer(text.lower()):
        if stem(m.group(1)) not in f.key_terms:
            continue
        if m.group().startswith("no ") and f.type == "number":
            continue  # "no guests" is a count: 0
        return True
    return False


def _in_real_question(x: Num, text: str) -> bool:
    return any(a <= x.start < b and k == "real" for a, b, k in _sentence_spans(text))


def _no_count(f: FieldProfile, text: str) -> list[Num]:
    """ "No guests" -> 0 for a field about guests."""
    out = []
    for m in re.finditer(r"\b(?:no|zero)\s+([a-z]+)", text.lower()):
        if stem(m.group(1)) in f.terms:
            out.append(Num(0.0, m.start(), m.end()))
    return out


def _number_value(f: FieldProfile, text: str, region: str) -> ExtractedValue | None:
    masks = [(a, b) for _, a, b in emails(text)] + [(a, b) for _, a, b in phones(text, region)]
    spans = _sentence_spans(text)
    nums = []
    for x in numbers(text, masks) + _no_count(f, text):
        kind = next((k for a, b, k in spans if a <= x.start < b), "statement")
        if kind == "real" or re.match(r"\s+(?:other|others|more|extra)\b", text[x.end:]):
            continue  # a question back, or a partial count ("me and one other")
        x.tentative = kind == "proposal"
        nums.append(x)
    nums.sort(key=lambda x: x.start)
    chosen = choose_number(nums, text)
    if chosen is None or chosen.lo is not None:
        return None
    value = chosen.value
    value = int(value) if float(value).is_integer() else value
    return ExtractedValue(value, 0.6 if chosen.tentative else 0.85, text)


def _extract_contact(f: FieldProfile, fields: list[FieldProfile], turns: list[_Turn],
                     said: set[str],
                     finder: Any) -> ExtractedValue | None:
    """Emails and phones: every user turn (more confident when bound); later turns win."""
    same_type = [g for g in fields if g.type == f.type and g.key != f.key]
    best: ExtractedValue | None = None
    for t in turns:
        text = normalize(t.text)
        cands = [c for c in finder(text) if c[0] not in said]
        if not cands:
            continue
        chosen = _pick_contact(f, same_type, cands, text)
        if chosen is None:
            continue
        best = ExtractedValue(chosen, 0.9 if f.key in t.bound else 0.75, text)
    return best


def _pick_contact(f: FieldProfile, others: list[FieldProfile], cands: list[tuple[str, int, int]],
                  text: str) -> str | None:
    distinct = list(dict.fromkeys(c[0] for c in cands))
    if len(distinct) == 1:
        return distinct[0]
    low = text.lower()
    masked = low
    for _, a, b in cands:
        masked = masked[:a] + " " * (b - a) + masked[b:]
    cues = [m.start() for m in SEL_CUE.finditer(masked) if cands[0][1] < m.start() < cands[-1][1]]
    if cues:
        return next(c for c in cands if c[1] > max(cues))[0]

    def near(g: FieldProfile, start: int) -> bool:
        before = low[max(0, start - 40):start]
        return any(stem(w) in (g.key_terms - {"email", "phon", "numb"})
                   for w in word_list(before))

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
