"""/api/webhooks: CRUD, validation (400 naming the field), secrets shown once and encrypted
at rest, team checks."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from callfleet.teams.models import IdempotencyRecord
from callfleet.webhooks.models import WebhookEndpoint
from callfleet.webhooks.secrets import secret_box
from tests.conftest import DbHandle, TeamCtx
from tests.webhooks.helpers import create_webhook, new_url

SECRET = re.compile(r"^whsec_[A-Za-z0-9_-]{43}$")
MASKED = re.compile(r"^whsec_\*\*\*\*.{4}$")


async def test_create_shows_the_secret_once_then_masked(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    url = new_url()
    r = await client.post("/api/webhooks", headers=team.headers,
                          json={"teamId": team.id, "url": url, "description": "CRM sync"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True
    wh = body["webhook"]
    assert wh["id"].startswith("wh_") and wh["team_id"] == team.id
    assert wh["url"] == url and wh["events"] == ["*"] and wh["enabled"] is True
    assert wh["description"] == "CRM sync"
    secret = wh["secret"]
    assert SECRET.match(secret), secret
    for path in (f"/api/webhooks/{wh['id']}", "/api/webhooks"):
        r = await client.get(path, headers=team.headers)
        assert r.status_code == 200
        text = r.text
        assert secret not in text and secret[6:20] not in text
        shown = r.json()["webhook"] if "webhook" in r.json() else r.json()["webhooks"][0]
        assert MASKED.match(shown["secret"]) and shown["secret"].endswith(secret[-4:])
    # at rest: encrypted, and recoverable with the deployment key only
    async with database.db.session(write=False) as s:
        row = await s.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == wh["id"]))
    assert row is not None and secret not in row.secret_encrypted
    assert secret_box(app.state.settings).decrypt(row.secret_encrypted) == secret


async def test_create_with_idempotency_key_replays_and_keeps_the_secret_sealed(
    client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    """A repeat with the same Idempotency-Key replays the first response (secret included)
    and creates nothing; the stored response holds the secret only encrypted."""
    h = {**team.headers, "Idempotency-Key": "wh-create-1"}
    body = {"teamId": team.id, "url": new_url()}
    first = await client.post("/api/webhooks", headers=h, json=body)
    assert first.status_code == 201, first.text
    again = await client.post("/api/webhooks", headers=h, json=body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    r = await client.get("/api/webhooks", headers=team.headers)
    assert [w["id"] for w in r.json()["webhooks"]] == [first.json()["webhook"]["id"]]
    r = await client.post("/api/webhooks", headers=h, json={**body, "url": new_url()})
    assert r.status_code == 409
    secret = first.json()["webhook"]["secret"]
    async with database.db.session(write=False) as s:
        stored = await s.scalar(select(IdempotencyRecord.response_body).where(
            IdempotencyRecord.team_id == team.id, IdempotencyRecord.key == "wh-create-1"))
    assert stored is not None and stored.startswith("sealed:")
    assert secret not in stored and secret[6:20] not in stored


async def test_own_secret_events_filter_and_list_paging(
    client: httpx.AsyncClient, team: TeamCtx
) -> None:
    mine = "my-own-signing-secret-0123456789"
    r = await client.post("/api/webhooks", headers=team.headers, json={
        "accountSlug": team.slug, "url": new_url(), "secret": mine,
        "events": ["call.completed", "call.completed", "campaign.started"], "enabled": False})
    assert r.status_code == 201, r.text
    wh = r.json()["webhook"]
    assert wh["secret"] == mine
    assert wh["events"] == ["call.completed", "campaign.started"] and wh["enabled"] is False
    star = await create_webhook(client, team, events=["call.hangup", "*"])
    assert star["events"] == ["*"]
    r = await client.get("/api/webhooks", params={"limit": "1", "offset": "1"},
                         headers=team.headers)
    body = r.json()
    assert (body["count"], body["limit"], body["offset"]) == (2, 1, 1)
    assert [w["id"] for w in body["webhooks"]] == [star["id"]]


async def test_bad_input_is_a_400_naming_the_field(
    client: httpx.AsyncClient, team: TeamCtx
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "url"),
        ({"url": ""}, "url"),
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://exa mple.com/"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": 42}, "url"),
        ({"url": "https://e.com/" + "x" * 3000}, "url"),
        ({"url": new_url(), "events": []}, "events"),
        ({"url": new_url(), "events": ["call.exploded"]}, "events"),
        ({"url": new_url(), "events": "call.completed"}, "events"),
        ({"url": new_url(), "secret": "short"}, "secret"),
        ({"url": new_url(), "secret": "has spaces in the secret value"}, "secret"),
        ({"url": new_url(), "enabled": "maybe"}, "enabled"),
        ({"url": new_url(), "enabled": None}, "enabled"),
        ({"url": new_url(), "teamId": "nope"}, "teamId"),
    ]
    for body, name in cases:
        r = await client.post("/api/webhooks", json=body, headers=team.headers)
        assert r.status_code == 400, (body, r.status_code, r.text)
        out = r.json()
        assert out["success"] is False and name in out.get("details", {}), (body, out)


async def test_patch_and_delete(client: httpx.AsyncClient, team: TeamCtx) -> None:
    wh = await create_webhook(client, team)
    url2 = new_url()
    r = await client.patch(f"/api/webhooks/{wh['id']}", headers=team.headers,
                           json={"url": url2, "events": ["contact.updated"], "enabled": False,
                                 "description": "renamed"})
    assert r.status_code == 200, r.text
    out = r.json()["webhook"]
    assert (out["url"], out["events"], out["enabled"], out["description"]) == (
        url2, ["contact.updated"], False, "renamed")
    assert out["secret"] == wh["secret"][:6] + "****" + wh["secret"][-4:]
    new_secret = "rotated-secret-abcdefghijkl-WXYZ"
    r = await client.patch(f"/api/webhooks/{wh['id']}", headers=team.headers,
                           json={"secret": new_secret})
    assert r.status_code == 200 and r.json()["webhook"]["secret"].endswith("WXYZ")
    assert new_secret not in r.text
    for body, name in (({"url": None}, "url"), ({"url": "mailto:x@y.z"}, "url"),
                       ({"events": ["nope"]}, "events"), ({"secret": None}, "secret")):
        r = await client.patch(f"/api/webhooks/{wh['id']}", json=body, headers=team.headers)
        assert r.status_code == 400 and name in r.json()["details"], (body, r.text)
    r = await client.get(f"/api/webhooks/{wh['id']}", headers=team.headers)
    assert r.json()["webhook"]["url"] == url2  # the refused PATCHes changed nothing
    r = await client.delete(f"/api/webhooks/{wh['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True}
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"/api/webhooks/{wh['id']}", headers=team.headers,
                                 json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, r.text)
    for bad in ("cont_01jzzzzzzzzzzzzzzzzzzzzzzz", "wh_nope", "x" * 300):
        r = await client.get(f"/api/webhooks/{bad}", headers=team.headers)
        assert r.status_code == 404


async def test_another_team_gets_403(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx
) -> None:
    wh = await create_webhook(client, team)
    r = await client.post("/api/webhooks", headers=other_team.headers,
                          json={"teamId": team.id, "url": new_url()})
    assert r.status_code == 403
    r = await client.post("/api/webhooks", headers=other_team.headers,
                          json={"accountSlug": team.slug, "url": new_url()})
    assert r.status_code == 403
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/deliveries"),
                         ("POST", "/test")):
        r = await client.request(method, f"/api/webhooks/{wh['id']}{path}",
                                 headers=other_team.headers,
                                 json={"url": new_url()} if method == "PATCH" else None)
        assert r.status_code == 403, (method, path, r.text)
    r = await client.get("/api/webhooks", headers=other_team.headers)
    assert r.json()["count"] == 0
    r = await client.get("/api/webhooks", params={"teamId": team.id},
                         headers=other_team.headers)
    assert r.status_code == 403


async def test_delivery_list_filters_are_validated(
    client: httpx.AsyncClient, team: TeamCtx
) -> None:
    wh = await create_webhook(client, team)
    r = await client.get(f"/api/webhooks/{wh['id']}/deliveries", params={"status": "weird"},
                         headers=team.headers)
    assert r.status_code == 400 and "status" in r.json()["details"]
    r = await client.get(f"/api/webhooks/{wh['id']}/deliveries",
                         params={"status": "failed", "limit": "0"}, headers=team.headers)
    assert r.status_code == 400 and "limit" in r.json()["details"]
    r = await client.get(f"/api/webhooks/{wh['id']}/deliveries", headers=team.headers)
    assert r.status_code == 200
    assert r.json() == {"success": True, "deliveries": [], "count": 0, "limit": 50, "offset": 0}
    r = await client.post(
        f"/api/webhooks/{wh['id']}/deliveries/whd_01jzzzzzzzzzzzzzzzzzzzzzzz/retry",
        headers=team.headers)
    assert r.status_code == 404
