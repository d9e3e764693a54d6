"""Hostile and broken input: every case is a clear 400 (or the 403/404/413 SPEC 2 names) with
the error envelope naming the field, never a 500 or FastAPI's 422; and data that is accepted
can always be read back."""

from __future__ import annotations

import codecs
import json
from typing import Any

import httpx
import pytest

from tests.campaigns.helpers import setup_campaign
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact

UNKNOWN = {
    "company": "comp_01jzzzzzzzzzzzzzzzzzzzzzzz",
    "contact": "cont_01jzzzzzzzzzzzzzzzzzzzzzzz",
    "cf": "cf_01jzzzzzzzzzzzzzzzzzzzzzzzz",
    "key": "key_01jzzzzzzzzzzzzzzzzzzzzzzz",
}


def assert_400(r: httpx.Response, field: str) -> dict[str, Any]:
    """A 400 with the envelope whose ``details`` name ``field`` (or an item of it: ``tags.0``)."""
    assert r.status_code == 400, (field, r.status_code, r.text[:500])
    body = r.json()
    assert body["success"] is False, body
    assert isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in r.text
    named = [k for k in body.get("details", {}) if k == field or k.startswith(field + ".")]
    assert named, (field, body)
    return dict(body)


def contact_body(team: TeamCtx, company: str, **fields: Any) -> dict[str, Any]:
    return {"teamId": team.id, "companyId": company, "firstName": "Sarah", "lastName": "Chen",
            **fields}


def with_raw_custom_fields(team: TeamCtx, company: str, raw: str) -> str:
    """A contact body whose customFields is ``raw`` JSON text (NaN, deep nesting...)."""
    return json.dumps(contact_body(team, company))[:-1] + f', "customFields": {raw}}}'


async def contact_ids(client: httpx.AsyncClient, team: TeamCtx, **params: Any) -> list[str]:
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, **params},
                         headers=team.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["contacts"])
    return [c["id"] for c in body["contacts"]]


# ---------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize("raw", [
    b'{"teamId":', b'{"firstName": "A",}', b"{'firstName': 'A'}", b"\xff\xfe\x00garbage",
    bytes(range(256)), b"[1, 2", b'{"a": NaN',
])
async def test_malformed_json_is_400_naming_the_body(
    client: httpx.AsyncClient, team: TeamCtx, company: str, raw: bytes
) -> None:
    headers = {**team.headers, "Content-Type": "application/json"}
    targets = [
        ("POST", "/api/crm/contacts"), ("POST", "/api/crm/companies"),
        ("POST", "/api/crm/custom-fields"), ("POST", "/api/api-keys"),
        ("PATCH", f"/api/crm/companies/{company}"),
        ("POST", f"/api/crm/contacts/import?teamId={team.id}"),
    ]
    for method, path in targets:
        r = await client.request(method, path, content=raw, headers=headers)
        body = assert_400(r, "body")
        assert body["error"] == "Malformed JSON body", (path, body)


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"a string"', b"42", b"[{}]"])
async def test_json_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, team: TeamCtx, raw: bytes
) -> None:
    r = await client.post("/api/crm/contacts", content=raw,
                          headers={**team.headers, "Content-Type": "application/json"})
    assert_400(r, "body")


async def test_too_deeply_nested_json_is_400(client: httpx.AsyncClient, team: TeamCtx,
                                             company: str) -> None:
    for depth in (25, 900, 5000):
        nested = "[" * depth + "]" * depth
        raw = with_raw_custom_fields(team, company, f'{{"x": {nested}}}')
        r = await client.post("/api/crm/contacts", content=raw,
                              headers={**team.headers, "Content-Type": "application/json"})
        field = "customFields" if depth < 1000 else "body"
        assert_400(r, field)
    assert await contact_ids(client, team) == []


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml",
                                   "application/x-www-form-urlencoded", None])
