"""Property-based fuzzing of every documented operation with schemathesis.

Every operation in the app's OpenAPI document becomes its own test. Requests carry a valid
key of a real team, and in positive (schema-valid) cases the generated ``teamId``, ``companyId``
and path ids are often swapped for the team's real ones, and CSV import bodies for generated
CSV files, so requests get past the id checks and reach the services. Each response must:

- never be a 5xx;
- have a documented status code, content type and headers;
- match the documented response schema;
- for negative (schema-violating) cases, be a 4xx.

A separate app instance serves the session's test database: schemathesis drives the app
synchronously on its own event-loop thread, so the instance opens its own engines in its own
lifespan (the session's ``database`` handle is bound to pytest's loop). It runs on SQLite and,
when ``CALLFLEET_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from callfleet.app import create_app
from tests.api.test_tenancy import api_routes, build_side
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact, make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# A schema-violating request must be refused with one of these (SPEC 2; 413 for bodies over
# the size cap, which the fuzzer reaches with long strings).
REJECTIONS = [400, 401, 403, 404, 409, 413, 429]
# Examples per operation; raise it for a deeper local run (CALLFLEET_FUZZ_EXAMPLES=500).
MAX_EXAMPLES = int(os.environ.get("CALLFLEET_FUZZ_EXAMPLES", "25"))

# The document is the app's own, built without a database (nothing opens until a lifespan
# starts), so each operation is collected as its own test.
schema = schemathesis.openapi.from_dict(
    create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi(),
    config=schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
    ),
)

CSV_HEADER = ["First Name", "Last Name", "Phone", "Email", "Company Name", "Budget", "Lead Status"]


@dataclass
class World:
    team: TeamCtx
    ids: dict[str, list[str]]  # path parameter name -> real ids of the fuzz team
    phones: list[str]  # the contacts' phones


@pytest.fixture(scope="module")
async def world(app: Any, database: DbHandle) -> World:
    """A team with one of everything (as the tenancy test builds it) and a few more CRM rows.
    Only spare API keys are offered to the fuzzer, never the one it authenticates with."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        side = await build_side(c, database, app, "Fuzz", "646")
        team = side.t
        companies = [side.company] + [await make_company(c, team, f"Fuzz {i}") for i in range(2)]
        phones = [side.contact_phone] + [f"+1415555{1000 + i}" for i in range(2)]
        contacts = [side.contact] + [
            (await make_contact(c, team, companies[i + 1], phone=phones[i + 1], tags=["fuzz"],
                                customFields={"budget": i}))["id"]
            for i in range(2)
        ]
        cfs = [side.cf]
        for key, ftype, extra in (("budget", "number", {}),
                                  ("tier", "select", {"options": ["gold", "silver"]}),
                                  ("vip", "boolean", {})):
            r = await c.post("/api/crm/custom-fields", headers=team.headers,
                             json={"teamId": team.id, "key": key, "name": key, "type": ftype,
                                   **extra})
            assert r.status_code == 201, r.text
            cfs.append(r.json()["custom_field"]["id"])
        r = await c.post("/api/api-keys", headers=team.headers, json={"name": "spare"})
        assert r.status_code == 201, r.text
        keys = [side.key, r.json()["api_key"]["id"]]
        campaigns = [side.campaign]
        for i in range(3):  # more campaigns: a fuzzed DELETE or cancel ends one's useful life
            r = await c.post("/api/crm/campaigns", headers=team.headers, json={
                "teamId": team.id, "assistantId": side.assistant, "companyId": companies[i],
                "fromNumberIds": [side.number], "name": f"Fuzz campaign {i}",
                "callWindowStart": "09:00", "callWindowEnd": "17:00",
                "callWindowTimezone": "America/New_York"})
            assert r.status_code == 201, r.text
            campaigns.append(r.json()["campaign"]["id"])
    ids = {
        "company_id": companies, "contact_id": contacts, "cf_id": cfs, "key_id": keys,
        "assistant_id": [side.assistant], "phone_number_id": [side.number],
        "campaign_id": campaigns, "call_id": [side.call], "entry_id": [side.dnc],
    }
    return World(team, ids, phones)


@pytest.fixture(scope="module")
def fuzz_app(database: DbHandle, world: World) -> Iterator[Any]:
    application = create_app(make_settings(database.url, db_pool_size=5), run_worker=False)
    yield application
    # End the instance's lifespan (disposing its engines) before the database fixture's
    # teardown drops the PostgreSQL database.
    schemathesis_asgi.shutdown_lifespans()


def _csv_body(data: st.DataObject) -> str:
    cell = st.text(max_size=30)
    phone = st.one_of(cell, st.sampled_from(["+14155550123", "(202) 555-0187", "12345"]))
    rows = data.draw(st.lists(
        st.tuples(cell, cell, phone, cell, st.sampled_from(["", "Fuzz 0", "Fuzz New"]), cell,
                  st.sampled_from(["", "new", "qualified", "hot"])),
        max_size=8,
    ))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return out.getvalue()


