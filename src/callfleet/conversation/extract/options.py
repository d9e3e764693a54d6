"""Select options: which of a field's options an answer names."""

from __future__ import annotations

import re

from callfleet.conversation.extract.field import FieldProfile
from callfleet.conversation.extract.text import normalize

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


def phrases_of_option(option: str, options: list[str]) -> list[tuple[str, bool]]:
    """(phrase, strong) pairs that name ``option``."""
    name = re.sub(r"[_\-]+", " ", option.lower()).strip()
    others = {re.sub(r"[_\-]+", " ", o.lower()).strip() for o in options if o != option}
    phrases: list[tuple[str, bool]] = [(name, True)]
    if not name.endswith("s"):
        phrases.append((name + "s", True))
    strong, weak = _OPTION_SYNONYMS.get(name, ([], []))
    phrases += [(p, True) for p in strong] + [(p, False) for p in weak]
    return [(p, s) for p, s in phrases if p not in others or p == name]


def find_option(f: FieldProfile, index: int, low: str, strong_only: bool = False) -> bool:
    for phrase, strong in f.option_phrases[index]:
        if strong_only and not strong:
            continue
        if re.search(r"(?<![\w'])" + re.escape(phrase) + r"(?:'s)?(?![\w'])", low):
            return True
    return False


def option_ranges(options: list[str]) -> list[tuple[float, float]] | None:
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


SEL_CUE = re.compile(
    r"\b(?:actually|make (?:that|it)|no wait|oh wait|wait|sorry|i mean|rather|instead|"
    r"on second thought|scratch that)\b|(?:^|[.!?]\s*|,\s*|\.\.\.\s*)no\b[,.]")
_ORDINAL_REF = re.compile(r"\bthe\s+(first|second|third|fourth|last|latter|former)(?:\s+one)?\b")


def select(f: FieldProfile, answer: str, question: str) -> tuple[str, float] | None:
    low = normalize(answer).lower()
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
            q = normalize(question).lower()
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
    cues = [m.start() for m in SEL_CUE.finditer(low)]
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