async def test_unsupported_content_type_on_json_endpoints_is_400(
    client: httpx.AsyncClient, team: TeamCtx, company: str, ctype: str | None
) -> None:
    raw = json.dumps(contact_body(team, company)).encode()
    headers = dict(team.headers)
    if ctype:
        headers["Content-Type"] = ctype
    r = await client.post("/api/crm/contacts", content=raw, headers=headers)
    body = assert_400(r, "Content-Type")
    assert "application/json" in body["error"]
    assert await contact_ids(client, team) == []


async def test_body_over_the_size_cap_is_413_with_the_envelope(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    raw = json.dumps(contact_body(team, company, notes="x" * (11 << 20))).encode()
    r = await client.post("/api/crm/contacts", content=raw,
                          headers={**team.headers, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"success": False, "error": "Request body too large",
                        "details": {"body": "must be at most 10 MB"}}


# ---------------------------------------------------------------- wrong types, huge values

WRONG_TYPES = [
    ("/api/crm/contacts", {"firstName": 123}, "firstName"),
    ("/api/crm/contacts", {"lastName": True}, "lastName"),
    ("/api/crm/contacts", {"email": 5}, "email"),
    ("/api/crm/contacts", {"phone": 14155550123}, "phone"),
    ("/api/crm/contacts", {"doNotCall": "maybe"}, "doNotCall"),
    ("/api/crm/contacts", {"doNotCall": {}}, "doNotCall"),
    ("/api/crm/contacts", {"tags": {"vip": True}}, "tags"),
    ("/api/crm/contacts", {"tags": [1, 2]}, "tags"),
    ("/api/crm/contacts", {"customFields": ["a", "b"]}, "customFields"),
    ("/api/crm/contacts", {"customFields": "a=b"}, "customFields"),
    ("/api/crm/contacts", {"companyId": 17}, "companyId"),
    ("/api/crm/contacts", {"teamId": ["team"]}, "teamId"),
    ("/api/crm/companies", {"name": 5}, "name"),
    ("/api/crm/companies", {"customFields": [1]}, "customFields"),
    ("/api/crm/companies", {"country": 49}, "country"),
    ("/api/crm/custom-fields", {"options": "a,b"}, "options"),
    ("/api/crm/custom-fields", {"required": "sometimes"}, "required"),
    ("/api/crm/custom-fields", {"type": 5}, "type"),
    ("/api/api-keys", {"scopes": "read"}, "scopes"),
    ("/api/api-keys", {"name": 7}, "name"),
    ("/api/api-keys", {"expiresAt": "next tuesday"}, "expiresAt"),
]


async def test_wrong_types_are_400_naming_the_field(client: httpx.AsyncClient, team: TeamCtx,
                                                    company: str) -> None:
    bases = {
        "/api/crm/contacts": contact_body(team, company),
        "/api/crm/companies": {"teamId": team.id, "name": "Initech"},
        "/api/crm/custom-fields": {"teamId": team.id, "key": "k", "name": "K", "type": "select",
                                   "options": ["a"]},
        "/api/api-keys": {"name": "ci"},
    }
    for path, patch, field in WRONG_TYPES:
        r = await client.post(path, json={**bases[path], **patch}, headers=team.headers)
        assert_400(r, field)
    # nothing was created along the way
    assert await contact_ids(client, team) == []
    r = await client.get("/api/crm/custom-fields", params={"teamId": team.id},
                         headers=team.headers)
    assert r.json()["count"] == 0


async def test_huge_strings_are_400_naming_the_field(client: httpx.AsyncClient, team: TeamCtx,
                                                     company: str) -> None:
    mb = "x" * (1 << 20)
    for field in ("firstName", "lastName", "notes", "jobTitle", "email", "phone", "timezone"):
        r = await client.post("/api/crm/contacts", json=contact_body(team, company, **{field: mb}),
                              headers=team.headers)
        assert_400(r, field)
    r = await client.post("/api/crm/contacts", json=contact_body(team, company, tags=[mb]),
                          headers=team.headers)
    assert_400(r, "tags")
    r = await client.post("/api/crm/contacts",
                          json=contact_body(team, company, customFields={"bio": mb}),
                          headers=team.headers)
    assert_400(r, "customFields")
    r = await client.post("/api/crm/companies", json={"teamId": team.id, "name": mb},
                          headers=team.headers)
    assert_400(r, "name")
    c = await make_contact(client, team, company)
    r = await client.patch(f"/api/crm/contacts/{c['id']}", json={"firstName": mb},
                           headers=team.headers)
    assert_400(r, "firstName")
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.json()["contact"]["first_name"] == "Sarah"
    assert await contact_ids(client, team) == [c["id"]]


@pytest.mark.parametrize("value,message", [
    (2**70, "64 bits"), (-(2**64), "64 bits"), ("\ud800", "Unicode"),
])
async def test_custom_values_that_could_not_be_read_back_are_400(
    client: httpx.AsyncClient, team: TeamCtx, company: str, value: Any, message: str
) -> None:
    """A stored value every later read fails to serialise would brick the team's lists."""
    for raw in (
        json.dumps(contact_body(team, company, customFields={"v": value})),
        json.dumps(contact_body(team, company, customFields={"v": {"deep": [value]}})),
    ):
        r = await client.post("/api/crm/contacts", content=raw,
                              headers={**team.headers, "Content-Type": "application/json"})
        assert message in assert_400(r, "customFields")["error"]
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = with_raw_custom_fields(team, company, f'{{"v": {literal}}}')
        r = await client.post("/api/crm/contacts", content=raw,
                              headers={**team.headers, "Content-Type": "application/json"})
        assert "finite" in assert_400(r, "customFields")["error"]
    assert await contact_ids(client, team) == []


async def test_nul_characters_never_reach_the_database(client: httpx.AsyncClient,
                                                       team: TeamCtx, company: str) -> None:
    """PostgreSQL cannot store NUL: text fields lose it, emails with it are invalid."""
    r = await client.post("/api/crm/contacts", json=contact_body(
        team, company, firstName="Sa\x00rah", notes="a\x00b", tags=["v\x00ip"],
        customFields={"note": "x\x00y", "list": ["\x00"], "obj": {"k\x00": "v"}}),
        headers=team.headers)
    assert r.status_code == 201, r.text
    c = r.json()["contact"]
    assert c["first_name"] == "Sarah" and c["notes"] == "ab" and c["tags"] == ["vip"]
    assert c["custom_fields"] == {"note": "xy", "list": [""], "obj": {"k": "v"}}
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    detail = r.json()["contact"]
    assert {k: detail[k] for k in c} == c
    r = await client.post("/api/crm/contacts",
                          json=contact_body(team, company, email="sa\x00rah@example.com"),
                          headers=team.headers)
    assert_400(r, "email")
    r = await client.post("/api/api-keys", json={"name": "c\x00i"}, headers=team.headers)
    assert r.status_code == 201 and r.json()["api_key"]["name"] == "ci"
    r = await client.patch("/api/team", json={"name": "Ac\x00me"}, headers=team.headers)
    assert r.status_code == 200 and r.json()["team"]["name"] == "Acme", r.text
    r = await client.patch("/api/team", json={"name": "\x00"}, headers=team.headers)
    assert_400(r, "name")


# ---------------------------------------------------------------- phones and time zones

BAD_PHONES = ["12345", "abc", "+1 555", "+999 1234567", "☎️", "1" * 41, "+1 (415) 555-12345678",
              "415-555-CALL-ME-NOW", "+", "00000000000"]


async def test_invalid_phones_are_400(client: httpx.AsyncClient, team: TeamCtx,
                                      company: str) -> None:
    c = await make_contact(client, team, company, phone="+14155550100")
    for bad in BAD_PHONES:
        for field in ("phone", "phoneSecondary"):
            r = await client.post("/api/crm/contacts",
                                  json=contact_body(team, company, **{field: bad}),
                                  headers=team.headers)
            assert_400(r, field)
            r = await client.patch(f"/api/crm/contacts/{c['id']}", json={field: bad},
                                   headers=team.headers)
            assert_400(r, field)
        r = await client.post("/api/crm/companies",
                              json={"teamId": team.id, "name": "Co", "phone": bad},
                              headers=team.headers)
        assert_400(r, "phone")
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.json()["contact"]["phone"] == "+14155550100"
    assert await contact_ids(client, team) == [c["id"]]


BAD_ZONES = ["../../etc/passwd", "/etc/localtime", "/usr/share/zoneinfo/UTC", "Mars/Olympus",
             "America/../Europe/Berlin", "america/chicago", "UTC\x00", "Europe/Berlin/..",
             "zoneinfo", "+02:00", "EST5EDT/../../..", "%2e%2e%2f"]


async def test_invalid_time_zones_are_400(client: httpx.AsyncClient, team: TeamCtx,
                                          company: str) -> None:
    c = await make_contact(client, team, company, timezone="America/Chicago")
    for bad in BAD_ZONES:
        r = await client.post("/api/crm/contacts", json=contact_body(team, company, timezone=bad),
                              headers=team.headers)
        body = assert_400(r, "timezone")
        assert "IANA" in body["error"]
        r = await client.patch(f"/api/crm/contacts/{c['id']}", json={"timezone": bad},
                               headers=team.headers)
        assert_400(r, "timezone")
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.json()["contact"]["timezone"] == "America/Chicago"


# ---------------------------------------------------------------- ids


async def test_ids_in_the_body(client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx,
                               company: str) -> None:
    """SPEC 2: unknown id -> 404, wrong prefix or garbage in a body -> 400, another team's
    -> 403; each names companyId."""
    theirs = await make_company(client, other_team, "Theirs")
    c = await make_contact(client, team, company)
    cases = [(UNKNOWN["company"], 404), (UNKNOWN["contact"], 400), ("x", 400),
             ("comp_" + "U" * 26, 400), ("comp_../../etc", 400), (theirs, 403)]
    for bad, status in cases:
        r = await client.post("/api/crm/contacts", json=contact_body(team, bad),
                              headers=team.headers)
        assert r.status_code == status, (bad, r.text)
        assert r.json()["success"] is False
        if status != 403:
            assert "companyId" in r.json()["details"], (bad, r.text)
        r = await client.patch(f"/api/crm/contacts/{c['id']}", json={"companyId": bad},
                               headers=team.headers)
        assert r.status_code == status, (bad, r.text)
        r = await client.post("/api/crm/contacts/import", params={"teamId": team.id,
                                                                  "companyId": bad},
                              content=b"First Name,Last Name\nA,B\n",
                              headers={**team.headers, "Content-Type": "text/csv"})
        assert r.status_code == status, (bad, r.text)
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.json()["contact"]["company_id"] == company
    assert await contact_ids(client, team) == [c["id"]]
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "companyId": "nope"},
                         headers=team.headers)
    assert_400(r, "companyId")