def _fixups(world: World) -> dict[str, st.SearchStrategy[Any]]:
    """Valid values for fields the services check beyond the document's types, so "fixed"
    positive cases get past validation and exercise the writes."""
    ids = world.ids
    return {
        "phone": st.sampled_from(["+14155550123", "(202) 555-0187", "+44 20 7946 0000", None]),
        "phoneSecondary": st.sampled_from(["+14155550999", "", None]),
        "phoneNumber": st.sampled_from(["+12125550142", "(646) 555-0143"]),
        "toNumber": st.sampled_from(world.phones),
        "timezone": st.sampled_from(["America/Chicago", "Europe/Berlin", None]),
        "callWindowTimezone": st.sampled_from(["America/New_York", "Europe/Berlin"]),
        "callWindowStart": st.sampled_from(["00:00", "09:00", "08:30:00"]),
        "callWindowEnd": st.sampled_from(["23:59", "17:00"]),
        "callWindowDays": st.sampled_from([["mon", "tue"], ["sat"]]),
        "country": st.sampled_from(["US", "de", None]),
        "email": st.sampled_from(["sarah@example.com", "A.B@Example.ORG", None]),
        "leadStatus": st.sampled_from(["new", "Qualified", "do-not-contact"]),
        "type": st.sampled_from(["text", "number", "date", "select", "boolean"]),
        "entityType": st.sampled_from(["contact", "company"]),
        "key": st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
        "scopes": st.sampled_from([["read"], ["read", "write"], []]),
        "expiresAt": st.sampled_from(["2099-01-01T00:00:00Z", None]),
        "companyId": st.sampled_from(ids["company_id"]),
        "contactId": st.sampled_from(ids["contact_id"]),
        "contactIds": st.lists(st.sampled_from(ids["contact_id"]), min_size=1, max_size=3),
        "assistantId": st.sampled_from(ids["assistant_id"]),
        "campaignId": st.sampled_from(ids["campaign_id"]),
        "fromNumberIds": st.just(ids["phone_number_id"]),
        "phoneNumberIds": st.just(ids["phone_number_id"]),
    }


REQUIRED_TEXT = ("name", "firstName", "lastName")


def _adjust(case: Any, data: st.DataObject, world: World) -> None:
    """Positive cases only (negative ones must stay schema-violating): often use the team's
    real ids, and often make the body valid for the services so writes succeed."""
    if case.meta is None or case.meta.generation.mode.is_negative:
        return
    for name, real in world.ids.items():
        if name in case.path_parameters and data.draw(st.booleans()):
            case.path_parameters[name] = data.draw(st.sampled_from(real))
    if not data.draw(st.booleans()):
        return
    fixups = _fixups(world)
    case.query["teamId"] = world.team.id
    if "accountSlug" in case.query:
        case.query["accountSlug"] = world.team.slug
    for key in ("companyId", "contactId", "assistantId", "campaignId"):
        if key in case.query:
            case.query[key] = data.draw(fixups[key])
    if isinstance(case.body, dict):
        case.body["teamId"] = world.team.id
        if "accountSlug" in case.body:
            case.body["accountSlug"] = world.team.slug
        if case.path.endswith("/contacts") and case.method.upper() == "POST":
            case.body.setdefault("companyId", None)
        for key, strategy in fixups.items():
            if key in case.body:
                case.body[key] = data.draw(strategy)
        for key in REQUIRED_TEXT:
            if key in case.body or case.method.upper() == "POST":
                case.body[key] = data.draw(st.text(min_size=1, max_size=40).filter(str.strip))
    if case.media_type == "text/csv":
        case.body = _csv_body(data)


@schema.given(data=st.data())
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(
    case: Any, data: st.DataObject, world: World, fuzz_app: Any
) -> None:
    _adjust(case, data, world)
    checks = CHECKS
    if case.media_type and case.media_type.startswith("text/"):
        # A "schema-violating" text body (say the array []) goes on the wire as the text "[]",
        # a valid text body: the server cannot tell, so the negative check does not apply.
        checks = [c for c in CHECKS if c is not negative_data_rejection]
    case.call_and_validate(headers=world.team.headers, checks=checks, app=fuzz_app)


def test_document_covers_every_api_route() -> None:
    """The fuzzed document lists every /api route of the app (nothing escapes the fuzzer)."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    documented = {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        for method in ops
    }
    routed = api_routes(app)
    assert ("GET", "/api/crm/contacts") in routed
    assert routed <= documented, routed - documented


def test_document_promises_the_error_envelope_not_422() -> None:
    """SPEC 2: body validation is a 400 with the envelope; the document must not advertise
    FastAPI's 422, and every /api operation documents 400, 401, 413 (the body cap applies to
    every route) and 429 as the envelope."""
    doc = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
            if path.startswith("/api"):
                for code in ("400", "401", "413", "429"):
                    ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, code)
    assert "HTTPValidationError" not in doc.get("components", {}).get("schemas", {})
