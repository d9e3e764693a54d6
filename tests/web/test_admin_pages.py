"""Settings for integrations and dialing rules: API keys (shown once, revoke, owners and
admins only), webhooks (secret shown once, delivery log, test, retry), the do-not-call list,
and calling hours."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import DbHandle, TeamCtx
from tests.web.helpers import WebClient, make_user


async def test_members_cannot_open_api_keys_or_webhooks(app: Any, database: DbHandle,
                                                       team: TeamCtx) -> None:
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "member"))
        for path in ("/settings/api-keys", "/settings/webhooks"):
            r = await c.get(path)
            assert r.status_code == 403, path
            assert "Ask an owner or an admin" in r.text
        r = await c.post("/settings/api-keys", {"name": "sneaky"})
        assert r.status_code == 403
        r = await c.post("/settings/calling-hours", {"legal_hours_start": "09:00"})
        assert r.status_code == 403


async def test_api_key_is_shown_once_and_works(app: Any, database: DbHandle,
                                               team: TeamCtx) -> None:
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "admin"))
        r = await c.post("/settings/api-keys", {"name": "CRM sync"})
        assert r.status_code == 200
        token = re.search(r'id="new-key" type="text" readonly class="mono wide-input" '
                          r'value="(tk_live_\w+)"', r.text)
        assert token
        listed = (await c.get("/settings/api-keys")).text
        assert token[1] not in listed and "CRM sync" in listed
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with api:
            ok = await api.get("/api/team", headers={"Authorization": f"Bearer {token[1]}"})
            assert ok.status_code == 200 and ok.json()["team"]["id"] == team.id
            forms = {label: key for key, label in re.findall(
                r'action="/settings/api-keys/(key_\w+)/revoke".*?aria-label="Revoke key ([^"]+)"',
                listed)}
            r = await c.post(f"/settings/api-keys/{forms['CRM sync']}/revoke")
            assert r.status_code == 303
            gone = await api.get("/api/team", headers={"Authorization": f"Bearer {token[1]}"})
            assert gone.status_code == 401


async def test_webhooks_dnc_and_hours(app: Any, database: DbHandle, team: TeamCtx) -> None:
    async with WebClient(app) as c:
        await c.sign_in(await make_user(database, team, "owner"))
        bad = await c.post("/settings/webhooks", {"url": "ftp://nope", "enabled": "on"})
        assert bad.status_code == 400 and 'id="e-url"' in bad.text
        r = await c.post("/settings/webhooks", {"url": "https://hooks.example.com/in",
                                                "events": ["call.completed"], "enabled": "on"})
        assert r.status_code == 200
        secret = re.search(r'id="new-secret" type="text" readonly class="mono wide-input" '
                           r'value="([^"]+)"', r.text)
        hook = re.search(r'href="/settings/webhooks/(wh_\w+)">Open', r.text)
        assert secret and hook
        page = (await c.get(f"/settings/webhooks/{hook[1]}")).text
        assert secret[1] not in page and "No deliveries yet" in page
        r = await c.post(f"/settings/webhooks/{hook[1]}/test")
        assert r.status_code == 303
        page = (await c.get(f"/settings/webhooks/{hook[1]}")).text
        assert "webhook.test" in page
        delivery = re.search(r"/deliveries/(whd_\w+)/retry", page)
        assert delivery
        r = await c.post(f"/settings/webhooks/{hook[1]}/deliveries/{delivery[1]}/retry")
        assert r.status_code == 303

        r = await c.post("/settings/dnc", {"phone": "12", "reason": "asked"})
        assert r.status_code == 400 and 'id="e-phone"' in r.text
        r = await c.post("/settings/dnc", {"phone": "(212) 555-0188", "reason": "asked"})
        assert r.status_code == 303
        again = await c.post("/settings/dnc", {"phone": "+12125550188"})
        assert again.status_code == 409 and "already on the do-not-call list" in again.text
        page = (await c.get("/settings/dnc?search=0188")).text
        assert "+12125550188" in page
        entry = re.search(r"/settings/dnc/(dnc_\w+)/remove", page)
        assert entry
        assert (await c.post(f"/settings/dnc/{entry[1]}/remove")).status_code == 303
        assert "The list is empty." in (await c.get("/settings/dnc")).text

        wide = await c.post("/settings/calling-hours", {"legal_hours_start": "06:00",
                                                        "legal_hours_end": "20:00"})
        assert wide.status_code == 400 and "never widen" in wide.text
        r = await c.post("/settings/calling-hours", {"legal_hours_start": "09:30",
                                                     "legal_hours_end": "19:00",
                                                     "max_concurrent_calls": "25"})
        assert r.status_code == 303
        page = (await c.get("/settings/calling-hours")).text
        assert 'value="09:30"' in page and 'value="25"' in page