async def test_teamid_that_is_not_a_team_id_is_400(client: httpx.AsyncClient,
                                                   team: TeamCtx, company: str) -> None:
    for bad in ("x", "team_", "' OR 1=1 --", "comp_01jzzzzzzzzzzzzzzzzzzzzzzz"):
        r = await client.post("/api/crm/contacts", json=contact_body(team, company, teamId=bad),
                              headers=team.headers)
        assert_400(r, "teamId")
        r = await client.get("/api/crm/contacts", params={"teamId": bad}, headers=team.headers)
        assert_400(r, "teamId")
    r = await client.get("/api/crm/contacts", headers=team.headers)
    assert_400(r, "teamId")


PATH_ID_ROUTES = [
    ("GET", "/api/crm/contacts/{}", "contact"), ("PATCH", "/api/crm/contacts/{}", "contact"),
    ("DELETE", "/api/crm/contacts/{}", "contact"), ("GET", "/api/crm/companies/{}", "company"),
    ("PATCH", "/api/crm/companies/{}", "company"), ("DELETE", "/api/crm/companies/{}", "company"),
    ("GET", "/api/crm/companies/{}/contacts", "company"),
    ("GET", "/api/crm/custom-fields/{}", "cf"), ("PATCH", "/api/crm/custom-fields/{}", "cf"),
    ("DELETE", "/api/crm/custom-fields/{}", "cf"), ("DELETE", "/api/api-keys/{}", "key"),
]


