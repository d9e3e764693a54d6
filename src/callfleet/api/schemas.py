"""Shared request/response model pieces: camelCase input, the envelopes for the OpenAPI doc."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelIn(BaseModel):
    """Request bodies: camelCase keys (snake_case accepted too), unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", str_max_length=100_000
    )


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
