"""Text helpers of the deterministic extractor: normalising, stemming, words, sentences,
and the cue words questions are recognised by."""

from __future__ import annotations

import re

_APOS = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|(?<=\.\.\.)\s*")

STOPWORDS = frozenset(["a", "an", "the", "of", "to", "in", "on", "at", "by", "for", "from", "with", "and", "or", "but", "if", "so", "as", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing", "have", "has", "had", "having", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "i", "me", "my", "mine", "we", "us", "our", "ours", "you", "your", "yours", "he", "she", "it", "its", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who", "whom", "whose", "where", "how", "there", "here", "than", "then", "too", "very", "just", "also", "only", "any", "some", "all", "each", "every", "no", "not", "nor", "same", "other", "such", "more", "most", "much", "many", "few", "person's", "whether", "n't", "about", "into", "over", "under", "up", "down", "out", "off", "again", "further", "once", "get", "got", "let", "please", "okay", "ok", "well", "yes", "yeah", "sure", "hi", "hello", "thanks", "thank", "one", "ones", "like", "made", "want", "wants", "need", "needs", "know", "now", "today"])
# Never field terms, even when a key or description contains them.
NEVER_TERMS = frozenset({"in", "one", "the", "a"})


def normalize(text: str) -> str:
    return (text or "").translate(_APOS)


def stem(word: str) -> str:
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


def word_list(text: str) -> list[str]:
    low = normalize(text).lower().replace("-", " ")
    return WORD.findall(low)


def sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENT_SPLIT.split(normalize(text).strip())]
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
CONCEPTS: dict[str, set[int]] = {}
for _i, _group in enumerate(_CONCEPT_WORDS):
    for _w in _group.split():
        CONCEPTS.setdefault(stem(_w), set()).add(_i)

AUX = ("do", "does", "did", "are", "is", "was", "were", "will", "would", "can", "could",
        "have", "has", "should", "shall", "may", "any")
NUMBER_CUE = re.compile(r"\bhow (?:many|much|big|long|old|large)\b|\bwhat amount\b|\broughly\b")
DATE_CUE = re.compile(r"\bwhen\b|\b(?:what|which) (?:day|date|time)\b|\bwhat time\b")
EMAIL_CUE = re.compile(r"\be-?mail\b")
PHONE_CUE = re.compile(r"\b(?:number|phone|mobile|cell|landline)\b")
NEG_IN_QUESTION = re.compile(r"\b(?:not|never)\b|n't\b")