async def test_unknown_ids_in_the_path_are_404(client: httpx.AsyncClient, team: TeamCtx,
                                               company: str) -> None:
    c = await make_contact(client, team, company)
    for method, template, kind in PATH_ID_ROUTES:
        wrong_prefix = c["id"] if kind != "contact" else company
        for bad in (UNKNOWN[kind], wrong_prefix, "x", "x" * 5000, "😀", "' OR 1=1 --",
                    UNKNOWN[kind].upper(), UNKNOWN[kind] + "0"):
            kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
            r = await client.request(method, template.format(bad), headers=team.headers,
                                     **kwargs)
            assert r.status_code == 404, (method, template, bad, r.text)
            body = r.json()
            assert body["success"] is False and body["error"].endswith("not found"), body
    # nothing was deleted by the attempts
    r = await client.get(f"/api/crm/contacts/{c['id']}", headers=team.headers)
    assert r.status_code == 200


# ---------------------------------------------------------------- search and paging


async def test_search_with_sql_wildcards_control_characters_and_unicode(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    zoe = await make_contact(client, team, company, firstName="Zoë", lastName="O'Brien",
                             email="zoe_ob@example.com")
    emile = await make_contact(client, team, company, firstName="Émile", lastName="Zola 😀",
                               email="emile@example.com")
    pct = await make_contact(client, team, company, firstName="Ann", lastName="Hundred%",
                             email="ann@example.com")
    expected: dict[str, list[str]] = {
        "' OR 1=1 --": [], "' OR '1'='1": [], "%": [pct["id"]], "%%": [], "_": [zoe["id"]],
        "__": [], "an_@": [], "ann%com": [], "\\": [], '"': [], "*": [], "o'b": [zoe["id"]],
        "O'BRIEN": [zoe["id"]],
        "ZOË": [zoe["id"]], "zoë o'brien": [zoe["id"]], "😀": [emile["id"]],
        "zola 😀": [emile["id"]], "émile": [emile["id"]], "NEAR(a b)": [], "a OR b": [],
        "e_ob": [zoe["id"]], "ann@": [pct["id"]], "\t": [zoe["id"], emile["id"], pct["id"]],
    }
    everyone = {zoe["id"], emile["id"], pct["id"]}
    for query, ids in expected.items():
        found = await contact_ids(client, team, search=query)
        assert set(found) == set(ids), (query, found)
    assert set(await contact_ids(client, team)) == everyone
    for query in ("\x00", "a\x00b", "x" * 201):
        r = await client.get("/api/crm/contacts", params={"teamId": team.id, "search": query},
                             headers=team.headers)
        assert_400(r, "search")
        r = await client.get("/api/crm/companies", params={"teamId": team.id, "search": query},
                             headers=team.headers)
        assert_400(r, "search")
    for param in ("tag", "leadStatus"):
        r = await client.get("/api/crm/contacts", params={"teamId": team.id, param: "\x00"},
                             headers=team.headers)
        assert_400(r, param)
    assert await contact_ids(client, team, tag="' OR 1=1 --") == []


async def test_company_search_escapes_wildcards(client: httpx.AsyncClient,
                                                team: TeamCtx) -> None:
    under = await make_company(client, team, "Under_score Ltd")
    plain = await make_company(client, team, "Plain GmbH")

    async def names(**params: str) -> set[str]:
        r = await client.get("/api/crm/companies", params={"teamId": team.id, **params},
                             headers=team.headers)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["companies"]}

    assert await names(search="_") == {under}
    assert await names(search="%") == set()
    assert await names(search="' OR 1=1 --") == set()
    assert await names(search="gmbh") == {plain}
    assert await names(industry="' OR 1=1 --") == set()
    assert await names() == {under, plain}


