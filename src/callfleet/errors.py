"""The errors a client can cause, independent of HTTP frameworks.

Every failure a caller can cause is an ``ApiError`` with a status code from SPEC section 2.
Domain code raises them; ``callfleet.api.errors`` turns them into the JSON error envelope
``{"success": false, "error": "...", "details": {...}}``.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        details: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details
        self.headers = headers


def bad_request(error: str, field: str | None = None) -> ApiError:
    return ApiError(400, error, {field: error} if field else None)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def forbidden(error: str = "Forbidden: this resource belongs to another team") -> ApiError:
    return ApiError(403, error)


def conflict(error: str) -> ApiError:
    return ApiError(409, error)


UNAUTHORIZED = ApiError(401, "Unauthorized")
