"""``POST /api/crm/contacts/import`` (SPEC 3): JSON, a ``text/csv`` body or a multipart file.

Row numbers in ``errors`` count data records from 1: the first record after a CSV header (or
the first item of a JSON ``contacts`` array) is row 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from callfleet.app import create_app
from callfleet.crm import importer, store
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact, make_settings

RESULT_KEYS = {"success", "imported", "updated", "skipped", "failed", "errors"}
OPTIONAL_RESULT_KEYS = {"errors_truncated"}


@pytest.fixture(scope="session")
async def small_batch_app(database: DbHandle) -> AsyncIterator[Any]:
    """The API with tiny import batches (3 rows) and at most 4 listed errors, so batch
    boundaries and the error cap are exercised by small files."""
    settings = make_settings(database.url, import_batch_size=3, import_max_errors=4)
    application = create_app(settings, db=database.db, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def small_client(small_batch_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=small_batch_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def check_result(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body = dict(r.json())
    assert RESULT_KEYS <= set(body) and set(body) - RESULT_KEYS <= OPTIONAL_RESULT_KEYS, body
    assert body["success"] is True
    for k in ("imported", "updated", "skipped", "failed"):
        assert isinstance(body[k], int) and not isinstance(body[k], bool)
    for e in body["errors"]:
        assert set(e) == {"row", "error"} and isinstance(e["row"], int), e
        assert isinstance(e["error"], str) and e["error"]
    return body


def counts(body: dict[str, Any]) -> tuple[int, int, int, int]:
    return body["imported"], body["updated"], body["skipped"], body["failed"]


def errors_by_row(body: dict[str, Any]) -> dict[int, str]:
    out = {e["row"]: e["error"] for e in body["errors"]}
    assert len(out) == len(body["errors"]), body["errors"]
    return out


async def import_csv(
    client: httpx.AsyncClient, t: TeamCtx, csv_text: str | bytes, *, via: str = "body",
    content_type: str = "text/csv", **params: str,
) -> httpx.Response:
    data = csv_text.encode() if isinstance(csv_text, str) else csv_text
    query = {"teamId": t.id, **params}
    if via == "multipart":
        return await client.post("/api/crm/contacts/import", params=query, headers=t.headers,
                                 files={"file": ("contacts.csv", data, "text/csv")})
    return await client.post("/api/crm/contacts/import", params=query, content=data,
                             headers={**t.headers, "Content-Type": content_type})


async def all_contacts(client: httpx.AsyncClient, t: TeamCtx, **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/api/crm/contacts", params={"teamId": t.id, "limit": 1000, **params},
                         headers=t.headers)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == len(r.json()["contacts"])
    return list(r.json()["contacts"])


async def by_name(client: httpx.AsyncClient, t: TeamCtx) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in await all_contacts(client, t):
        assert c["first_name"] not in out, f"duplicate contact {c['first_name']}"
        out[c["first_name"]] = c
    return out


# ---------------------------------------------------------------- formats and headers


async def test_json_import(client: httpx.AsyncClient, team: TeamCtx, company: str) -> None:
    r = await client.post("/api/crm/contacts/import", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "contacts": [
            {"firstName": "Sarah", "lastName": "Chen", "email": "sarah@example.com",
             "phone": "(415) 555-1234", "jobTitle": "VP", "leadStatus": "qualified",
             "timezone": "America/Los_Angeles", "doNotCall": False, "tags": ["vip", "west"],
             "customFields": {"interest": "outbound"}, "Favorite Color": "teal"},
            {"first_name": "Bob", "last_name": "Stone", "phone": "+44 20 7946 0000",
             "doNotCall": "yes", "notes": "call after 5"},
            {"First Name": "Cy", "Last Name": "Young", "Lead Score": 7},
            {"firstName": "Nameless"},
            "not an object",
            {"firstName": "Bad", "lastName": "Phone", "phone": "555"},
        ]})
    body = check_result(r)
    assert counts(body) == (3, 0, 0, 3)
    errs = errors_by_row(body)
    assert set(errs) == {4, 5, 6}
    assert "last_name" in errs[4] and "object" in errs[5] and "phone" in errs[6]

    got = await by_name(client, team)
    assert set(got) == {"Sarah", "Bob", "Cy"}
    s = got["Sarah"]
    assert s["company_id"] == company and s["team_id"] == team.id
    assert s["phone"] == "+14155551234" and s["email"] == "sarah@example.com"
    assert s["job_title"] == "VP" and s["lead_status"] == "qualified"
    assert s["timezone"] == "America/Los_Angeles" and s["tags"] == ["vip", "west"]
    assert s["custom_fields"] == {"interest": "outbound", "favorite_color": "teal"}
    assert got["Bob"]["phone"] == "+442079460000" and got["Bob"]["do_not_call"] is True
    assert got["Bob"]["notes"] == "call after 5" and got["Bob"]["lead_status"] == "new"
    assert got["Cy"]["custom_fields"] == {"lead_score": 7}

    # teamId may also come from the query string; the body's companyId is per import.
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id},
                          headers=team.headers,
                          json={"companyId": company, "contacts": [
                              {"firstName": "Dee", "lastName": "Q"}]})
    assert counts(check_result(r)) == (1, 0, 0, 0)


async def test_csv_header_variants_body_and_multipart(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    variants = {
        "title case": "First Name,Last Name,Email Address,Phone Number,Job Title,Lead Status,"
                      "Do Not Call,Tags,Budget (USD),Preferred Contact Method",
        "snake case": "first_name,last_name,email,phone,job_title,lead_status,do_not_call,"
                      "tags,budget_usd,preferred_contact_method",
        "camel case": "firstName,lastName,email,phone,jobTitle,leadStatus,doNotCall,tags,"
                      "budgetUsd,preferredContactMethod",
    }
    n = 0
    for label, header in variants.items():
        for via in ("body", "multipart"):
            n += 1
            row = (f"Ada{n},Lovelace,ada{n}@analytical.org,(202) 555-01{n:02d},Countess,"
                   f"Qualified,yes,\"math, history\",\"1,200\",phone")
            r = await import_csv(client, team, f"{header}\r\n{row}\r\n", via=via,
                                 companyId=company)
            assert counts(check_result(r)) == (1, 0, 0, 0), (label, via, r.json())
            got = (await all_contacts(client, team, search=f"ada{n}@"))
            assert len(got) == 1, (label, via)
            c = got[0]
            assert (c["first_name"], c["last_name"]) == (f"Ada{n}", "Lovelace"), (label, via)
            assert c["email"] == f"ada{n}@analytical.org"
            assert c["phone"] == f"+120255501{n:02d}"
            assert c["job_title"] == "Countess" and c["lead_status"] == "qualified"
            assert c["do_not_call"] is True and c["tags"] == ["math", "history"]
            assert c["preferred_contact_method"] == "phone"
            assert c["custom_fields"] == {"budget_usd": "1,200"}, (label, via)
            assert c["company_id"] == company


async def test_unknown_columns_become_custom_fields(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    csv_text = ("First Name,Last Name,Budget (USD),Lead Score,favoriteColor,Renewal Date,"
                "Empty Col\nGrace,Hopper,\"50,000\",9,navy,2025-01-31,\n")
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (1, 0, 0, 0)
    [c] = await all_contacts(client, team)
    # CSV values are text unless a custom field definition says otherwise; empty cells are
    # left out.
    assert c["custom_fields"] == {"budget_usd": "50,000", "lead_score": "9",
                                  "favorite_color": "navy", "renewal_date": "2025-01-31"}


async def test_full_name_column_bom_and_windows_1252(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    # Excel's "CSV UTF-8" starts with a BOM; the header must still be recognised.
    utf8 = "\ufeffName,E-mail\nMarie Curie,marie@example.com\nJosé Álvarez Ruiz,jose@example.com\n"
    body = check_result(await import_csv(client, team, utf8.encode("utf-8"), companyId=company))
    assert counts(body) == (2, 0, 0, 0)
    # A legacy Windows export: cp1252 bytes, no charset declared.
    cp = "First Name,Last Name\nFrançois,Müller\n".encode("cp1252")
    body = check_result(await import_csv(client, team, cp, companyId=company))
    assert counts(body) == (1, 0, 0, 0)
    got = await by_name(client, team)
    assert (got["Marie"]["last_name"], got["Marie"]["email"]) == ("Curie", "marie@example.com")
    assert got["José"]["last_name"] == "Álvarez Ruiz"
    assert got["François"]["last_name"] == "Müller"


# ---------------------------------------------------------------- companies


async def test_company_name_column_finds_or_creates(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx
) -> None:
    initech = await make_company(client, team, "Initech")
    theirs = await make_company(client, other_team, "Globex")  # never reused across teams
    csv_text = (
        "First Name,Last Name,Company Name\n"
        "A,One,INITECH\n"          # 1: existing company, case-insensitive
        "B,Two,New Co\n"           # 2: created
        "C,Three,new co\n"         # 3: the company created by row 2
        "D,Four,\n"                # 4: no company at all -> row error
        "E,Five,Globex\n"          # 5: a new Globex for this team
        "F,Six,  initech  \n"      # 6: trimmed, reused
    )
    body = check_result(await import_csv(client, team, csv_text))
    assert counts(body) == (5, 0, 0, 1)
    errs = errors_by_row(body)
    assert list(errs) == [4] and "company" in errs[4].lower()

    r = await client.get("/api/crm/companies", params={"teamId": team.id}, headers=team.headers)
    companies = {c["name"]: c for c in r.json()["companies"]}
    assert set(companies) == {"Initech", "New Co", "Globex"}
    assert companies["Initech"]["id"] == initech
    assert companies["Initech"]["contact_count"] == 2
    assert companies["New Co"]["contact_count"] == 2
    assert companies["Globex"]["id"] != theirs and companies["Globex"]["contact_count"] == 1
    got = await by_name(client, team)
    assert got["A"]["company_id"] == got["F"]["company_id"] == initech
    assert got["B"]["company_id"] == got["C"]["company_id"] == companies["New Co"]["id"]
    r = await client.get(f"/api/crm/companies/{theirs}", headers=other_team.headers)
    assert r.json()["company"]["contact_count"] == 0

    # With companyId as well: the column wins where it has a value, companyId fills the gaps.
    fallback = await make_company(client, team, "Fallback")
    body = check_result(await import_csv(
        client, team, "First Name,Last Name,Company\nG,Seven,New Co\nH,Eight,\n",
        companyId=fallback))
    assert counts(body) == (2, 0, 0, 0)
    got = await by_name(client, team)
    assert got["G"]["company_id"] == companies["New Co"]["id"]
    assert got["H"]["company_id"] == fallback


async def test_company_id_column_must_be_the_teams(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx, company: str
) -> None:
    theirs = await make_company(client, other_team, "Globex")
    csv_text = (f"First Name,Last Name,Company ID\nA,One,{company}\nB,Two,{theirs}\n"
                "C,Three,comp_nope\n")
    body = check_result(await import_csv(client, team, csv_text))
    assert counts(body) == (1, 0, 0, 2)
    assert set(errors_by_row(body)) == {2, 3}
    assert [c["first_name"] for c in await all_contacts(client, team)] == ["A"]
    assert await all_contacts(client, other_team) == []


async def test_rows_without_company_fail_one_by_one(
    client: httpx.AsyncClient, team: TeamCtx
) -> None:
    r = await client.post("/api/crm/contacts/import", headers=team.headers, json={
        "teamId": team.id, "contacts": [
            {"firstName": "A", "lastName": "One"},
            {"firstName": "B", "lastName": "Two", "companyName": "Hooli"},
            {"firstName": "C", "lastName": "Three"},
        ]})
    body = check_result(r)
    assert counts(body) == (1, 0, 0, 2)
    assert set(errors_by_row(body)) == {1, 3}
    assert [c["first_name"] for c in await all_contacts(client, team)] == ["B"]


# ---------------------------------------------------------------- duplicates


async def test_dedup_against_existing_contacts_update_and_skip(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    by_phone = await make_contact(client, team, company, firstName="Phone", lastName="Match",
                                  phone="+14155551234", email="phone@example.com",
                                  jobTitle="CTO", tags=["old"], customFields={"a": 1})
    by_email = await make_contact(client, team, company, firstName="Email", lastName="Match",
                                  email="Mixed.Case@Example.com")
    csv_text = (
        "First Name,Last Name,Phone,Email,Job Title,Tags,Color\n"
        "Phoebe,Match,(415) 555-1234,,,new,red\n"          # 1: phone match -> update
        "Emil,Match,,mixed.case@example.COM,Founder,,\n"   # 2: email match (any case)
        "Fresh,Person,202-555-0100,fresh@example.com,,,\n"  # 3: new
        # 4: phone of `by_phone`, email of `by_email`: the phone decides
        "Both,Match,+1 415 555 1234,mixed.case@example.com,,,\n"
    )
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (1, 3, 0, 0)
    assert body["errors"] == []

    contacts = {c["id"]: c for c in await all_contacts(client, team)}
    assert len(contacts) == 3
    p = contacts[by_phone["id"]]
    # The last duplicate row's non-empty values win; empty cells keep what was there;
    # tags and custom fields merge.
    assert (p["first_name"], p["last_name"]) == ("Both", "Match")
    assert p["phone"] == "+14155551234" and p["job_title"] == "CTO"
    assert p["email"] == "mixed.case@example.com"
    assert p["tags"] == ["old", "new"]
    assert p["custom_fields"] == {"a": 1, "color": "red"}
    assert p["created_at"] == by_phone["created_at"]
    e = contacts[by_email["id"]]
    assert (e["first_name"], e["job_title"]) == ("Emil", "Founder")
    # The search index follows the merged values.
    found = await all_contacts(client, team, search="phoebe")
    assert found == []
    found = await all_contacts(client, team, search="emil")
    assert [c["id"] for c in found] == [by_email["id"]]

    # onDuplicate=skip: duplicates are counted and left untouched.
    before = {c["id"]: c for c in await all_contacts(client, team)}
    csv_text = ("First Name,Last Name,Phone,Email\n"
                "Skip,Me,415.555.1234,\n"
                "Skip,Too,,FRESH@example.com\n"
                "Brand,New,,brand@example.com\n")
    body = check_result(await import_csv(client, team, csv_text, companyId=company,
                                         onDuplicate="skip"))
    assert counts(body) == (1, 0, 2, 0)
    after = {c["id"]: c for c in await all_contacts(client, team)}
    assert len(after) == 4
    assert all(after[k] == v for k, v in before.items())

    r = await import_csv(client, team, csv_text, companyId=company, onDuplicate="merge")
    assert r.status_code == 400 and "onDuplicate" in r.json()["details"]


async def test_dedup_within_the_file(client: httpx.AsyncClient, team: TeamCtx,
                                     company: str) -> None:
    csv_text = (
        "First Name,Last Name,Phone,Email,Notes\n"
        "Ann,One,415-555-0001,ann@example.com,first\n"
        "Ann,Two,(415) 555-0001,,\n"            # same phone as row 1
        "Ben,One,,ben@example.com,\n"
        "Ben,Two,202-555-0002,BEN@example.com,\n"  # same email as row 3, adds a phone
        "Ben,Three,+12025550002,,third\n"         # the phone row 4 gave to Ben
        "Cat,One,,,\n"                             # no phone or email: never a duplicate
        "Cat,One,,,\n"
    )
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (4, 3, 0, 0)
    contacts = await all_contacts(client, team)
    assert len(contacts) == 4
    by_phone = {c["phone"]: c for c in contacts if c["phone"]}
    ann = by_phone["+14155550001"]
    assert (ann["last_name"], ann["email"], ann["notes"]) == ("Two", "ann@example.com", "first")
    ben = by_phone["+12025550002"]
    assert (ben["last_name"], ben["email"], ben["notes"]) == (
        "Three", "BEN@example.com", "third")

    # Re-importing the same file: everything matches now (update), then skip.
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (2, 5, 0, 0)  # the two "Cat" rows have nothing to match on
    body = check_result(await import_csv(client, team, csv_text, companyId=company,
                                         onDuplicate="skip"))
    assert counts(body) == (2, 0, 5, 0)
    assert len(await all_contacts(client, team)) == 8


async def test_dedup_across_batches_and_existing_merge_targets(
    small_client: httpx.AsyncClient, team: TeamCtx
) -> None:
    company = await make_company(small_client, team)
    existing = await make_contact(small_client, team, company, firstName="Old",
                                  lastName="Timer", email="old@example.com")
    # Batches of 3 rows: duplicates span batch boundaries; row 2 gives the existing contact
    # a phone that rows 3 (same batch) and 7 (a later batch) must find.
    rows = [
        "New,A,415-555-1001,a@example.com",   # 1 new
        "Old,Timer,415-555-1002,old@example.com",  # 2 update existing by email, adds phone
        "Old,Again,415-555-1002,",            # 3 update existing by that phone
        "New,B,,b@example.com",               # 4 new (batch 2)
        "New,A2,(415) 555-1001,",             # 5 update row 1 (committed in batch 1)
        "New,B2,,B@EXAMPLE.COM",              # 6 update row 4 (same batch)
        "Old,Third,+14155551002,",            # 7 update existing (batch 3)
    ]
    csv_text = "First Name,Last Name,Phone,Email\n" + "\n".join(rows) + "\n"
    body = check_result(await import_csv(small_client, team, csv_text, companyId=company))
    assert counts(body) == (2, 5, 0, 0)
    contacts = await all_contacts(small_client, team)
    assert len(contacts) == 3
    old = next(c for c in contacts if c["id"] == existing["id"])
    assert old["last_name"] == "Third" and old["phone"] == "+14155551002"
    assert old["email"] == "old@example.com"
    names = sorted(c["last_name"] for c in contacts)
    assert names == ["A2", "B2", "Third"]


def _hold_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold back each batch's write, so later batches decide while its rows are uncommitted."""
    for name in ("insert", "update"):
        for cls in (store.PgRows, store.SqliteRows):
            original = getattr(cls, name)

            async def slow(self: Any, rows: Any, _original: Any = original) -> None:
                await asyncio.sleep(0.05)
                await _original(self, rows)

            monkeypatch.setattr(cls, name, slow)