@pytest.mark.parametrize("params,field", [
    ({"limit": "-1"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"),
    ({"limit": "1.5"}, "limit"), ({"limit": "1e3"}, "limit"), ({"limit": str(10**30)}, "limit"),
    ({"limit": "NaN"}, "limit"), ({"offset": "-5"}, "offset"), ({"offset": "x"}, "offset"),
    ({"offset": str(2**63)}, "offset"), ({"offset": str(-(10**30))}, "offset"),
])
async def test_bad_paging_is_400(client: httpx.AsyncClient, team: TeamCtx,
                                 params: dict[str, str], field: str) -> None:
    value = int(params[field]) if params[field].lstrip("-").isdigit() else None
    for path in ("/api/crm/contacts", "/api/crm/companies", "/api/crm/custom-fields",
                 "/api/api-keys"):
        r = await client.get(path, params={"teamId": team.id, **params}, headers=team.headers)
        error = assert_400(r, field)["error"]
        if value is not None and value > 0:  # the message says what is wrong
            assert error == f"{field} is too large", error
        elif value is not None:
            assert error.startswith(f"{field} must be at least"), error
        else:
            assert error == f"{field} must be an integer", error


async def test_large_paging_is_capped_or_empty(client: httpx.AsyncClient, team: TeamCtx,
                                               company: str) -> None:
    c = await make_contact(client, team, company)
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "limit": "5000"},
                         headers=team.headers)
    assert r.status_code == 200
    assert r.json()["limit"] == 1000 and [x["id"] for x in r.json()["contacts"]] == [c["id"]]
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "offset": str(2**62)},
                         headers=team.headers)
    assert r.status_code == 200
    assert r.json()["contacts"] == [] and r.json()["count"] == 1


