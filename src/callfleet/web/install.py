"""Mount the web app on the API's FastAPI app: pages under ``/``, the vendored static files
under ``/static``, and error handling that answers pages with pages.

The API stays under ``/api`` with its JSON errors; a request for a page gets an HTML error
page instead, and another team's object is a plain 404 there (a page never tells whether an
id exists in another team).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from callfleet.errors import ApiError
from callfleet.web import auth
from callfleet.web.pages import (
    assistants,
    calls,
    campaigns,
    companies,
    contacts,
    imports,
    numbers,
    session,
    settings,
    team_admin,
)
from callfleet.web.render import page

STATIC = Path(__file__).parent / "static"
NOT_PAGES = ("/api", "/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/static")


def is_page(request: Request) -> bool:
    path = request.url.path
    return not any(path == p or path.startswith(p + "/") for p in NOT_PAGES)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    user = getattr(request.state, "web_user", None)
    return page(request, "error.html", user=user, status=status, title=title, message=message)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (session.router, campaigns.router, imports.router, contacts.router, companies.router,
                   assistants.router, numbers.router, calls.router, settings.router,
                   team_admin.router):
        app.include_router(router)
    api_error = app.exception_handlers[ApiError]
    http_error = app.exception_handlers[StarletteHTTPException]

    async def on_api_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, ApiError)
        if not is_page(request):
            return await api_error(request, exc)
        if exc.status in (403, 404):
            return error_page(request, 404, "Not found", "There is nothing here, or it "
                              "belongs to another team.")
        return error_page(request, exc.status, "Something is not right", exc.error)

    async def on_http_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, StarletteHTTPException)
        if not is_page(request):
            return await http_error(request, exc)
        if exc.status_code == 404:
            return error_page(request, 404, "Not found", "There is no page at this address.")
        if exc.status_code == 405:
            return error_page(request, 405, "Not allowed", "This page does not take that "
                              "kind of request.")
        return error_page(request, exc.status_code, "Error", str(exc.detail))

    async def on_sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, auth.SignInRequired)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": exc.next_path})
        return RedirectResponse(exc.next_path, status_code=303)

    async def on_csrf(request: Request, exc: Exception) -> Response:
        return error_page(request, 403, "This form has expired",
                          "The form was sent without its security token, or from another "
                          "site. Go back, reload the page and try again.")

    async def on_forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, auth.Forbidden)
        return error_page(request, 403, "Not allowed", exc.message)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "Not found", "There is nothing here, or it belongs "
                          "to another team.")

    internal = app.exception_handlers[Exception]

    async def on_internal(request: Request, exc: Exception) -> Any:
        response = await internal(request, exc)  # logs it
        if not is_page(request):
            return response
        return error_page(request, 500, "Something went wrong",
                          "The server could not show this page. Try again in a moment.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(Exception, on_internal)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(auth.SignInRequired, on_sign_in_required)
    app.add_exception_handler(auth.CsrfRefused, on_csrf)
    app.add_exception_handler(auth.Forbidden, on_forbidden)
    app.add_exception_handler(auth.PageNotFound, on_not_found)
