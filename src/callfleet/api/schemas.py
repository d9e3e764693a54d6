"""Shared request/response model pieces: camelCase input, the envelopes for the OpenAPI doc."""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel


@cache
def _is_number(annotation: Any) -> bool:
    """int/float (possibly Optional or Annotated), and not also bool."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    args = get_args(annotation)
    return bool(args) and bool not in args and any(_is_number(a) for a in args)


class CamelIn(BaseModel):
    """Request bodies: camelCase keys (snake_case accepted too), unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", str_max_length=100_000
    )

    @field_validator("*", mode="before")
    @classmethod
    def _bool_is_not_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Pydantic's lax mode reads true as 1; a JSON boolean where a number belongs is a
        # client bug to report, not to guess.
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _is_number(field.annotation):
                raise ValueError("must be a number, not a boolean")
        return value


class ErrorOut(BaseModel):
    success: bool = False
    error: str
    details: dict[str, str] | None = None


class OkOut(BaseModel):
    success: bool = True


ERRORS = {
    400: {"model": ErrorOut, "description": "Invalid or missing parameters"},
    401: {"model": ErrorOut, "description": "Missing or invalid API key"},
    403: {"model": ErrorOut, "description": "Another team's resource or teamId"},
    404: {"model": ErrorOut, "description": "Unknown id"},
    409: {"model": ErrorOut, "description": "Conflict"},
    413: {"model": ErrorOut, "description": "Body too large"},
    429: {"model": ErrorOut, "description": "Rate limited; see Retry-After"},
}


def errors(*codes: int) -> dict[int | str, dict[str, object]]:
    """Error responses of an /api operation: 400, 401, 413 (any body over the cap, see
    app.py) and 429 always, plus ``codes``."""
    return {c: ERRORS[c] for c in (400, 401, 413, 429, *codes)}
