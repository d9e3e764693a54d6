"""Tenant isolation: team B's key against every endpoint, aimed at team A's ids and teamId.

Two teams each get companies, contacts, custom fields, API keys, an assistant with a number, a
campaign with an enrollment, a call and a do-not-call entry. Then every /api route of the app
(enumerated from the app, so a new endpoint without a row in ATTACKS fails the test) is called
with B's key and A's ids. Each attempt must be refused (403, or the status SPEC names) or
served from B's own data; no response may carry anything of A's that the request did not send;
B's list counts must be B's alone; and A's objects, re-read with A's key, must be unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from callfleet.app import create_app
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday
from tests.conftest import DbHandle, TeamCtx, make_settings, new_team


def api_routes(app: Any) -> set[tuple[str, str]]:
    """Every (METHOD, path) the app routes under /api, walking included routers."""
    found: set[tuple[str, str]] = set()

    def add(path: str, methods: Any) -> None:
        if path.startswith("/api"):
            found.update((m, path) for m in (methods or ()) if m not in ("HEAD", "OPTIONS"))

    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            for ctx in route.effective_route_contexts():
                add(ctx.path, getattr(ctx.original_route, "methods", None))
        elif hasattr(route, "methods"):
            add(route.path, route.methods)
        elif getattr(route, "path", "/").startswith("/api"):
            raise AssertionError(f"cannot enumerate the methods of route {route!r}")
    return found


# ---------------------------------------------------------------- the two teams


@dataclass
class Side:
    t: TeamCtx
    tag: str  # distinctive text in this team's data, so a leak is visible in any response
    company: str = ""
    company_name: str = ""
    contact: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    cf: str = ""
    cf_key: str = ""
    key: str = ""          # a spare API key
    auth_key: str = ""     # the key the team authenticates with
    assistant: str = ""
    number: str = ""
    number_e164: str = ""
    campaign: str = ""
    call: str = ""
    dnc: str = ""
    dnc_phone: str = ""
    webhook: str = ""
    webhook_url: str = ""
    delivery: str = ""
    secrets: set[str] = field(default_factory=set)


async def build_side(client: httpx.AsyncClient, database: DbHandle, app: Any, name: str,
                     area: str) -> Side:
    t = await new_team(database, name)
    side = Side(t, tag=f"{name}Secret")
    h = t.headers

    async def ok(r: httpx.Response, status: int = 201) -> dict[str, Any]:
        assert r.status_code == status, r.text
        return dict(r.json())

    side.company_name = f"{side.tag} Holdings"
    side.company = (await ok(await client.post(
        "/api/crm/companies", headers=h,
        json={"teamId": t.id, "name": side.company_name, "industry": f"{side.tag}Industry"})
    ))["company"]["id"]
    side.cf_key = f"{name.lower()}_secret_field"
    side.cf = (await ok(await client.post(
        "/api/crm/custom-fields", headers=h,
        json={"teamId": t.id, "key": side.cf_key, "name": f"{side.tag} field", "type": "text"})
    ))["custom_field"]["id"]
    side.contact_phone = f"+1{area}5550987"
    side.contact_email = f"{name.lower()}.person@{name.lower()}-secret.example"
    side.contact = (await ok(await client.post(
        "/api/crm/contacts", headers=h,
        json={"teamId": t.id, "companyId": side.company, "firstName": f"{side.tag}First",
              "lastName": f"{side.tag}Last", "phone": side.contact_phone,
              "email": side.contact_email, "tags": [f"{side.tag}Tag"],
              "customFields": {side.cf_key: f"{side.tag}Value"}})
    ))["contact"]["id"]
    keys = (await ok(await client.get("/api/api-keys", headers=h), 200))["api_keys"]
    side.auth_key = keys[0]["id"]
    side.key = (await ok(await client.post("/api/api-keys", headers=h,
                                           json={"name": f"{side.tag} spare"})))["api_key"]["id"]
    side.assistant, numbers = await assistant_with_numbers(database, t)
    side.number = numbers[0]
    side.campaign = (await ok(await client.post(
        "/api/crm/campaigns", headers=h,
        json={"teamId": t.id, "assistantId": side.assistant, "companyId": side.company,
              "fromNumberIds": [side.number], "name": f"{side.tag} Campaign",
              "callWindowStart": "00:00", "callWindowEnd": "23:59",
              "callWindowTimezone": "America/New_York"})
    ))["campaign"]["id"]
    await ok(await client.post(f"/api/crm/campaigns/{side.campaign}/contacts", headers=h,
                               json={"contactIds": [side.contact]}), 200)
    fresh_monday(app)  # inside legal calling hours for the single call
    call = await ok(await client.post(
        "/api/crm/calls", headers=h,
        json={"assistantId": side.assistant, "toNumber": side.contact_phone,
              "contactId": side.contact}))
    side.call = call["call"]["id"]
    side.number_e164 = call["call"]["from_number"]
    side.dnc_phone = f"+1{area}5550876"
    side.dnc = (await ok(await client.post("/api/dnc", headers=h,
                                           json={"phoneNumber": side.dnc_phone,
                                                 "reason": f"{side.tag} reason"})))["entry"]["id"]
    side.webhook_url = f"https://{name.lower()}-secret.example/hooks"
    side.webhook = (await ok(await client.post("/api/webhooks", headers=h, json={
        "url": side.webhook_url, "description": f"{side.tag} hook"})))["webhook"]["id"]
    side.delivery = (await ok(await client.post(f"/api/webhooks/{side.webhook}/test",
                                                headers=h), 200))["delivery"]["id"]
    side.secrets = {
        t.id, t.slug, side.tag, side.company, side.contact, side.cf, side.cf_key, side.key,
        side.auth_key, side.assistant, side.number, side.campaign, side.call, side.dnc,
        side.contact_email, side.contact_phone, side.dnc_phone, side.number_e164,
        side.webhook, side.webhook_url, side.delivery,
    }
    return side


# ---------------------------------------------------------------- the attack table

OWN = "own"  # 2xx, answered from B's own data
EMPTY = "empty"  # 200 and an empty list


@dataclass
class Try:
    url: str  # formatted with A= and B= (Side objects)
    expect: int | str
    json: Any = None
    params: dict[str, str] | None = None
    content: str | None = None
    ctype: str | None = None
    files: bool = False
    check: Any = None  # extra assertion on the response body, given (body, A, B)


def _created_in_b(body: dict[str, Any], A: Side, B: Side) -> None:
    obj = next(v for v in body.values() if isinstance(v, dict))
    assert obj["team_id"] == B.t.id


def _team_is_b(body: dict[str, Any], A: Side, B: Side) -> None:
    assert body["team"]["id"] == B.t.id


def _one_row_failed(body: dict[str, Any], A: Side, B: Side) -> None:
    assert (body["imported"], body["updated"], body["failed"]) == (0, 0, 1), body
    assert "company" in body["errors"][0]["error"]


def _new_in_b(body: dict[str, Any], A: Side, B: Side) -> None:
    """A's contact has the same phone and email: dedup must not reach across teams."""
    assert (body["imported"], body["updated"], body["skipped"], body["failed"]) == (1, 0, 0, 0)


