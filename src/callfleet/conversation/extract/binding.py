"""Binding a user's answer to the fields the assistant's question asked about."""

from __future__ import annotations

import re
from typing import Any

from callfleet.conversation.extract.field import FieldProfile, attr_of
from callfleet.conversation.extract.options import find_option, option_ranges, phrases_of_option
from callfleet.conversation.extract.text import (
    AUX,
    CONCEPTS,
    DATE_CUE,
    EMAIL_CUE,
    NEVER_TERMS,
    NUMBER_CUE,
    PHONE_CUE,
    STOPWORDS,
    normalize,
    sentences,
    stem,
    word_list,
)


def profile(raw: Any) -> FieldProfile:
    key = str(attr_of(raw, "key") or "")
    ftype = str(attr_of(raw, "type") or "text").lower()
    target = str(attr_of(raw, "target") or "").lower()
    if ftype == "text" and target == "email":  # a text field written to the contact's email
        ftype = "email"
    elif ftype == "text" and target.startswith("phone"):
        ftype = "phone"
    desc = str(attr_of(raw, "description") or "")
    options = [str(o) for o in (attr_of(raw, "options") or [])]
    f = FieldProfile(key=key, type=ftype, description=desc, options=options)
    desc_clean = re.sub(r"\bthe contact'?s?\b", " ", desc, flags=re.IGNORECASE)
    desc_stems = {stem(w) for w in word_list(desc_clean) if w not in STOPWORDS}
    key_stems: set[str] = set()
    for tok in re.split(r"[_\W]+", key.lower()):
        if not tok or tok in STOPWORDS:
            continue
        key_stems.add(stem(tok))
        for cut in range(3, len(tok) - 2):  # compounds: callback -> call + back
            left, right = tok[:cut], tok[cut:]
            if stem(left) in desc_stems and stem(right) in desc_stems:
                key_stems.update({stem(left), stem(right)})
    drop = {"numb"} if ftype != "phone" else set()
    f.key_terms = {s for s in key_stems - drop if s not in NEVER_TERMS}
    f.terms = {s for s in (desc_stems | key_stems) - drop if s not in NEVER_TERMS}
    f.temporal = ftype == "text" and bool(
        {"day", "date", "time", "when", "callback"}
        & set(word_list(desc + " " + key.replace("_", " ")))
    )
    if ftype == "select" and options:
        f.ranges = option_ranges(options)
        f.option_phrases = [phrases_of_option(o, options) for o in options]
    return f


def _field_score(f: FieldProfile, stems: set[str], concepts: set[int]) -> float:
    score = 0.0
    for term in f.terms:
        weight = 1.5 if term in f.key_terms else 1.0
        if term in stems or (CONCEPTS.get(term, set()) & concepts):
            score += weight
    return score


def _type_bonus(f: FieldProfile, low: str, question: bool) -> float:
    bonus = 0.0
    numeric = f.type == "number" or (f.type == "select" and f.ranges)
    if numeric and NUMBER_CUE.search(low):
        bonus += 1.0
    if (f.type == "date" or f.temporal) and DATE_CUE.search(low):
        bonus += 1.0
    if f.type == "email" and EMAIL_CUE.search(low):
        bonus += 1.0
    if f.type == "phone" and PHONE_CUE.search(low):
        bonus += 1.0
    if f.type == "select" and f.options and not f.ranges:
        named = sum(1 for i in range(len(f.options)) if find_option(f, i, low, strong_only=True))
        bonus += min(2, named)
    if f.type == "boolean" and question:
        first = word_list(low)[:1]
        if first and first[0] in AUX and " or " not in low:
            bonus += 0.5
    return bonus


_WH_QUESTION = re.compile(r"^\W*(?:\w+[,.!]\s+)*(?:what|what's|how|when|where|which|who|why)\b")


def _asks_yes_no(questions: list[str]) -> bool:
    """False when every question is a wh-question ("How much would you like to give?")."""
    return not questions or any(not _WH_QUESTION.match(q.lower()) for q in questions)


def bind(assistant_text: str, fields: list[FieldProfile]) -> set[str]:
    """Keys of the fields an assistant turn asks about."""
    sents = sentences(assistant_text)
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
            low = normalize(" ".join(group)).lower()
            ws = word_list(low)
            stems = {stem(w) for w in ws if w not in STOPWORDS}
            concepts: set[int] = set()
            for s in stems:
                concepts |= CONCEPTS.get(s, set())
            total += weight * (_field_score(f, stems, concepts) + _type_bonus(f, low, is_q))
        scores[f.key] = total
    best: dict[str, float] = {}
    for f in fields:
        kind = f"{f.type}:{f.temporal}"
        best[kind] = max(best.get(kind, 0.0), scores[f.key])
    return {f.key for f in fields
            if scores[f.key] >= 1.0 and scores[f.key] >= 0.5 * best[f"{f.type}:{f.temporal}"]}
