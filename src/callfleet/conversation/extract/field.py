"""An extraction field as the extractor sees it (its key, type, options and the terms
that identify it in a question)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldProfile:
    key: str
    type: str
    description: str
    options: list[str]
    key_terms: set[str] = field(default_factory=set)
    terms: set[str] = field(default_factory=set)
    temporal: bool = False
    ranges: list[tuple[float, float]] | None = None
    option_phrases: list[list[tuple[str, bool]]] = field(default_factory=list)


def attr_of(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)