CAMPAIGN_BODY = {"name": "pwned", "callWindowStart": "00:00", "callWindowEnd": "23:59",
                 "callWindowTimezone": "America/New_York"}

ATTACKS: dict[tuple[str, str], list[Try]] = {
    # ---- team and keys
    ("GET", "/api/team"): [Try("/api/team", OWN, check=_team_is_b)],
    ("PATCH", "/api/team"): [  # always the key's own team; a teamId in the body is not read
        Try("/api/team", OWN, json={"teamId": "{A.t.id}", "name": "Bravo Renamed",
                                    "settings": {"maxConcurrentCalls": 1}}, check=_team_is_b),
    ],
    ("GET", "/api/api-keys"): [Try("/api/api-keys", OWN, params={"teamId": "{A.t.id}"})],
    ("POST", "/api/api-keys"): [
        Try("/api/api-keys", OWN, json={"name": "b", "teamId": "{A.t.id}"}, check=_created_in_b),
    ],
    ("DELETE", "/api/api-keys/{key_id}"): [
        Try("/api/api-keys/{A.key}", 403), Try("/api/api-keys/{A.auth_key}", 403),
    ],
    # ---- companies
    ("POST", "/api/crm/companies"): [
        Try("/api/crm/companies", 403, json={"teamId": "{A.t.id}", "name": "pwned"}),
    ],
    ("GET", "/api/crm/companies"): [
        Try("/api/crm/companies", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/crm/companies", OWN, params={"teamId": "{B.t.id}"}),
        Try("/api/crm/companies", EMPTY, params={"teamId": "{B.t.id}", "search": "{A.tag}"}),
        Try("/api/crm/companies", EMPTY,
            params={"teamId": "{B.t.id}", "industry": "{A.tag}Industry"}),
    ],
    ("GET", "/api/crm/companies/{company_id}"): [Try("/api/crm/companies/{A.company}", 403)],
    ("PATCH", "/api/crm/companies/{company_id}"): [
        Try("/api/crm/companies/{A.company}", 403, json={"name": "pwned"}),
        Try("/api/crm/companies/{A.company}", 403, json={"teamId": "{B.t.id}", "name": "x"}),
        Try("/api/crm/companies/{B.company}", 403, json={"teamId": "{A.t.id}"}),
    ],
    ("DELETE", "/api/crm/companies/{company_id}"): [
        Try("/api/crm/companies/{A.company}", 403, params={"cascade": "true"}),
    ],
    ("GET", "/api/crm/companies/{company_id}/contacts"): [
        Try("/api/crm/companies/{A.company}/contacts", 403),
    ],
    # ---- contacts
    ("POST", "/api/crm/contacts"): [
        Try("/api/crm/contacts", 403, json={"teamId": "{A.t.id}", "companyId": "{A.company}",
                                            "firstName": "p", "lastName": "w"}),
        Try("/api/crm/contacts", 403, json={"teamId": "{B.t.id}", "companyId": "{A.company}",
                                            "firstName": "p", "lastName": "w"}),
    ],
    ("GET", "/api/crm/contacts"): [
        Try("/api/crm/contacts", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/crm/contacts", OWN, params={"teamId": "{B.t.id}"}),
        Try("/api/crm/contacts", EMPTY, params={"teamId": "{B.t.id}", "companyId": "{A.company}"}),
        Try("/api/crm/contacts", EMPTY, params={"teamId": "{B.t.id}", "search": "{A.tag}"}),
        Try("/api/crm/contacts", EMPTY,
            params={"teamId": "{B.t.id}", "search": "{A.contact_email}"}),
        Try("/api/crm/contacts", EMPTY, params={"teamId": "{B.t.id}", "tag": "{A.tag}Tag"}),
    ],
    ("POST", "/api/crm/contacts/import"): [
        Try("/api/crm/contacts/import", 403,
            json={"teamId": "{A.t.id}", "contacts": [{"firstName": "p", "lastName": "w"}]}),
        Try("/api/crm/contacts/import", 403, params={"teamId": "{A.t.id}"}, ctype="text/csv",
            content="First Name,Last Name,Company Name\np,w,x\n"),
        Try("/api/crm/contacts/import", 403, ctype="text/csv",
            params={"teamId": "{B.t.id}", "companyId": "{A.company}"},
            content="First Name,Last Name\np,w\n"),
        Try("/api/crm/contacts/import", 403, files=True,
            params={"teamId": "{B.t.id}", "companyId": "{A.company}"},
            content="First Name,Last Name\np,w\n"),
        Try("/api/crm/contacts/import", OWN, check=_one_row_failed,
            json={"teamId": "{B.t.id}", "contacts": [
                {"firstName": "p", "lastName": "w", "companyId": "{A.company}"}]}),
        Try("/api/crm/contacts/import", OWN, check=_new_in_b, ctype="text/csv",
            params={"teamId": "{B.t.id}", "onDuplicate": "update"},
            content="First Name,Last Name,Phone,Email,Company Name\n"
                    "Over,Written,{A.contact_phone},{A.contact_email},{A.company_name}\n"),
    ],
    ("GET", "/api/crm/contacts/{contact_id}"): [Try("/api/crm/contacts/{A.contact}", 403)],
    ("PATCH", "/api/crm/contacts/{contact_id}"): [
        Try("/api/crm/contacts/{A.contact}", 403, json={"firstName": "pwned"}),
        Try("/api/crm/contacts/{A.contact}", 403,
            json={"teamId": "{B.t.id}", "companyId": "{B.company}"}),
        Try("/api/crm/contacts/{B.contact}", 403, json={"companyId": "{A.company}"}),
    ],
    ("DELETE", "/api/crm/contacts/{contact_id}"): [Try("/api/crm/contacts/{A.contact}", 403)],
    # ---- custom fields
    ("POST", "/api/crm/custom-fields"): [
        Try("/api/crm/custom-fields", 403,
            json={"teamId": "{A.t.id}", "key": "pwned", "name": "p", "type": "text"}),
        # keys are unique per team: A's key is free in B (no 409 revealing A's fields)
        Try("/api/crm/custom-fields", OWN, check=_created_in_b,
            json={"teamId": "{B.t.id}", "key": "{A.cf_key}", "name": "mine", "type": "text"}),
    ],
    ("GET", "/api/crm/custom-fields"): [
        Try("/api/crm/custom-fields", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/crm/custom-fields", OWN, params={"teamId": "{B.t.id}"}),
    ],
    ("GET", "/api/crm/custom-fields/{cf_id}"): [Try("/api/crm/custom-fields/{A.cf}", 403)],
    ("PATCH", "/api/crm/custom-fields/{cf_id}"): [
        Try("/api/crm/custom-fields/{A.cf}", 403, json={"name": "pwned"}),
    ],
    ("DELETE", "/api/crm/custom-fields/{cf_id}"): [Try("/api/crm/custom-fields/{A.cf}", 403)],
    # ---- campaigns
    ("GET", "/api/crm/campaigns"): [
        Try("/api/crm/campaigns", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/crm/campaigns", OWN, params={"teamId": "{B.t.id}", "deleted": "include"}),
        Try("/api/crm/campaigns", EMPTY,
            params={"teamId": "{B.t.id}", "assistantId": "{A.assistant}"}),
    ],
    ("POST", "/api/crm/campaigns"): [
        Try("/api/crm/campaigns", 403, json={
            "teamId": "{A.t.id}", "assistantId": "{A.assistant}", "companyId": "{A.company}",
            "fromNumberIds": ["{A.number}"], **CAMPAIGN_BODY}),
        Try("/api/crm/campaigns", 403, json={
            "teamId": "{B.t.id}", "assistantId": "{A.assistant}", "companyId": "{B.company}",
            "fromNumberIds": ["{B.number}"], **CAMPAIGN_BODY}),
        Try("/api/crm/campaigns", 403, json={
            "teamId": "{B.t.id}", "assistantId": "{B.assistant}", "companyId": "{A.company}",
            "fromNumberIds": ["{B.number}"], **CAMPAIGN_BODY}),
        Try("/api/crm/campaigns", 403, json={
            "teamId": "{B.t.id}", "assistantId": "{B.assistant}", "companyId": "{B.company}",
            "fromNumberIds": ["{A.number}"], **CAMPAIGN_BODY}),
    ],
    ("GET", "/api/crm/campaigns/{campaign_id}"): [Try("/api/crm/campaigns/{A.campaign}", 403)],
    ("PATCH", "/api/crm/campaigns/{campaign_id}"): [
        Try("/api/crm/campaigns/{A.campaign}", 403, json={"name": "pwned"}),
        Try("/api/crm/campaigns/{A.campaign}", 403, json={"status": "cancelled"}),
    ],
    ("PUT", "/api/crm/campaigns/{campaign_id}"): [
        Try("/api/crm/campaigns/{A.campaign}", 403, json={"name": "pwned"}),
    ],
    ("DELETE", "/api/crm/campaigns/{campaign_id}"): [
        Try("/api/crm/campaigns/{A.campaign}", 403),
    ],
    ("POST", "/api/crm/campaigns/{campaign_id}/pause"): [
        Try("/api/crm/campaigns/{A.campaign}/pause", 403),
    ],
    ("POST", "/api/crm/campaigns/{campaign_id}/resume"): [
        Try("/api/crm/campaigns/{A.campaign}/resume", 403),
    ],
    ("POST", "/api/crm/campaigns/{campaign_id}/cancel"): [
        Try("/api/crm/campaigns/{A.campaign}/cancel", 403),
    ],
    ("POST", "/api/crm/campaigns/{campaign_id}/contacts"): [
        Try("/api/crm/campaigns/{A.campaign}/contacts", 403,
            json={"contactIds": ["{B.contact}"]}),
        # SPEC 3: contacts must be the team's; the unknown ids are a 404
        Try("/api/crm/campaigns/{B.campaign}/contacts", 404,
            json={"contactIds": ["{A.contact}"]}),
    ],
    ("GET", "/api/crm/campaigns/{campaign_id}/contacts"): [
        Try("/api/crm/campaigns/{A.campaign}/contacts", 403),
    ],
    ("POST", "/api/crm/campaigns/{campaign_id}/run"): [
        Try("/api/crm/campaigns/{A.campaign}/run", 403, json={"accountSlug": "{A.t.slug}"}),
        Try("/api/crm/campaigns/{A.campaign}/run", 403, json={"dryRun": True}),
        Try("/api/crm/campaigns/{B.campaign}/run", 403,
            json={"accountSlug": "{A.t.slug}", "dryRun": True}),
    ],
    ("GET", "/api/crm/campaigns/{campaign_id}/dashboard"): [
        Try("/api/crm/campaigns/{A.campaign}/dashboard", 403),
    ],
    # ---- calls
    ("GET", "/api/calls"): [
        Try("/api/calls", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/calls", OWN),
        Try("/api/calls", EMPTY, params={"campaignId": "{A.campaign}"}),
        Try("/api/calls", EMPTY, params={"contactId": "{A.contact}"}),
        Try("/api/calls", EMPTY, params={"assistantId": "{A.assistant}"}),
    ],
    ("GET", "/api/crm/calls"): [
        Try("/api/crm/calls", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/crm/calls", OWN),
        Try("/api/crm/calls", EMPTY, params={"campaignId": "{A.campaign}"}),
    ],
    ("GET", "/api/calls/{call_id}"): [Try("/api/calls/{A.call}", 403)],
    ("GET", "/api/calls/{call_id}/recording-url"): [
        Try("/api/calls/{A.call}/recording-url", 403)],
    ("POST", "/api/calls/{call_id}/analysis/revert"): [
        Try("/api/calls/{A.call}/analysis/revert", 403),
    ],
    ("POST", "/api/crm/calls"): [
        Try("/api/crm/calls", 403, json={"teamId": "{A.t.id}", "assistantId": "{B.assistant}",
                                         "toNumber": "{B.contact_phone}"}),
        Try("/api/crm/calls", 403, json={"assistantId": "{A.assistant}",
                                         "toNumber": "{B.contact_phone}"}),
        Try("/api/crm/calls", 403, json={"assistantId": "{B.assistant}",
                                         "toNumber": "{B.contact_phone}",
                                         "contactId": "{A.contact}"}),
        Try("/api/crm/calls", 400, json={"assistantId": "{B.assistant}",
                                         "toNumber": "{B.contact_phone}",
                                         "fromNumber": "{A.number_e164}"}),
    ],
    # ---- do-not-call list
    ("GET", "/api/dnc"): [
        Try("/api/dnc", OWN, params={"teamId": "{A.t.id}"}),
        Try("/api/dnc", EMPTY, params={"search": "{A.dnc_phone}"}),
    ],
    ("POST", "/api/dnc"): [
        # the same number on A's list is no conflict for B (and reveals nothing)
        Try("/api/dnc", OWN, json={"phoneNumber": "{A.dnc_phone}"}, check=_created_in_b),
    ],
    ("DELETE", "/api/dnc/{entry_id}"): [Try("/api/dnc/{A.dnc}", 403)],
    ("POST", "/api/dnc/import"): [
        Try("/api/dnc/import", OWN, ctype="text/csv", content="phone\n{A.dnc_phone}\n"),
    ],
    # ---- assistants
    ("POST", "/api/assistants"): [
        Try("/api/assistants", 403, json={"teamId": "{A.t.id}", "name": "pwned"}),
        Try("/api/assistants", 403, json={"accountSlug": "{A.t.slug}", "name": "pwned"}),
    ],
    ("GET", "/api/crm/outbound-assistants"): [
        Try("/api/crm/outbound-assistants", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/crm/outbound-assistants", OWN),
    ],
    ("GET", "/api/assistants"): [
        Try("/api/assistants", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/assistants", OWN, params={"teamId": "{B.t.id}"}),
    ],
    ("GET", "/api/assistants/{assistant_id}"): [Try("/api/assistants/{A.assistant}", 403)],
    ("PATCH", "/api/assistants/{assistant_id}"): [
        Try("/api/assistants/{A.assistant}", 403, json={"name": "pwned"}),
    ],
    ("DELETE", "/api/assistants/{assistant_id}"): [Try("/api/assistants/{A.assistant}", 403)],
    ("GET", "/api/assistants/{assistant_id}/phone-numbers"): [
        Try("/api/assistants/{A.assistant}/phone-numbers", 403),
    ],
    ("PUT", "/api/assistants/{assistant_id}/phone-numbers"): [
        Try("/api/assistants/{A.assistant}/phone-numbers", 403, json={"phoneNumberIds": []}),
        Try("/api/assistants/{B.assistant}/phone-numbers", 403,
            json={"phoneNumberIds": ["{A.number}"]}),
    ],
    ("POST", "/api/assistants/{assistant_id}/phone-numbers"): [
        Try("/api/assistants/{A.assistant}/phone-numbers", 403,
            json={"phoneNumberIds": ["{B.number}"]}),
        Try("/api/assistants/{B.assistant}/phone-numbers", 403,
            json={"phoneNumberIds": ["{A.number}"]}),
    ],
    # ---- phone numbers
    ("POST", "/api/phone-numbers/search"): [
        Try("/api/phone-numbers/search", OWN, json={"filters": {"countryCode": "US"}}),
    ],
    ("POST", "/api/phone-numbers/purchase"): [
        Try("/api/phone-numbers/purchase", 403,
            json={"teamId": "{A.t.id}", "phoneNumber": "+12125550000"}),
    ],
    ("POST", "/api/phone-numbers"): [
        Try("/api/phone-numbers", 403,
            json={"teamId": "{A.t.id}", "phoneNumber": "+12125550000", "provider": "sim"}),
    ],
    ("GET", "/api/phone-numbers"): [
        Try("/api/phone-numbers", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/phone-numbers", OWN, params={"teamId": "{B.t.id}"}),
        Try("/api/phone-numbers", EMPTY,
            params={"teamId": "{B.t.id}", "assistantId": "{A.assistant}"}),
    ],
    ("GET", "/api/phone-numbers/{phone_number_id}"): [Try("/api/phone-numbers/{A.number}", 403)],
    ("PATCH", "/api/phone-numbers/{phone_number_id}"): [
        Try("/api/phone-numbers/{A.number}", 403, json={"friendlyName": "pwned"}),
        Try("/api/phone-numbers/{A.number}", 403, json={"status": "suspended"}),
    ],
    ("DELETE", "/api/phone-numbers/{phone_number_id}"): [
        Try("/api/phone-numbers/{A.number}", 403),
    ],
    # ---- webhooks
    ("GET", "/api/webhooks"): [
        Try("/api/webhooks", 403, params={"teamId": "{A.t.id}"}),
        Try("/api/webhooks", 403, params={"accountSlug": "{A.t.slug}"}),
        Try("/api/webhooks", OWN),
    ],
    ("POST", "/api/webhooks"): [
        Try("/api/webhooks", 403, json={"teamId": "{A.t.id}", "url": "https://x.example/h"}),
        Try("/api/webhooks", 403,
            json={"accountSlug": "{A.t.slug}", "url": "https://x.example/h"}),
        Try("/api/webhooks", OWN, json={"url": "https://x.example/h"}, check=_created_in_b),
    ],
    ("GET", "/api/webhooks/{webhook_id}"): [Try("/api/webhooks/{A.webhook}", 403)],
    ("PATCH", "/api/webhooks/{webhook_id}"): [
        Try("/api/webhooks/{A.webhook}", 403, json={"url": "https://pwned.example/"}),
        Try("/api/webhooks/{A.webhook}", 403, json={"enabled": False}),
        Try("/api/webhooks/{B.webhook}", 403, json={"teamId": "{A.t.id}"}),
    ],
    ("DELETE", "/api/webhooks/{webhook_id}"): [Try("/api/webhooks/{A.webhook}", 403)],
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): [
        Try("/api/webhooks/{A.webhook}/deliveries", 403),
    ],
    ("POST", "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): [
        Try("/api/webhooks/{A.webhook}/deliveries/{A.delivery}/retry", 403),
        # A's delivery under B's own endpoint: not found there (nothing revealed)
        Try("/api/webhooks/{B.webhook}/deliveries/{A.delivery}/retry", 403),
    ],
    ("POST", "/api/webhooks/{webhook_id}/test"): [Try("/api/webhooks/{A.webhook}/test", 403)],
}

# What A reads (with A's key) before and after the attacks; kept to the routes that exist.
SNAPSHOT = [
    ("/api/team", "/api/team", None),
    ("/api/api-keys", "/api/api-keys", None),
    ("/api/crm/companies", "/api/crm/companies", {"teamId": "{A.t.id}"}),
    ("/api/crm/companies/{company_id}", "/api/crm/companies/{A.company}", None),
    ("/api/crm/companies/{company_id}/contacts", "/api/crm/companies/{A.company}/contacts", None),
    ("/api/crm/contacts", "/api/crm/contacts", {"teamId": "{A.t.id}"}),
    ("/api/crm/contacts/{contact_id}", "/api/crm/contacts/{A.contact}", None),
    ("/api/crm/custom-fields", "/api/crm/custom-fields", {"teamId": "{A.t.id}"}),
    ("/api/crm/custom-fields/{cf_id}", "/api/crm/custom-fields/{A.cf}", None),
    ("/api/crm/campaigns", "/api/crm/campaigns", {"teamId": "{A.t.id}", "deleted": "include"}),
    ("/api/crm/campaigns/{campaign_id}", "/api/crm/campaigns/{A.campaign}", None),
    ("/api/crm/campaigns/{campaign_id}/contacts", "/api/crm/campaigns/{A.campaign}/contacts",
     None),
    ("/api/crm/campaigns/{campaign_id}/dashboard", "/api/crm/campaigns/{A.campaign}/dashboard",
     None),
    ("/api/calls", "/api/calls", None),
    ("/api/calls/{call_id}", "/api/calls/{A.call}", None),
    ("/api/dnc", "/api/dnc", None),
    ("/api/assistants", "/api/assistants", {"teamId": "{A.t.id}"}),
    ("/api/assistants/{assistant_id}", "/api/assistants/{A.assistant}", None),
    ("/api/assistants/{assistant_id}/phone-numbers",
     "/api/assistants/{A.assistant}/phone-numbers", None),
    ("/api/phone-numbers", "/api/phone-numbers", {"teamId": "{A.t.id}"}),
    ("/api/phone-numbers/{phone_number_id}", "/api/phone-numbers/{A.number}", None),
    ("/api/webhooks", "/api/webhooks", None),
    ("/api/webhooks/{webhook_id}", "/api/webhooks/{A.webhook}", None),
    ("/api/webhooks/{webhook_id}/deliveries", "/api/webhooks/{A.webhook}/deliveries", None),
]


def fill(value: Any, A: Side, B: Side) -> Any:
    if isinstance(value, str):
        return value.format(A=A, B=B)
    if isinstance(value, list):
        return [fill(v, A, B) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, A, B) for k, v in value.items()}
    return value


async def send(client: httpx.AsyncClient, method: str, attempt: Try, A: Side,
               B: Side) -> tuple[httpx.Response, str]:
    url = fill(attempt.url, A, B)
    params = fill(attempt.params, A, B)
    kwargs: dict[str, Any] = {"params": params, "headers": dict(B.t.headers)}
    if attempt.files:
        kwargs["files"] = {"file": ("x.csv", fill(attempt.content, A, B).encode(), "text/csv")}
    elif attempt.content is not None:
        kwargs["content"] = fill(attempt.content, A, B).encode()
        kwargs["headers"]["Content-Type"] = attempt.ctype
    elif attempt.json is not None:
        kwargs["json"] = fill(attempt.json, A, B)
    content = fill(attempt.content, A, B) if attempt.content is not None else None
    sent = json.dumps([url, params, kwargs.get("json"), content])
    return await client.request(method, url, **kwargs), sent


def leaked(text: str, sent: str, A: Side) -> list[str]:
    """A's identifiers and data in a response that the request did not carry itself."""
    digits = {re.sub(r"\D", "", s) for s in (A.contact_phone, A.dnc_phone, A.number_e164)}
    found = [s for s in A.secrets if s and s in text and s not in sent]
    found += [d for d in digits if d and d in text and d not in re.sub(r"\D", "", sent)]
    return found


def list_items(body: dict[str, Any]) -> list[Any] | None:
    lists = [v for k, v in body.items() if isinstance(v, list) and k != "errors"]
    return lists[0] if len(lists) == 1 else None


async def snapshot(client: httpx.AsyncClient, routes: set[tuple[str, str]],
                   A: Side) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for template, url, params in SNAPSHOT:
        if ("GET", template) not in routes:
            continue
        full = fill(url, A, A)
        r = await client.get(full, params={**(fill(params, A, A) or {}), "limit": "1000"},
                             headers=A.t.headers)
        assert r.status_code == 200, (full, r.text)
        out[full] = r.json()
    return out


@pytest.fixture
async def teams(app: Any, client: httpx.AsyncClient,
                database: DbHandle) -> tuple[Side, Side]:
    a = await build_side(client, database, app, "Alpha", "212")
    b = await build_side(client, database, app, "Bravo", "312")
    return a, b


async def test_every_endpoint_refuses_another_teams_ids(
    app: Any, client: httpx.AsyncClient, teams: tuple[Side, Side]
) -> None:
    A, B = teams
    routes = api_routes(app)
    missing = sorted(routes - set(ATTACKS))
    assert not missing, f"routes without a row in ATTACKS: {missing}"
    assert ("GET", "/api/crm/contacts") in routes and len(routes) >= 20

    before = await snapshot(client, routes, A)
    assert len(before) >= 10
    problems: list[str] = []
    told = ""  # all B has sent so far: B's own data may now hold what it sent (A's cf key)
    for (method, template), attempts in ATTACKS.items():
        if (method, template) not in routes:
            continue  # a row for an endpoint this build does not have (yet)
        for attempt in attempts:
            r, sent = await send(client, method, attempt, A, B)
            told += sent
            label = f"{method} {fill(attempt.url, A, B)} {attempt.params or ''}"
            try:
                body = r.json()
            except ValueError:
                problems.append(f"{label}: not JSON: {r.status_code} {r.text[:200]}")
                continue
            if isinstance(attempt.expect, int):
                if r.status_code != attempt.expect or body.get("success") is not False:
                    problems.append(f"{label}: expected {attempt.expect}, got {r.status_code} "
                                    f"{r.text[:300]}")
            else:
                if not 200 <= r.status_code < 300 or body.get("success") is not True:
                    problems.append(f"{label}: expected 2xx, got {r.status_code} {r.text[:300]}")
                    continue
                items = list_items(body)
                if attempt.expect == EMPTY and (items != [] or body.get("count") != 0):
                    problems.append(f"{label}: expected an empty list, got {r.text[:300]}")
                if items is not None and "count" in body and body["count"] != len(items):
                    problems.append(f"{label}: count {body['count']} is not B's {len(items)}")
                if attempt.check is not None:
                    try:
                        attempt.check(body, A, B)
                    except AssertionError as exc:
                        problems.append(f"{label}: {exc!r} {r.text[:300]}")
            if leaks := leaked(r.text, told, A):
                problems.append(f"{label}: response shows A's {leaks}: {r.text[:300]}")
    assert not problems, "\n".join(problems)

    after = await snapshot(client, routes, A)
    for url in before:
        assert after[url] == before[url], url
    # A's keys still work, B's own data is B's
    r = await client.get("/api/team", headers=A.t.headers)
    assert r.status_code == 200 and r.json()["team"]["id"] == A.t.id


async def test_filters_do_not_reveal_whether_another_teams_ids_exist(
    client: httpx.AsyncClient, teams: tuple[Side, Side]
) -> None:
    """Filtering by A's ids answers exactly as filtering by ids that exist nowhere."""
    A, B = teams
    unknown = {"company": "comp_01jzzzzzzzzzzzzzzzzzzzzzzz",
               "campaign": "camp_01jzzzzzzzzzzzzzzzzzzzzzzz",
               "contact": "cont_01jzzzzzzzzzzzzzzzzzzzzzzz"}
    pairs = [
        ("/api/crm/contacts", {"teamId": B.t.id}, "companyId", A.company, unknown["company"]),
        ("/api/calls", {}, "campaignId", A.campaign, unknown["campaign"]),
        ("/api/calls", {}, "contactId", A.contact, unknown["contact"]),
    ]
    for path, base, name, theirs, nowhere in pairs:
        r1 = await client.get(path, params={**base, name: theirs}, headers=B.t.headers)
        r2 = await client.get(path, params={**base, name: nowhere}, headers=B.t.headers)
        assert (r1.status_code, r1.json()) == (r2.status_code, r2.json()), (path, name)
    # direct reads are a plain 403 that says nothing about the object
    for path in (f"/api/crm/contacts/{A.contact}", f"/api/crm/companies/{A.company}",
                 f"/api/crm/custom-fields/{A.cf}", f"/api/calls/{A.call}"):
        r = await client.get(path, headers=B.t.headers)
        assert r.status_code == 403
        assert r.json() == {"success": False,
                            "error": "Forbidden: this resource belongs to another team"}, path


async def test_idempotency_keys_are_per_team(client: httpx.AsyncClient, team: TeamCtx,
                                             other_team: TeamCtx) -> None:
    """The same Idempotency-Key string used by two teams: neither replays the other's
    response (nor gets a 409 for "another request"); each repeat replays its own."""
    key = "shared-idempotency-key-1"
    made: dict[str, str] = {}
    for t in (team, other_team):
        r = await client.post("/api/crm/companies", json={"teamId": t.id, "name": "Same Co"},
                              headers={**t.headers, "Idempotency-Key": key})
        assert r.status_code == 201, r.text
        assert "idempotent-replayed" not in r.headers
        company = r.json()["company"]
        assert company["team_id"] == t.id
        made[t.id] = company["id"]
    assert made[team.id] != made[other_team.id]
    for t in (other_team, team):
        r = await client.post("/api/crm/companies", json={"teamId": t.id, "name": "Same Co"},
                              headers={**t.headers, "Idempotency-Key": key})
        assert r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"
        assert r.json()["company"]["id"] == made[t.id]
        r = await client.get("/api/crm/companies", params={"teamId": t.id},
                             headers=t.headers)
        assert [c["id"] for c in r.json()["companies"]] == [made[t.id]]
    # byte-identical requests (no teamId in the body) from both teams
    for t in (team, other_team):
        r = await client.post("/api/dnc", json={"phoneNumber": "+12125550142"},
                              headers={**t.headers, "Idempotency-Key": key + "-dnc"})
        assert r.status_code == 201 and r.json()["entry"]["team_id"] == t.id, r.text
        r = await client.get("/api/dnc", headers=t.headers)
        assert [e["phone_number"] for e in r.json()["entries"]] == ["+12125550142"]


async def test_rate_limit_is_429_with_retry_after_per_key(
    client: httpx.AsyncClient, database: DbHandle, team: TeamCtx, other_team: TeamCtx
) -> None:
    limited = create_app(make_settings(database.url, rate_limit_per_minute=60,
                                       rate_limit_burst=3), db=database.db, run_worker=False)
    transport = httpx.ASGITransport(app=limited, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        statuses = [(await c.get("/api/team", headers=team.headers)).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 200]
        r = await c.get("/api/team", headers=team.headers)
        assert r.status_code == 429
        assert r.json() == {"success": False,
                            "error": "Too many requests: this API key exceeded its rate limit"}
        retry = r.headers.get("retry-after")
        assert retry is not None and retry.isdigit() and 1 <= int(retry) <= 60
        r = await c.post("/api/crm/companies", json={"teamId": team.id, "name": "Limited"},
                         headers=team.headers)
        assert r.status_code == 429 and r.headers.get("retry-after")
        # another team's key has its own bucket
        r = await c.get("/api/team", headers=other_team.headers)
        assert r.status_code == 200 and r.json()["team"]["id"] == other_team.id
        # requests without a valid key are 401, before any bucket
        assert (await c.get("/api/team")).status_code == 401
    r = await client.get("/api/crm/companies", params={"teamId": team.id}, headers=team.headers)
    assert r.json()["count"] == 0  # the limited write created nothing
