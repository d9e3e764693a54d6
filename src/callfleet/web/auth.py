"""Who is signed in, and the CSRF check, for every page.

- The session cookie is ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` when the request
  came over https (directly, or through a proxy uvicorn trusts for ``X-Forwarded-Proto``).
- Every request that changes something (POST) must carry the session's CSRF token, as the
  form field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends it from the
  ``hx-headers`` of ``<body>``). Forms before sign-in use a double-submit cookie instead.
- A request without a valid session is sent to ``/login`` (htmx requests get
  ``HX-Redirect``), remembering where it was going.

Pages depend on :data:`Viewer` (a read session) or :data:`Editor` (a write session, CSRF
checked); both carry the signed-in user and the :class:`Principal` the API's service
functions take.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse

from callfleet.teams import signin
from callfleet.teams.principal import Principal
from callfleet.teams.signin import SignedIn
from callfleet.teams.users import can

SESSION_COOKIE = "callfleet_session"
PRE_CSRF_COOKIE = "callfleet_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_FIELDS = 200


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    pass


class Forbidden(Exception):
    """The signed-in user's role may not do this (a member opening API keys)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PageNotFound(Exception):
    pass


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Any, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(signin.SESSION_MAX.total_seconds()),
                        httponly=True, samesite="lax", secure=is_https(request), path="/")


def clear_session_cookie(response: Any, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=is_https(request))


def safe_next(target: str | None) -> str:
    """A same-site path to go to after sign-in (never another host: no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or len(target) > 2000):
        return "/"
    return target


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" + ("" if here in ("/", "/login") else f"?next={quote(here, safe='')}")


async def read_form(request: Request) -> FormData:
    """The posted form, with a cap on its fields (the body size is capped by the app)."""
    return await request.form(max_files=2, max_fields=MAX_FORM_FIELDS)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass
class Ctx:
    """A page request: the signed-in user and the database session it runs in."""

    user: SignedIn
    s: AsyncSession
    request: Request

    @property
    def p(self) -> Principal:
        return self.user.principal

    @property
    def region(self) -> str:
        """Where phone numbers without +country are read (``CALLFLEET_DEFAULT_REGION``)."""
        return str(self.request.app.state.settings.default_region)

    async def done(self, url: str) -> RedirectResponse:
        """Commit the page's write and go to ``url`` (303, so a reload does not post
        again)."""
        await self.s.commit()
        return RedirectResponse(url, status_code=303)

    def require(self, what: str) -> None:
        if not can(self.user.role, what):
            raise Forbidden(f"Your role ({self.user.role}) cannot manage "
                            f"{what.replace('_', ' ')}. Ask an owner or an admin.")


async def _signed_in(request: Request, s: AsyncSession) -> SignedIn:
    token = request.cookies.get(SESSION_COOKIE)
    user = await signin.load_session(s, token)
    if user is None:
        raise SignInRequired(login_url(request))
    request.state.web_user = user
    return user


async def viewer(request: Request) -> AsyncIterator[Ctx]:
    db = request.app.state.db
    async with db.session(write=False) as s:
        user = await _signed_in(request, s)
        if user.stale:
            async with db.session(write=True) as w:
                await signin.touch_session(w, user.session_id)
                await w.commit()
        yield Ctx(user, s, request)


async def editor(request: Request) -> AsyncIterator[Ctx]:
    """A write session for a POST: signed in, and the CSRF token must match."""
    async with request.app.state.db.session(write=True) as s:
        user = await _signed_in(request, s)
        await _check_csrf(request, user)
        if user.stale:
            await signin.touch_session(s, user.session_id)
        yield Ctx(user, s, request)


async def acting(request: Request) -> SignedIn:
    """Signed in and CSRF-checked, with no session held afterwards: for handlers whose
    service opens its own transactions (running a campaign)."""
    async with request.app.state.db.session(write=False) as s:
        user = await _signed_in(request, s)
    await _check_csrf(request, user)
    return user


async def _check_csrf(request: Request, user: SignedIn) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = str((await read_form(request)).get(CSRF_FIELD) or "")
    if not secrets.compare_digest(sent.encode(), user.csrf_token.encode()):
        raise CsrfRefused()


Viewer = Annotated[Ctx, Depends(viewer)]
Editor = Annotated[Ctx, Depends(editor)]


def pre_session_csrf(request: Request) -> str:
    """The double-submit token of a form shown before sign-in (from its cookie, or new)."""
    token = request.cookies.get(PRE_CSRF_COOKIE)
    if not token or len(token) != 64:
        token = secrets.token_hex(32)
    return token


def set_pre_session_csrf(response: Any, request: Request, token: str) -> None:
    response.set_cookie(PRE_CSRF_COOKIE, token, max_age=3600 * 12, httponly=True,
                        samesite="strict", secure=is_https(request), path="/")


async def check_pre_session_csrf(request: Request, form: FormData) -> None:
    cookie = request.cookies.get(PRE_CSRF_COOKIE) or ""
    sent = str(form.get(CSRF_FIELD) or "")
    if not cookie or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfRefused()
