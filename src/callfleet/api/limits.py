"""Request body limits, enforced while the body streams in (docs/security.md).

Every request's ``receive`` goes through :func:`limited_receive` (``app.RequestGuard``): it
counts the bytes as they arrive, whether or not the client sent ``Content-Length`` (chunked
bodies included), and raises :class:`BodyTooLarge` (413) the moment the route's limit is
passed, so nothing reads past it. The limit belongs to the matched route, not to a path
pattern: ``CALLFLEET_MAX_BODY_BYTES`` unless the endpoint is marked with :func:`body_limit`
(the CSV imports). A route with a stricter limit for one of its content types reads that
body with :func:`read_body`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request

from callfleet.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
LIMIT_ATTRIBUTE = "callfleet_body_limit"
Receive = Callable[[], Awaitable[dict[str, Any]]]


def body_limit(setting: str) -> Callable[[F], F]:
    """Mark an endpoint whose body is capped by ``Settings.<setting>`` instead of
    ``max_body_bytes``."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, LIMIT_ATTRIBUTE, setting)
        return endpoint

    return mark


def human(size: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


class BodyTooLarge(HTTPException):
    """413 in the error envelope. A Starlette ``HTTPException``, so that FastAPI's own body
    parsing passes it through instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "Request body too large")
        self.details = {"body": f"must be at most {human(limit)}"}


def route_limit(scope: dict[str, Any], settings: Settings) -> int:
    """The body limit of the route the router matched (``scope["route"]``)."""
    endpoint = getattr(scope.get("route"), "endpoint", None)
    setting = getattr(endpoint, LIMIT_ATTRIBUTE, None)
    return int(getattr(settings, setting)) if setting else settings.max_body_bytes


def declared_length(headers: Any) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def limited_receive(scope: dict[str, Any], receive: Receive, settings: Settings) -> Receive:
    """``receive`` that raises BodyTooLarge once the body passes the route's limit. The
    limit is looked up on the first call: by then the router has matched the route."""
    limit: int | None = None
    received = 0

    async def guarded() -> dict[str, Any]:
        nonlocal limit, received
        if limit is None:
            limit = route_limit(scope, settings)
            declared = declared_length(scope["headers"])
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)  # before reading a byte of it
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return guarded


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit``."""
    declared = declared_length(request.scope["headers"])
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
