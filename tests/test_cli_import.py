"""``callfleet import``: a contact CSV through the real command line, on SQLite and (with
``CALLFLEET_TEST_POSTGRES_URL``) PostgreSQL: the API import's rules, a summary, and the
rejected rows copied as they were into a rejects file with an ``error`` column."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from callfleet.crm.models import Company, Contact
from callfleet.db.session import open_database
from tests.e2e.test_server import Deployment, deployment  # noqa: F401 - fixture
from tests.test_cli import cli_env, one_json, run_cli

ROWS = [
    ["First Name", "Last Name", "Phone", "Email", "Company", "Plan"],
    ["Ada", "Lovelace", "+14155550100", "ada@example.com", "Initech", "gold"],
    ["Bob", "", "+14155550101", "", "Initech", ""],                      # 2: no last name
    ["José", "Núñez", "(415) 555-0102", "", "Globex", "silver"],         # latin-1 below
    ["Eve", "Ok", "not a phone", "", "Initech", ""],                     # 4: bad phone
    ["Ada", "Lovelace", "+14155550100", "ada@new.example.com", "Initech", "platinum"],
    ["Cy", "Extra", "+14155550103", "", "Initech", "", "unexpected"],    # 6: extra column
    ["Dee", "Fine", "+14155550104", "dee@example.com", "Globex", "bronze"],
]
REJECTED = {2: "last_name", 4: "phone", 6: "columns"}


@pytest.fixture
def env(deployment: Deployment) -> dict[str, str]:  # noqa: F811
    """The CLI's environment: an empty data dir (SQLite) or a fresh PostgreSQL database."""
    return deployment.env


def db_url(env: dict[str, str]) -> str:
    return env.get("CALLFLEET_DATABASE_URL") or \
        f"sqlite+aiosqlite:///{env['CALLFLEET_DATA_DIR']}/callfleet.db"


async def contacts(env: dict[str, str], team_id: str) -> dict[str, Contact]:
    db = open_database(db_url(env), null_pool=True)
    try:
        async with db.session(write=False) as s:
            rows = await s.scalars(select(Contact).where(Contact.team_id == team_id))
            return {f"{c.first_name} {c.last_name}": c for c in rows}
    finally:
        await db.dispose()


async def test_import_a_file_with_bad_rows(tmp_path: Path, env: dict[str, str]) -> None:
    team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "Acme", "--json").stdout)
    source = tmp_path / "contacts.csv"
    text = io.StringIO()
    csv.writer(text).writerows(ROWS)
    source.write_bytes(text.getvalue().encode("latin-1"))  # a Windows export
    rejects = tmp_path / "rejects.csv"

    proc = run_cli(tmp_path, env, "import", str(source), "--team", "acme",
                   "--rejects", str(rejects), "--json")
    summary = json.loads(proc.stdout)
    assert summary == {"imported": 3, "updated": 1, "skipped": 0, "failed": 3,
                       "rejects": str(rejects), "rejects_written": 3}
    assert "importing" in proc.stderr and "rows" in proc.stderr  # the progress bar

    got = list(csv.reader(io.StringIO(rejects.read_text(encoding="utf-8"), newline="")))
    assert got[0] == [*ROWS[0], "error"]
    assert [r[:-1] for r in got[1:]] == [ROWS[n] for n in sorted(REJECTED)]
    for row, (n, word) in zip(got[1:], sorted(REJECTED.items())):
        assert word in row[-1], (n, row)

    people = await contacts(env, team["team_id"])
    assert sorted(people) == ["Ada Lovelace", "Dee Fine", "José Núñez"]
    ada = people["Ada Lovelace"]  # row 5 updated row 1 (same phone), as the API would
    assert ada.email == "ada@new.example.com" and ada.custom_fields == {"plan": "platinum"}
    assert people["José Núñez"].phone == "+14155550102"
    db = open_database(db_url(env), null_pool=True)
    try:
        async with db.session(write=False) as s:
            names = set(await s.scalars(select(Company.name).where(
                Company.team_id == team["team_id"])))
    finally:
        await db.dispose()
    assert {"Initech", "Globex"} <= names

    # Again with --on-duplicate skip: every good row now matches a contact.
    proc = run_cli(tmp_path, env, "import", str(source), "--team", team["team_id"],
                   "--on-duplicate", "skip")
    assert proc.stdout.strip() == "imported 0, updated 0, skipped 4, failed 3"
    assert "row 2: last_name" in proc.stderr and "--rejects" in proc.stderr


def test_import_refuses_what_the_api_refuses(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")  # the checks are the same on both databases
    run_cli(tmp_path, env, "team", "create", "--name", "Acme", "--json")
    good = tmp_path / "ok.csv"
    good.write_text("First Name,Last Name\nAda,Lovelace\n")
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("Email,Phone\na@example.com,+14155550100\n")
    for args, message in [
        ((str(good), "--team", "nope"), "No team"),
        ((str(good), "--team", "acme", "--company", "comp_01jzzzzzzzzzzzzzzzzzzzzzzz"),
         "Company not found"),
        ((str(nameless), "--team", "acme"), "First Name and Last Name"),
        ((str(good), "--team", "acme", "--on-duplicate", "merge"), "skip or update"),
        ((str(tmp_path / "missing.csv"), "--team", "acme"), "does not exist"),
    ]:
        proc = run_cli(tmp_path, env, "import", *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert proc.stdout == ""
