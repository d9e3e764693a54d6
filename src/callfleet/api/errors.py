"""The error envelope: ``{"success": false, "error": "...", "details": {...}}``.

Every failure a client can cause is a ``callfleet.errors.ApiError`` with a status code from
SPEC section 2; FastAPI's validation errors become 400 (never 422) naming each field.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from callfleet.api.responses import JSON
from callfleet.errors import ApiError

log = structlog.get_logger("callfleet.api")




def error_body(error: str, details: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": error}
    if details:
        body["details"] = details
    return body


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind == "extra_forbidden":
        return "is not a known field"
    msg = str(err.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ")
    return msg


def validation_details(errors: list[dict[str, Any]]) -> dict[str, str]:
    details: dict[str, str] = {}
    for err in errors:
        details.setdefault(_field_name(tuple(err.get("loc", ()))), _message(err))
    return details


def install(app: FastAPI) -> None:
    _document_400_not_422(app)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSON:
        return JSON(error_body(exc.error, exc.details), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSON:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSON(error_body("Malformed JSON body", {"body": "is not valid JSON"}), 400)
        if any(tuple(e.get("loc", ())) == ("body",) for e in errors) and not _is_json(request):
            # FastAPI reads a body sent as another type as no JSON at all.
            text = "Content-Type must be application/json"
            return JSON(error_body(text, {"Content-Type": text}), 400)
        details = validation_details(errors)
        first = next(iter(details.items()))
        return JSON(error_body(f"Invalid {first[0]}: {first[1]}", details), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSON:
        text = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        # FastAPI's own 400 is a body it could not parse (e.g. JSON nested too deeply).
        details = {"body": text} if exc.status_code == 400 else None
        return JSON(error_body(text, details), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSON:
        log.exception("unhandled_error", path=request.url.path, method=request.method)
        return JSON(error_body("Internal server error"), status_code=500)


def _is_json(request: Request) -> bool:
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents a 422 ``HTTPValidationError`` on every operation with parameters; this
    API answers those as 400 with the error envelope (each operation documents its 400), so
    the OpenAPI document drops the 422s."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            for operations in doc.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict):
                        operation.get("responses", {}).pop("422", None)
            schemas = doc.get("components", {}).get("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