# ---------------------------------------------------------------- other headers and values


async def test_idempotency_key_too_long_is_400(client: httpx.AsyncClient, team: TeamCtx,
                                               company: str) -> None:
    r = await client.post("/api/crm/companies", json={"teamId": team.id, "name": "Co"},
                          headers={**team.headers, "Idempotency-Key": "k" * 256})
    assert_400(r, "Idempotency-Key")
    r = await client.get("/api/crm/companies", params={"teamId": team.id},
                         headers=team.headers)
    assert r.json()["count"] == 1  # only the fixture's company


async def test_api_key_expiry_out_of_range_is_400(client: httpx.AsyncClient,
                                                  team: TeamCtx) -> None:
    for bad in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2001-01-01T00:00:00Z"):
        r = await client.post("/api/api-keys", json={"expiresAt": bad}, headers=team.headers)
        assert_400(r, "expiresAt")
    r = await client.post("/api/api-keys", json={"scopes": ["admin"]}, headers=team.headers)
    assert_400(r, "scopes")
    r = await client.get("/api/api-keys", headers=team.headers)
    assert r.json()["count"] == 1  # only the team's first key


# ---------------------------------------------------------------- imports


async def csv_import(client: httpx.AsyncClient, team: TeamCtx, data: bytes,
                     ctype: str = "text/csv", **params: str) -> httpx.Response:
    return await client.post("/api/crm/contacts/import", content=data,
                             params={"teamId": team.id, **params},
                             headers={**team.headers, "Content-Type": ctype})


async def contacts_by_name(client: httpx.AsyncClient, team: TeamCtx) -> dict[str, dict[str, Any]]:
    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "limit": 1000},
                         headers=team.headers)
    return {f"{c['first_name']} {c['last_name']}": c for c in r.json()["contacts"]}


