"""Yes / no answers, hedges and corrections."""

from __future__ import annotations

import re
from collections.abc import Iterable

from callfleet.conversation.extract.text import (
    NEG_IN_QUESTION,
    STOPWORDS,
    normalize,
    sentences,
    stem,
    word_list,
)

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


def read_yes_no(answer: str, question: str, inherited: bool = False) -> tuple[bool, float] | None:
    low = _CORRECTING_NO.sub("   ", normalize(answer).lower())
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
    q_sents = [s for s in sentences(question) if s.endswith("?")] or sentences(question)
    q_last = q_sents[-1].lower() if q_sents else ""
    negative_q = bool(NEG_IN_QUESTION.search(normalize(q_last)))
    if signals:
        _, value, word = signals[-1]
        if negative_q:
            if word in _AGREE:
                return (not value, 0.8)
            if word in ("yes", "yeah", "yep", "no", "nope", "nah", "sure"):
                return None
        return (value, 0.9)
    # "We use HubSpot" to "Are you using a CRM?": the question's verb, affirmed.
    q_stems = {stem(w) for w in word_list(q_last) if w not in STOPWORDS}
    m = re.match(r"^\W*(?:i|we)\s+(?:also\s+|already\s+|currently\s+)?([a-z]+)", low)
    if m and stem(m.group(1)) in q_stems and not re.search(r"\bnot\b|n't\b|\bnever\b", low):
        return (True, 0.6)
    return None
