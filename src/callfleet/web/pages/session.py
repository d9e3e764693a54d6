"""Sign in, sign out, and one-time sign-in links (invitations and login links)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from callfleet.errors import ApiError
from callfleet.teams import signin, users
from callfleet.teams.models import Membership
from callfleet.web import auth
from callfleet.web.auth import Editor
from callfleet.web.forms import field_errors, text_values
from callfleet.web.render import page

router = APIRouter(include_in_schema=False)
BAD_CREDENTIALS = "Email or password is incorrect"


def _login_form(request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
                email: str = "", next_path: str = "/", headers: dict[str, str] | None = None,
                ) -> Response:
    token = auth.pre_session_csrf(request)
    response = page(request, "login.html", status=status, csrf_token=token,
                    errors=errors or {}, values={"email": email}, next_path=next_path,
                    headers=headers)
    auth.set_pre_session_csrf(response, request, token)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/campaigns", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    next_path = auth.safe_next(request.query_params.get("next"))
    async with request.app.state.db.session(write=False) as s:
        user = await signin.load_session(s, request.cookies.get(auth.SESSION_COOKIE))
    if user is not None:
        return RedirectResponse(next_path, status_code=303)
    return _login_form(request, next_path=next_path)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await auth.read_form(request)
    await auth.check_pre_session_csrf(request, form)
    values = text_values(form, ("email", "password", "next"))
    next_path = auth.safe_next(values.get("next"))
    raw_email = values.get("email", "").strip()[:320]
    password = values.get("password", "")[: users.MAX_PASSWORD + 1]
    address = auth.client_address(request)
    errors: dict[str, str] = {}
    if not raw_email:
        errors["email"] = "Enter your email"
    if not password:
        errors["password"] = "Enter your password"
    if errors:
        return _login_form(request, status=400, errors=errors, email=raw_email,
                           next_path=next_path)
    email = raw_email.lower()
    async with request.app.state.db.session(write=True) as s:
        wait = await signin.retry_after(s, email, address)
        if wait:
            return _login_form(
                request, status=429, email=raw_email, next_path=next_path,
                errors={"_form": f"Too many failed sign-ins. Try again in {_minutes(wait)}."},
                headers={"Retry-After": str(wait)})
        user = await users.user_by_email(s, email)
        ok = await users.password_matches(user.password_hash if user else None, password)
        membership = await users.first_membership(s, user.id) if ok and user else None
        if user is None or not ok:
            await signin.record_failure(s, email, address)
            await s.commit()
            return _login_form(request, status=400, email=raw_email, next_path=next_path,
                               errors={"_form": BAD_CREDENTIALS})
        if membership is None:
            return _login_form(request, status=400, email=raw_email, next_path=next_path,
                               errors={"_form": "This account is not a member of any team. "
                                       "Ask a team owner for an invitation."})
        await signin.clear_failures(s, email)
        token = await signin.create_session(
            s, user.id, membership.team_id, ip=address,
            user_agent=request.headers.get("user-agent"))
        await signin.purge_expired(s)
        await s.commit()
    response = RedirectResponse(next_path, status_code=303)
    auth.set_session_cookie(response, request, token)
    return response


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@router.post("/logout")
async def logout(ctx: Editor) -> Response:
    await ctx.s.delete(await ctx.s.get(signin.WebSession, ctx.user.session_id))
    await ctx.s.commit()
    response = RedirectResponse("/login", status_code=303)
    auth.clear_session_cookie(response, ctx.request)
    return response


@router.post("/logout/everywhere")
async def logout_everywhere(ctx: Editor) -> Response:
    await signin.end_user_sessions(ctx.s, ctx.user.user_id)
    await ctx.s.commit()
    response = RedirectResponse("/login", status_code=303)
    auth.clear_session_cookie(response, ctx.request)
    return response


# ---------------------------------------------------------------- one-time links

NO_REFERRER = {"Referrer-Policy": "no-referrer"}  # the token is in this page's address


def _link_gone(request: Request) -> Response:
    return page(request, "error.html", status=404, headers=NO_REFERRER,
                title="This link cannot be used",
                message="The sign-in link has expired or was already used. Ask for a new one.")


def _link_form(request: Request, link: signin.OpenLink, *, status: int = 200,
               errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
               ) -> Response:
    token = auth.pre_session_csrf(request)
    response = page(request, "signin_link.html", status=status, csrf_token=token, link=link,
                    errors=errors or {}, values=values or {"email": link.email or ""},
                    headers=NO_REFERRER)
    auth.set_pre_session_csrf(response, request, token)
    return response


@router.get("/signin/{token}")
async def link_page(token: str, request: Request) -> Response:
    """Shows what the link does; only the button (a POST) uses it, so a mail scanner that
    fetches the address does not spend the link."""
    async with request.app.state.db.session(write=False) as s:
        link = await signin.find_link(s, token)
    if link is None:
        return _link_gone(request)
    return _link_form(request, link)


@router.post("/signin/{token}")
async def use_link(token: str, request: Request) -> Response:
    form = await auth.read_form(request)
    await auth.check_pre_session_csrf(request, form)
    values = text_values(form, ("email", "name", "password"))
    address = auth.client_address(request)
    async with request.app.state.db.session(write=True) as s:
        link = await signin.find_link(s, token)
        if link is None:
            return _link_gone(request)
        try:
            user_id = await _accept(s, link, values, address)
        except ApiError as exc:
            await s.commit()  # keeps a recorded failure
            return _link_form(request, link, status=exc.status if exc.status != 409 else 400,
                              errors=field_errors(exc), values=values)
        if not await signin.use_link(s, link.id):
            await s.rollback()
            return _link_gone(request)
        session_token = await signin.create_session(
            s, user_id, link.team_id, ip=address, user_agent=request.headers.get("user-agent"))
        await s.commit()
    response = RedirectResponse("/", status_code=303)
    auth.set_session_cookie(response, request, session_token)
    return response


async def _accept(s: signin.AsyncSession, link: signin.OpenLink, values: dict[str, str],
                  address: str | None) -> str:
    """The user the link signs in: a login link's own user; for an invitation, an existing
    user who proves their password, or a new user with the password they choose."""
    if link.purpose == "login":
        assert link.user_id is not None
        if await s.get(Membership, (link.team_id, link.user_id)) is None:
            raise ApiError(400, "This account is no longer a member of the team")
        return link.user_id
    email = users.normalize_email(values.get("email"))
    if link.email and email != link.email:
        raise ApiError(400, "This invitation is for another email address",
                       {"email": f"This invitation is for {link.email}"})
    password = values.get("password", "")
    existing = await users.user_by_email(s, email)
    if existing is None:
        user = await users.create_user(s, email, password, values.get("name"))
    else:
        wait = await signin.retry_after(s, email, address)
        if wait:
            raise ApiError(429, "Too many failed sign-ins; try again later")
        if not await users.password_matches(existing.password_hash, password):
            await signin.record_failure(s, email, address)
            raise ApiError(400, "This email has an account: enter its password to join",
                           {"password": "This email has an account: enter its password"})
        user = existing
    if await s.get(Membership, (link.team_id, user.id)) is None:
        await users.add_member(s, link.team_id, user.id, link.role)
    return user.id