async def test_csv_with_broken_rows(client: httpx.AsyncClient, team: TeamCtx,
                                    company: str) -> None:
    data = (
        b"First Name,Last Name,Phone,Email\n"
        b"Ada,Lovelace,+14155550100,ada@example.com\n"      # 1 ok
        b"Bob,Smith,+14155550101,bob@example.com,extra\n"   # 2 too many columns
        b",NoFirst,,\n"                                      # 3 missing first name
        b"NoLast,,,\n"                                       # 4 missing last name
        b"Cy,Bad,12345,\n"                                   # 5 bad phone
        b"Dee,Mail,,not-an-email\n"                          # 6 bad email
        b"\n"                                                # blank lines are not rows
        b"Eve,Ok,(202) 555-0187\n"                           # 7 short row is fine
        b"Ada,Lovelace,415.555.0100,\n"                      # 8 duplicate phone of row 1
    )
    r = await csv_import(client, team, data, companyId=company)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["imported"], body["updated"], body["skipped"], body["failed"]) == (2, 1, 0, 5)
    errors = {e["row"]: e["error"] for e in body["errors"]}
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert "5 columns" in errors[2] and "header has 4" in errors[2]
    assert "first_name" in errors[3] and "last_name" in errors[4]
    assert "phone" in errors[5] and "12345" in errors[5]
    assert "email" in errors[6]
    people = await contacts_by_name(client, team)
    assert set(people) == {"Ada Lovelace", "Eve Ok"}
    assert people["Eve Ok"]["phone"] == "+12025550187"
    assert people["Ada Lovelace"]["email"] == "ada@example.com"


@pytest.mark.parametrize("encoded,ctype", [
    ("First Name,Last Name,Notes\nJürgen,Müller,Preis 5€\n".encode("cp1252"), "text/csv"),
    ("First Name,Last Name,Notes\nJürgen,Müller,Preis 5 EUR\n".encode("latin-1"),
     "text/csv; charset=latin-1"),
    ("First Name,Last Name,Notes\nJürgen,Müller,Preis 5€\n".encode("utf-16"), "text/csv"),
    ("First Name,Last Name,Notes\nJürgen,Müller,Preis 5€\n".encode("utf-16-be"),
     "text/csv; charset=utf-16-be"),
    (codecs.BOM_UTF8 + "First Name,Last Name,Notes\nJürgen,Müller,Preis 5€\n".encode(),
     "text/csv"),
    ("First Name,Last Name,Notes\r\nJürgen,Müller,Preis 5€\r\n".encode(), "text/csv"),
])
async def test_csv_encodings(client: httpx.AsyncClient, team: TeamCtx, company: str,
                             encoded: bytes, ctype: str) -> None:
    r = await csv_import(client, team, encoded, ctype, companyId=company)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 1 and r.json()["failed"] == 0, r.text
    people = await contacts_by_name(client, team)
    assert list(people) == ["Jürgen Müller"]
    c = people["Jürgen Müller"]
    assert c["notes"] in ("Preis 5€", "Preis 5 EUR")
    assert c["custom_fields"] == {}  # the BOM did not turn a header into a custom field


async def test_csv_that_cannot_be_imported_is_400(client: httpx.AsyncClient, team: TeamCtx,
                                                  company: str) -> None:
    cases: list[tuple[bytes, str, str, str]] = [
        (b"", "text/csv", "file", "empty"),
        (b"\n\n", "text/csv", "file", "First Name"),
        (b"Email,Phone\na@example.com,+14155550100\n", "text/csv", "file", "First Name"),
        (b"First Name,Email\nA,a@example.com\n", "text/csv", "file", "Last Name"),
        (bytes(range(256)) * 8, "text/csv", "file", "First Name"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "text/csv", "file", "First Name"),
        (b"<contacts/>", "application/xml", "Content-Type", "Content-Type"),
        (b"First Name,Last Name\nA,B\n", "application/octet-stream", "Content-Type",
         "Content-Type"),
        (b"First Name,Last Name\nA,B\n", "text/csv; charset=klingon", "Content-Type", "charset"),
        (bytes(range(256)), "application/json", "body", "JSON"),
    ]
    for data, ctype, field, words in cases:
        r = await csv_import(client, team, data, ctype, companyId=company)
        body = assert_400(r, field)
        assert words in body["error"], (ctype, body)
    r = await client.post("/api/crm/contacts/import", content=b"First Name,Last Name\nA,B\n",
                          params={"companyId": company},
                          headers={**team.headers, "Content-Type": "text/csv"})
    assert_400(r, "teamId")
    r = await csv_import(client, team, b"First Name,Last Name\nA,B\n", onDuplicate="merge")
    assert_400(r, "onDuplicate")
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id},
                          files={"upload": ("a.csv", b"First Name,Last Name\nA,B\n", "text/csv")},
                          headers=team.headers)
    assert_400(r, "file")
    assert await contact_ids(client, team) == []


