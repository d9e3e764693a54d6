"""Signing in and out of the web app, sessions, CSRF, one-time links and roles.

Runs the real app in process (httpx over ASGI) on SQLite, and on PostgreSQL when configured.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from callfleet.db.base import utcnow
from callfleet.teams import signin
from callfleet.teams.models import SignInFailure, WebSession
from tests.conftest import DbHandle, TeamCtx, new_team
from tests.web.helpers import PASSWORD, WebClient, make_user

NAV = ("Campaigns", "Contacts", "Companies", "Calls", "Assistants", "Phone numbers", "Settings")


async def test_signed_out_requests_go_to_login(app: Any) -> None:
    async with WebClient(app) as c:
        for path in ("/contacts", "/companies/comp_01jbz0000000000000000000000",
                     "/settings/custom-fields", "/settings/members"):
            r = await c.get(path)
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/login"), r.headers["location"]
        r = await c.get("/contacts?search=ann")
        assert unquote(r.headers["location"]) == "/login?next=/contacts?search=ann"
        # htmx asks the browser to navigate instead of swapping a login page into a table.
        r = await c.get("/contacts", headers={"HX-Request": "true"})
        assert r.headers["HX-Redirect"].startswith("/login")
        # A POST without a session is refused the same way, whatever its token.
        r = await c.post("/contacts/new", {"firstName": "X"}, csrf=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_login_page_is_labelled(app: Any) -> None:
    async with WebClient(app) as c:
        r = await c.get("/login")
    assert r.status_code == 200
    html = r.text
    assert re.search(r'<label for="f-email">Email</label>', html)
    assert re.search(r'<label for="f-password">Password</label>', html)
    assert re.search(r'<button type="submit" class="primary">Sign in</button>', html)
    assert '<main id="main"' in html and 'lang="en"' in html
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


async def test_sign_in_shows_navigation_and_sets_a_locked_down_cookie(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    email = await make_user(database, team, "member")
    async with WebClient(app) as c:
        r = await c.sign_in(email.upper())  # emails are matched case-insensitively
        cookie = r.headers["set-cookie"]
        assert "callfleet_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert "Secure" not in cookie  # plain http here
        page = await c.get("/contacts")
        assert page.status_code == 200
        nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page.text, re.DOTALL)
        assert nav is not None
        assert re.findall(r">([^<>]+)</a>", nav[1]) == list(NAV)
        assert 'aria-current="page">Contacts<' in nav[1]


async def test_cookie_is_secure_over_https(app: Any, database: DbHandle, team: TeamCtx) -> None:
    email = await make_user(database, team)
    async with WebClient(app, base_url="https://test") as c:
        r = await c.sign_in(email)
    assert "Secure" in r.headers["set-cookie"]


async def test_wrong_password_and_unknown_email_read_the_same(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as c:
        await c.get("/login")
        wrong = await c.post("/login", {"email": email, "password": "not the password"})
        unknown = await c.post("/login", {"email": "nobody@example.com", "password": PASSWORD})
        blank = await c.post("/login", {"email": "", "password": ""})
    assert wrong.status_code == unknown.status_code == 400
    assert "Email or password is incorrect" in wrong.text
    assert "Email or password is incorrect" in unknown.text
    assert "callfleet_session" not in wrong.headers.get("set-cookie", "")
    # Blank fields: the errors sit beside their fields.
    assert blank.status_code == 400
    assert re.search(r'id="f-email"[^>]*aria-invalid="true"', blank.text)
    assert 'id="e-password"' in blank.text


async def test_sign_in_is_rate_limited_per_email(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as c:
        await c.get("/login")
        for _ in range(signin.MAX_FAILURES_PER_EMAIL):
            r = await c.post("/login", {"email": email, "password": "guess"})
            assert r.status_code == 400
        # Even the right password is refused now, with a Retry-After.
        r = await c.post("/login", {"email": email, "password": PASSWORD})
        assert r.status_code == 429, r.text
        assert 0 < int(r.headers["retry-after"]) <= 15 * 60 + 1
        assert "Too many failed sign-ins" in r.text
    # The window passes: the failures age out and the person may sign in.
    async with database.db.session() as s:
        key = signin.digest("email:" + email)
        n = await s.scalar(select(func.count()).select_from(SignInFailure)
                           .where(SignInFailure.key == key))
        assert n == signin.MAX_FAILURES_PER_EMAIL
        later = utcnow() + signin.FAILURE_WINDOW + timedelta(seconds=1)
        assert await signin.retry_after(s, email, None, now=later) == 0


async def test_login_form_needs_its_csrf_cookie(app: Any, database: DbHandle,
                                                team: TeamCtx) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as c:
        r = await c.post("/login", {"email": email, "password": PASSWORD,
                                    "csrf_token": "0" * 64})
    assert r.status_code == 403
    assert "callfleet_session" not in r.headers.get("set-cookie", "")


async def test_next_never_leaves_the_site(app: Any, database: DbHandle, team: TeamCtx) -> None:
    email = await make_user(database, team)
    for target, expected in (("/companies?search=a", "/companies?search=a"),
                             ("//evil.example/x", "/"), ("https://evil.example/", "/"),
                             ("/\\evil.example", "/")):
        async with WebClient(app) as c:
            await c.get("/login")
            r = await c.post("/login", {"email": email, "password": PASSWORD, "next": target})
        assert r.headers["location"] == expected, target


async def test_form_posts_need_the_session_csrf_token(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as c:
        await c.sign_in(email)
        good = c.csrf
        missing = await c.post("/companies/new", {"name": "NoToken"}, csrf=False)
        wrong = await c.post("/companies/new", {"name": "Wrong", "csrf_token": "f" * 64})
        assert missing.status_code == wrong.status_code == 403
        assert "This form has expired" in missing.text
        # The header htmx sends works as well as the form field.
        ok = await c.http.post("/companies/new", data={"name": "ViaHeader"},
                               headers={"X-CSRF-Token": good})
        assert ok.status_code == 303, ok.text
        listed = await c.get("/companies")
    assert "ViaHeader" in listed.text
    assert "NoToken" not in listed.text and "Wrong" not in listed.text


async def test_sign_out_ends_the_session(app: Any, database: DbHandle, team: TeamCtx) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as c:
        await c.sign_in(email)
        token = c.http.cookies["callfleet_session"]
        r = await c.post("/logout")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        # The old cookie, replayed, is worth nothing: the session is gone from the database.
        c.http.cookies.set("callfleet_session", token)
        again = await c.get("/contacts")
        assert again.status_code == 303
    async with database.db.session() as s:
        assert await s.get(WebSession, signin.digest(token)) is None


async def test_sign_out_everywhere_and_password_change(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as laptop, WebClient(app) as phone, WebClient(app) as tablet:
        for browser in (laptop, phone, tablet):
            await browser.sign_in(email)
        # A new password keeps this browser and signs the others out.
        r = await laptop.post("/settings/account/password",
                              {"current": PASSWORD, "password": "a new passphrase"})
        assert r.status_code == 200 and "Password changed" in r.text
        assert (await laptop.get("/contacts")).status_code == 200
        assert (await phone.get("/contacts")).status_code == 303
        await tablet.sign_in(email, "a new passphrase")
        r = await tablet.post("/logout/everywhere")
        assert r.status_code == 303
        assert (await laptop.get("/contacts")).status_code == 303
        assert (await tablet.get("/contacts")).status_code == 303
        # A wrong current password changes nothing, and says so beside the field.
        await phone.sign_in(email, "a new passphrase")
        bad = await phone.post("/settings/account/password",
                               {"current": "nope", "password": "another passphrase"})
        assert bad.status_code == 400 and 'id="e-current"' in bad.text


async def test_sessions_expire(app: Any, database: DbHandle, team: TeamCtx) -> None:
    email = await make_user(database, team)
    async with WebClient(app) as c:
        await c.sign_in(email)
        token = c.http.cookies["callfleet_session"]
    async with database.db.session() as s:
        now = utcnow()
        assert await signin.load_session(s, token, now) is not None
        # Idle past SESSION_IDLE: gone; in use, it slides, but never past SESSION_MAX.
        assert await signin.load_session(s, token, now + signin.SESSION_IDLE) is None
        await signin.touch_session(s, signin.digest(token), now + timedelta(days=6))
        assert await signin.load_session(s, token, now + timedelta(days=8)) is not None
        assert await signin.load_session(s, token, now + signin.SESSION_MAX) is None
        await s.rollback()


async def test_invitation_link_makes_a_member_once(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    owner = await make_user(database, team, "owner")
    async with WebClient(app) as c:
        await c.sign_in(owner)
        r = await c.post("/settings/members/invite", {"role": "admin", "email": ""})
        assert r.status_code == 200, r.text
        url = re.search(r'id="invite-url" type="text" readonly value="([^"]+)"', r.text)
        assert url, r.text
        path = "/" + url[1].split("/", 3)[3]
    async with WebClient(app) as invitee:
        page = await invitee.get(path)
        assert page.status_code == 200 and "Join Acme" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        short = await invitee.post(path, {"email": "new.admin@example.com", "password": "short"})
        assert short.status_code == 400 and 'id="e-password"' in short.text
        r = await invitee.post(path, {"email": "New.Admin@example.com", "name": "Nia",
                                      "password": "long enough pass"})
        assert r.status_code == 303, r.text
        assert "Nia" in (await invitee.get("/contacts")).text
        members = await invitee.get("/settings/members")
        assert "new.admin@example.com" in members.text
    async with WebClient(app) as late:
        again = await late.get(path)
        assert again.status_code == 404 and "cannot be used" in again.text
        r = await late.post(path, {"email": "x@example.com", "password": "long enough pass"})
        assert r.status_code in (403, 404)  # no CSRF cookie yet, or the link is spent
    async with WebClient(app) as admin:
        await admin.sign_in("new.admin@example.com", "long enough pass")
        assert "admin" in (await admin.get("/settings/team")).text


async def test_invitation_for_an_existing_account_needs_its_password(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    other = await new_team(database, "Other")
    existing = await make_user(database, other, "owner")
    async with database.db.session() as s:
        token = await signin.create_link(s, team.id, purpose="invite", role="member")
        await s.commit()
    async with WebClient(app) as c:
        await c.get(f"/signin/{token}")
        bad = await c.post(f"/signin/{token}", {"email": existing, "password": "wrong one!"})
        assert bad.status_code == 400 and "enter its password" in bad.text
        ok = await c.post(f"/signin/{token}", {"email": existing, "password": PASSWORD})
        assert ok.status_code == 303
        assert "Acme" in (await c.get("/settings/team")).text


async def test_members_cannot_manage_members(app: Any, database: DbHandle,
                                             team: TeamCtx) -> None:
    member = await make_user(database, team, "member")
    owner = await make_user(database, team, "owner")
    async with WebClient(app) as c:
        await c.sign_in(member)
        page = await c.get("/settings/members")
        assert "Create invitation link" not in page.text
        r = await c.post("/settings/members/invite", {"role": "member"})
        assert r.status_code == 403 and "cannot manage members" in r.text
        owner_id = re.search(r"/settings/members/(user_\w+)/role", page.text)
        assert owner_id is None  # no controls for a member
    async with WebClient(app) as o:
        await o.sign_in(owner)
        page = await o.get("/settings/members")
        ids_ = re.findall(r"/settings/members/(user_\w+)/remove", page.text)
        assert len(ids_) == 2


async def test_removing_a_member_ends_their_sessions_and_keeps_an_owner(
    app: Any, database: DbHandle, team: TeamCtx,
) -> None:
    owner = await make_user(database, team, "owner")
    admin = await make_user(database, team, "admin")
    async with WebClient(app) as o, WebClient(app) as a:
        await o.sign_in(owner)
        await a.sign_in(admin)
        page = await o.get("/settings/members")
        ids_ = dict(re.findall(r"<th scope=\"row\">\w+ <span class=\"muted\">([^<]+)</span>.*?"
                               r"/settings/members/(user_\w+)/role", page.text, re.DOTALL))
        # The admin may not demote the only owner, nor promote themself to owner.
        r = await a.post(f"/settings/members/{ids_[owner]}/role", {"role": "member"})
        assert r.status_code == 403
        r = await a.post(f"/settings/members/{ids_[admin]}/role", {"role": "owner"})
        assert r.status_code == 403
        # The only owner cannot leave the team without an owner.
        r = await o.post(f"/settings/members/{ids_[owner]}/role", {"role": "member"})
        assert r.status_code == 409 and "at least one owner" in r.text
        r = await o.post(f"/settings/members/{ids_[admin]}/remove")
        assert r.status_code == 303
        assert (await a.get("/contacts")).status_code == 303  # signed out at once
        await a.get("/login")
        r = await a.post("/login", {"email": admin, "password": PASSWORD})
        assert r.status_code == 400 and "not a member of any team" in r.text


@pytest.mark.parametrize("path", ["/signin/nope", "/signin/" + "x" * 43])
async def test_unknown_links_are_gone(app: Any, path: str) -> None:
    async with WebClient(app) as c:
        r = await c.get(path)
    assert r.status_code == 404 and "cannot be used" in r.text