async def test_batches_in_flight_decide_as_if_earlier_batches_had_committed(
    small_client: httpx.AsyncClient, team: TeamCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL several batches are written at once (importer.PG_BATCHES_IN_FLIGHT).
    The outcome must be the sequential one (on SQLite it is sequential anyway)."""
    _hold_writes(monkeypatch)
    company = await make_company(small_client, team)
    stored = await make_contact(small_client, team, company, firstName="Stored", lastName="C",
                                email="c@example.com", phone="+14155552000")
    other = await make_contact(small_client, team, company, firstName="Other", lastName="D",
                               phone="+14155552009")
    rows = [  # batches of 3
        "Stored,C1,415-555-2001,c@example.com",   # 1 stored C: phone 2000 -> 2001
        "New,E,415-555-2002,e@example.com",       # 2 new
        "Other,D1,415-555-2009,d@example.com",    # 3 stored D gets an email
        "Late,P0,415-555-2000,",                  # 4 C's old phone: no longer C's -> new
        "New,E2,,E@example.com",                  # 5 row 2's email (uncommitted) -> row 2
        "Other,D2,,d@example.com",                # 6 D's new email (uncommitted) -> D
        "Stored,C2,415-555-2001,",                # 7 C's new phone -> C
        "Late,P1,415-555-2000,",                  # 8 row 4's phone -> row 4
        "New,F,415-555-2003,",                    # 9 new
    ]
    csv_text = "First Name,Last Name,Phone,Email\n" + "\n".join(rows) + "\n"
    body = check_result(await import_csv(small_client, team, csv_text, companyId=company))
    assert counts(body) == (3, 6, 0, 0), body
    contacts = {c["id"]: c for c in await all_contacts(small_client, team)}
    assert len(contacts) == 5
    c, d = contacts[stored["id"]], contacts[other["id"]]
    assert (c["last_name"], c["phone"], c["email"]) == ("C2", "+14155552001", "c@example.com")
    assert (d["last_name"], d["email"]) == ("D2", "d@example.com")
    new = {x["last_name"]: x for x in contacts.values() if x["id"] not in (c["id"], d["id"])}
    assert set(new) == {"E2", "P1", "F"}
    assert new["E2"]["phone"] == "+14155552002" and new["E2"]["email"] == "E@example.com"
    assert new["P1"]["phone"] == "+14155552000"


async def test_a_batch_checks_every_batch_in_flight_not_only_the_one_before(
    small_client: httpx.AsyncClient, team: TeamCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three batches in flight: the third repeats a phone and an email first seen in the
    first while the second, unrelated, stands between them."""
    assert importer.PG_BATCHES_IN_FLIGHT >= 3
    _hold_writes(monkeypatch)
    company = await make_company(small_client, team)
    rows = [  # batches of 3
        "Ann,A,415-555-2101,", "Bob,B,,bob@example.com", "Cy,C,415-555-2103,",
        "Dee,D,415-555-2104,", "Eve,E,415-555-2105,", "Fay,F,,fay@example.com",
        "Ann,A2,415-555-2101,", "Bob,B2,,BOB@example.com", "Gus,G,415-555-2107,",
    ]
    csv_text = "First Name,Last Name,Phone,Email\n" + "\n".join(rows) + "\n"
    body = check_result(await import_csv(small_client, team, csv_text, companyId=company))
    assert counts(body) == (7, 2, 0, 0), body
    names = sorted(c["last_name"] for c in await all_contacts(small_client, team))
    assert names == ["A2", "B2", "C", "D", "E", "F", "G"]


# ---------------------------------------------------------------- row errors


async def test_row_errors_have_row_numbers_and_never_abort(
    small_client: httpx.AsyncClient, team: TeamCtx
) -> None:
    company = await make_company(small_client, team)
    csv_text = (
        "First Name,Last Name,Phone,Email,Timezone,Lead Status,Notes\n"
        "Ok,One,,,,,\n"                                  # 1
        ",Nofirst,,,,,\n"                                # 2 first name missing
        "Ok,Two,,,,,\"a note\nspanning two lines\"\n"    # 3 one record over two lines
        "Bad,Phone,12345,,,,\n"                          # 4
        "Bad,Email,,not-an-email,,,\n"                   # 5
        "Bad,Tz,,,Mars/Olympus,,\n"                      # 6
        "Bad,Status,,,,hot,\n"                           # 7
        "Too,Many,,,,,,extra\n"                          # 8
        "Ok,Three,,,,,\n"                                # 9
        "Nolast,,,,,,\n"                                 # 10
    )
    body = check_result(await import_csv(small_client, team, csv_text, companyId=company))
    assert body["imported"] == 3 and body["failed"] == 7
    assert body["updated"] == 0 and body["skipped"] == 0
    # The app under test lists at most 4 errors; the count covers all of them.
    assert len(body["errors"]) == 4 and body.get("errors_truncated") is True
    errs = errors_by_row(body)
    expected = {2: "first_name", 4: "phone", 5: "email", 6: "timezone", 7: "lead_status",
                8: "column", 10: "last_name"}
    assert set(errs) <= set(expected)
    for row, message in errs.items():
        assert expected[row] in message, (row, message)
    # The first errors are the ones listed.
    assert sorted(errs) == [2, 4, 5, 6]
    contacts = {c["last_name"]: c for c in await all_contacts(small_client, team)}
    assert set(contacts) == {"One", "Two", "Three"}
    assert contacts["Two"]["notes"] == "a note\nspanning two lines"


async def test_row_errors_listed_in_full(client: httpx.AsyncClient, team: TeamCtx,
                                         company: str) -> None:
    csv_text = (
        "First Name,Last Name,Phone,Email,Timezone,Lead Status,Do Not Call\n"
        "Ok,One,,,,,\n"
        ",Nofirst,,,,,\n"
        "Bad,Phone,12345,,,,\n"
        "Bad,Email,,not-an-email,,,\n"
        "Bad,Tz,,,Mars/Olympus,,\n"
        "Bad,Status,,,,hot,\n"
        "Bad,Dnc,,,,,maybe\n"
        "Ok,Two,,,,,\n"
    )
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (2, 0, 0, 6)
    assert body.get("errors_truncated", False) is False
    errs = errors_by_row(body)
    assert sorted(errs) == [2, 3, 4, 5, 6, 7]
    for row, word in {2: "first_name", 3: "phone", 4: "email", 5: "timezone",
                      6: "lead_status", 7: "do_not_call"}.items():
        assert word in errs[row], (row, errs[row])
    assert "12345" in errs[3]


async def test_import_request_errors(client: httpx.AsyncClient, team: TeamCtx,
                                     other_team: TeamCtx, company: str) -> None:
    theirs = await make_company(client, other_team)
    ok_csv = "First Name,Last Name\nA,B\n"
    cases = [
        ({"companyId": theirs}, ok_csv, 403),
        ({"companyId": "comp_01jzzzzzzzzzzzzzzzzzzzzzzz"}, ok_csv, 404),
        ({"companyId": "nope"}, ok_csv, 400),
        ({"companyId": company}, "", 400),                          # empty file
        ({"companyId": company}, "Email,Phone\na@b.co,\n", 400),     # no name columns
    ]
    for params, text, status in cases:
        r = await import_csv(client, team, text, **params)
        assert r.status_code == status, (params, text, r.text)
        assert r.json()["success"] is False
    r = await client.post("/api/crm/contacts/import", params={"teamId": other_team.id},
                          content=ok_csv, headers={**team.headers, "Content-Type": "text/csv"})
    assert r.status_code == 403
    r = await client.post("/api/crm/contacts/import", content=ok_csv,
                          headers={**team.headers, "Content-Type": "text/csv"})
    assert r.status_code == 400  # teamId missing
    r = await import_csv(client, team, ok_csv, content_type="application/xml",
                         companyId=company)
    assert r.status_code == 400
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id},
                          headers=team.headers,
                          files={"upload": ("c.csv", ok_csv.encode(), "text/csv")})
    assert r.status_code == 400  # the multipart field must be called "file"
    r = await client.post("/api/crm/contacts/import", headers=team.headers,
                          json={"teamId": other_team.id, "companyId": company,
                                "contacts": [{"firstName": "A", "lastName": "B"}]})
    assert r.status_code == 403
    r = await client.post("/api/crm/contacts/import", headers=team.headers,
                          json={"teamId": team.id, "contacts": "nope"})
    assert r.status_code == 400
    r = await client.post("/api/crm/contacts/import", params={"teamId": team.id},
                          content=ok_csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401
    assert await all_contacts(client, team) == []


# ---------------------------------------------------------------- custom field definitions


async def test_custom_field_definitions_coerce_imported_values(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    for key, ftype, extra in (("budget_usd", "number", {}), ("renewal", "date", {}),
                              ("decision_maker", "boolean", {}),
                              ("tier", "select", {"options": ["Gold", "Silver"]})):
        r = await client.post("/api/crm/custom-fields", headers=team.headers, json={
            "teamId": team.id, "key": key, "name": key.title(), "type": ftype,
            "entityType": "contact", **extra})
        assert r.status_code == 201, r.text

    csv_text = (
        "First Name,Last Name,Budget (USD),Renewal,Decision Maker,Tier,Note Field\n"
        "Good,Row,\"1,200\",2025-06-30,yes,gold,hello\n"   # 1
        "Bad,Budget,lots,,,,\n"                            # 2
        "Bad,Date,,30/06/2025,,,\n"                         # 3
        "Bad,Bool,,,perhaps,,\n"                            # 4
        "Bad,Tier,,,,Platinum,\n"                           # 5
        "Empty,Values,,,,,\n"                               # 6
    )
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (2, 0, 0, 4)
    errs = errors_by_row(body)
    assert sorted(errs) == [2, 3, 4, 5]
    for row, key in {2: "budget_usd", 3: "renewal", 4: "decision_maker", 5: "tier"}.items():
        assert key in errs[row], (row, errs[row])
    got = await by_name(client, team)
    assert got["Good"]["custom_fields"] == {
        "budget_usd": 1200, "renewal": "2025-06-30", "decision_maker": True, "tier": "Gold",
        "note_field": "hello"}
    assert isinstance(got["Good"]["custom_fields"]["budget_usd"], int)
    assert got["Empty"]["custom_fields"] == {}

    # JSON import: the same definitions apply, to flat keys and to customFields.
    r = await client.post("/api/crm/contacts/import", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "contacts": [
            {"firstName": "Json", "lastName": "One", "customFields": {"budget_usd": "3,500"}},
            {"firstName": "Json", "lastName": "Two", "budgetUsd": "2.5k"},
        ]})
    body = check_result(r)
    assert counts(body) == (1, 0, 0, 1)
    assert list(errors_by_row(body)) == [2] and "budget_usd" in body["errors"][0]["error"]
    one = await all_contacts(client, team, search="json")
    assert [c["custom_fields"] for c in one] == [{"budget_usd": 3500}]


# ---------------------------------------------------------------- a larger file


def _bulk_phone(i: int, fmt: str = "({a}) {x}-{n}") -> str:
    """A distinct valid US number per row: 212-555-0000 … 212-556-1999."""
    return fmt.format(a="212", x=555 + i // 10_000, n=f"{i % 10_000:04d}")


async def test_large_csv_import_in_batches_is_searchable(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    n = 12_000  # six batches of the default 2,000 rows
    dups = {i: i - 2500 for i in range(n) if i % 1000 == 999 and i >= 2500}
    broken = {i for i in range(n) if i not in dups and i % 1500 == 7}
    lines = ["First Name,Last Name,Phone,Email,Region"]
    for i in range(n):
        if i in dups:
            # The phone of a row 2,500 rows earlier (an earlier batch), spelled differently.
            j = dups[i]
            lines.append(f"Dup{i},Person{j},{_bulk_phone(j, '{a}.{x}.{n}')},,north")
        elif i in broken:
            lines.append(f"Broken{i},Person{i},555,,south")
        else:
            lines.append(f"Bulk{i},Person{i},{_bulk_phone(i)},bulk{i}@example.com,east")
    body = check_result(await import_csv(client, team, "\n".join(lines) + "\n",
                                         via="multipart", companyId=company))
    expected = n - len(dups) - len(broken)
    assert counts(body) == (expected, len(dups), 0, len(broken))
    assert sorted(errors_by_row(body)) == sorted(i + 1 for i in broken)
    assert len(dups) == 10 and len(broken) == 8

    r = await client.get("/api/crm/contacts", params={"teamId": team.id, "limit": 1},
                         headers=team.headers)
    assert r.json()["count"] == expected
    r = await client.get(f"/api/crm/companies/{company}", headers=team.headers)
    assert r.json()["company"]["contact_count"] == expected

    async def search(q: str) -> list[str]:
        return [c["first_name"] for c in await all_contacts(client, team, search=q)]

    assert await search("bulk11998@example.com") == ["Bulk11998"]
    assert await search("Bulk5432") == ["Bulk5432"]
    assert await search("(212) 555-5432") == ["Bulk5432"]
    assert await search("212 556 1998") == ["Bulk11998"]
    assert await search("Broken7") == []
    # Duplicates merged into the earlier row's contact: the later name wins, the email stays.
    [merged] = await all_contacts(client, team, search="bulk4499@example.com")
    assert (merged["first_name"], merged["last_name"]) == ("Dup6999", "Person4499")
    assert merged["phone"] == "+12125554499"
    assert merged["custom_fields"] == {"region": "north"}
    assert await search("Dup6999") == ["Dup6999"]


async def test_phone_match_beats_email_match_and_teams_never_mix(
    client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx, company: str
) -> None:
    stored = await make_contact(client, team, company, firstName="Stored", lastName="Email",
                                email="stored@example.com")
    theirs_company = await make_company(client, other_team)
    theirs = await make_contact(client, other_team, theirs_company, firstName="Their",
                                lastName="Contact", phone="+13125550100",
                                email="their@example.com")
    csv_text = (
        "First Name,Last Name,Phone,Email\n"
        "Row,One,312-555-0199,\n"                    # new
        # Its phone matches row 1 (not stored yet), its email the stored contact: the
        # phone decides, so row 1's contact is updated and the stored one is untouched.
        "Row,Two,(312) 555-0199,stored@example.com\n"
        # Another team's phone and email: a new contact of this team, theirs untouched.
        "Row,Three,312-555-0100,their@example.com\n"
    )
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (2, 1, 0, 0)
    contacts = {c["id"]: c for c in await all_contacts(client, team)}
    assert len(contacts) == 3
    assert contacts[stored["id"]] == stored
    row = next(c for c in contacts.values() if c["phone"] == "+13125550199")
    assert row["last_name"] == "Two" and row["email"] == "stored@example.com"
    r = await client.get(f"/api/crm/contacts/{theirs['id']}", headers=other_team.headers)
    detail = r.json()["contact"]
    assert {k: detail[k] for k in theirs} == theirs
    assert len(await all_contacts(client, other_team)) == 1


async def test_nul_characters_never_break_an_import(
    client: httpx.AsyncClient, team: TeamCtx, company: str
) -> None:
    # Legacy exports sometimes carry NUL bytes. PostgreSQL cannot store them: imported
    # cells drop them (as they drop other control characters), custom columns included.
    csv_text = ("First Name,Last Name,Email,Color\n"
                "Nu\x00ll,Byte,,re\x00d\n"
                "Nul,Email,a\x00b@example.com,\n"
                "Fine,Row,,blue\n")
    body = check_result(await import_csv(client, team, csv_text, companyId=company))
    assert counts(body) == (3, 0, 0, 0)
    got = await by_name(client, team)
    assert got["Null"]["custom_fields"] == {"color": "red"}
    assert got["Nul"]["email"] == "ab@example.com"
    assert got["Fine"]["custom_fields"] == {"color": "blue"}

    r = await client.post("/api/crm/contacts/import", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "contacts": [
            {"firstName": "J\u0000son", "lastName": "Nul",
             "customFields": {"k": "v\u0000", "nested": {"a\u0000": ["b\u0000"]}}},
            {"firstName": "Ok", "lastName": "Too"},
        ]})
    assert counts(check_result(r)) == (2, 0, 0, 0)
    [c] = await all_contacts(client, team, search="json")
    assert c["first_name"] == "Json"
    assert c["custom_fields"] == {"k": "v", "nested": {"a": ["b"]}}


def test_sqlite_bulk_records_encode_like_one_cell_at_a_time() -> None:
    """The import's row encoding (one timestamp conversion per batch) binds the same values
    as the per-cell encoding the other writes use."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 8, 7, 30, 1, 250, tzinfo=UTC)
    rows = [store.new_row("team_x", "comp_x", {"first_name": "Ann", "last_name": "Lee",
                                               "email": "Ann@X.io", "phone": "+14155550100",
                                               "do_not_call": True,
                                               "custom_fields": {"budget": 5},
                                               "tags": ["vip"], "state": "FL",
                                               "consent_kind": "prior_express",
                                               "consent_at": now}, now),
            store.new_row("team_x", "comp_x", {"first_name": "Bo", "last_name": "Li"},
                          now + timedelta(seconds=1))]
    got = store.SqliteRows._records(rows)
    want = [tuple(store.SqliteRows._value(r, c) for c in store.COLUMNS) for r in rows]
    assert got == want
    assert got[0][store.COLUMNS.index("do_not_call")] == 1  # sqlite3 binds True as 1
    assert got[0][store.COLUMNS.index("custom_fields")] == '{"budget":5}'
    stamps = slice(store.COLUMNS.index("created_at"), store.COLUMNS.index("updated_at") + 1)
    assert got[1][stamps] == ("2026-03-08 07:30:02.000250",) * 2
    assert got[0][store.COLUMNS.index("consent_at")] == "2026-03-08 07:30:01.000250"
    assert got[0][store.COLUMNS.index("state")] == "FL"
