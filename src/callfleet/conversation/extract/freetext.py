"""Free-text answers: the span of an answer that is its value."""

from __future__ import annotations

import re

from callfleet.conversation.extract.dates import (
    DATE_NEG_AFTER,
    DATE_NEG_BEFORE,
    MON,
    ORDINAL_WORDS,
    WD,
)
from callfleet.conversation.extract.text import normalize, sentences

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
    rf"^(?:{WD}s?|{MON}|today|tonight|tomorrow|weekends?|mornings?|afternoons?|evenings?|"
    r"noon|midday|lunchtime|\d{1,2}(?:st|nd|rd|th)|"
    r"\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d{4}-\d{2}-\d{2})$")
_TEMPORAL_PART = re.compile(
    r"^(?:next|this|coming|sometime|some time|maybe|morning|afternoon|evening|night|noon|"
    r"midday|lunch|lunchtime|after|before|around|at|the|of|am|pm|a\.m\.|p\.m\.|early|late|"
    r"later|week|day|o'clock|by|or|on|end|\d{1,2}(?::\d\d)?(?:am|pm)?|one|two|three|four|five|"
    r"six|seven|eight|nine|ten|eleven|twelve|half|past|ish|" + "|".join(ORDINAL_WORDS) + ")$")
_TRIM = {"at", "the", "of", "on", "by", "or", "after", "before", "around", "maybe", "this",
         "next", "coming", "some", "end", ","}
_TRIM_LEAD = _TRIM - {"next", "this", "coming", "some", "end", "maybe"}


def temporal_span(answer: str) -> tuple[str, int] | None:
    text = normalize(answer)
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
        if DATE_NEG_BEFORE.search(before) or DATE_NEG_AFTER.search(low[end:end + 24]):
            continue
        best = (phrase, start)
    return best


def free_text(answer: str) -> str | None:
    if _NON_ANSWER.search(answer):
        return None
    for sent in sentences(answer):
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