async def test_csv_header_only_and_rows_without_a_company(client: httpx.AsyncClient,
                                                          team: TeamCtx) -> None:
    r = await csv_import(client, team, b"First Name,Last Name\n")
    assert r.status_code == 200
    assert r.json() == {"success": True, "imported": 0, "updated": 0, "skipped": 0, "failed": 0,
                        "errors": [], "errors_truncated": False}
    r = await csv_import(client, team, b"First Name,Last Name\nA,B\nC,D\n")
    assert r.status_code == 200
    body = r.json()
    assert body["imported"] == 0 and body["failed"] == 2
    assert [e["row"] for e in body["errors"]] == [1, 2]
    assert all("company" in e["error"] for e in body["errors"])


async def test_json_import_with_broken_rows(client: httpx.AsyncClient, team: TeamCtx,
                                            company: str) -> None:
    rows: list[Any] = [
        {"firstName": "Ok", "lastName": "One", "phone": "+14155550123"},
        "not an object",
        {"firstName": "No"},
        {"firstName": "Bad", "lastName": "Phone", "phone": "12345"},
        {"firstName": 5, "lastName": ["x"]},
        {"firstName": "Bad", "lastName": "Custom", "customFields": "x"},
        {"firstName": "Bad", "lastName": "Zone", "timezone": "../../etc/passwd"},
        {"firstName": "Too", "lastName": "Deep", "score": json.loads("[" * 25 + "]" * 25)},
        None,
    ]
    r = await client.post("/api/crm/contacts/import",
                          json={"teamId": team.id, "companyId": company, "contacts": rows},
                          headers=team.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["imported"], body["failed"]) == (1, 8), body
    errors = {e["row"]: e["error"] for e in body["errors"]}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "last_name" in errors[3] and "phone" in errors[4] and "timezone" in errors[7]
    assert "nested" in errors[8]
    assert list(await contacts_by_name(client, team)) == ["Ok One"]
    r = await client.post("/api/crm/contacts/import",
                          json={"teamId": team.id, "companyId": company, "contacts": {"a": 1}},
                          headers=team.headers)
    assert_400(r, "contacts")
    r = await client.post("/api/crm/contacts/import", json={"teamId": team.id},
                          headers=team.headers)
    assert_400(r, "contacts")


async def test_campaign_update_with_bad_reference_ids(
    client: httpx.AsyncClient, database: DbHandle, team: TeamCtx, other_team: TeamCtx
) -> None:
    """PATCH/PUT of a campaign's assistantId/companyId: not an id -> 400, unknown -> 404,
    another team's -> 403; the campaign keeps its references."""
    cid, _ = await setup_campaign(client, database, team, [])
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=team.headers)
    original = r.json()["campaign"]
    theirs = await make_company(client, other_team, "Theirs")
    cases = [
        ({"assistantId": ""}, 400, "assistantId"),
        ({"assistantId": "asst_x"}, 400, "assistantId"),
        ({"assistantId": UNKNOWN["contact"]}, 400, "assistantId"),
        ({"assistantId": "asst_01jzzzzzzzzzzzzzzzzzzzzzzz"}, 404, "assistantId"),
        ({"companyId": ""}, 400, "companyId"),
        ({"companyId": UNKNOWN["company"]}, 404, "companyId"),
        ({"companyId": theirs}, 403, None),
    ]
    for method in ("PATCH", "PUT"):
        for body, status, field in cases:
            r = await client.request(method, f"/api/crm/campaigns/{cid}", json=body,
                                     headers=team.headers)
            assert r.status_code == status, (method, body, r.text)
            if field:
                assert field in r.json()["details"], (method, body, r.text)
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=team.headers)
    after = r.json()["campaign"]
    assert (after["assistant_id"], after["company_id"]) == (
        original["assistant_id"], original["company_id"])
