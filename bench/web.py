#!/usr/bin/env python
"""Web app benchmark: server time of every main page with a large team, and the number of
SQL statements each page issues (a page must not issue a query per row).

    .venv/bin/python bench/web.py                    # 1,000,000 contacts, 100,000 calls
    .venv/bin/python bench/web.py --contacts 20000 --calls 2000   # smoke run

SQLite in a temporary data directory. The team's contacts, one campaign's enrollments and
calls are bulk-loaded (bench/crm.py's rows); then a real ``callfleet serve --no-worker``
answers the pages to a signed-in client over loopback (``--requests`` per page after
warm-up): the latency is measured at the client, so it bounds the server time from above.
The statement counts come from the same app run in process against the same database, with
a listener on the engines counting each page's statements. Prints a table and writes JSON
to bench/results/. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crm import (  # noqa: E402 - after the path set-up
    _sqlite_analyze,
    _sqlite_bulk,
    contact_record,
    free_port,
    gen_people,
    machine_info,
    pct,
)

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P95_MS = 150.0
MAX_STATEMENTS = 15  # a page's statements; a query per row would show as 50+
PASSWORD = "bench passphrase"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cli(env: dict[str, str], cwd: Path, *args: str, stdin: str = "") -> str:
    proc = subprocess.run([sys.executable, "-m", "callfleet.cli", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=600, check=True)
    return proc.stdout


async def api_setup(base: str, key: str, team_id: str) -> dict[str, str]:
    """A company, an assistant with a bought number, and a campaign, through the API."""
    h = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=h, timeout=60) as c:
        company = (await c.post("/api/crm/companies", json={"teamId": team_id,
                                                            "name": "Bench Co"})).json()
        assistant = (await c.post("/api/assistants", json={
            "teamId": team_id, "name": "Bench setter", "templateId": "outbound-setter"})).json()
        offers = (await c.post("/api/phone-numbers/search",
                               json={"filters": {"countryCode": "US"}})).json()["numbers"]
        number = (await c.post("/api/phone-numbers/purchase", json={
            "teamId": team_id, "phoneNumber": offers[0]["phoneNumber"]})).json()
        aid, nid = assistant["assistant"]["id"], number["phone_number"]["id"]
        await c.put(f"/api/assistants/{aid}/phone-numbers", json={"phoneNumberIds": [nid]})
        campaign = (await c.post("/api/crm/campaigns", json={
            "teamId": team_id, "assistantId": aid, "companyId": company["company"]["id"],
            "fromNumberIds": [nid], "name": "Bench campaign"})).json()
    return {"company": company["company"]["id"], "assistant": aid, "number": nid,
            "campaign": campaign["campaign"]["id"]}


def load(db_path: Path, team_id: str, refs: dict[str, str], contacts: int, calls: int
         ) -> dict[str, str]:
    """Bulk-load the contacts, then enroll the first ``calls`` of them in the campaign with
    one ended call each."""
    log(f"loading {contacts:,} contacts")
    now = datetime.now(UTC)
    rows = (contact_record(p, team_id=team_id, company_id=refs["company"], now=now,
                           sqlite=True, import_shape=False)
            for p in gen_people(seed=1, n=contacts))
    _sqlite_bulk(db_path, rows, rebuild_fts=True)
    from callfleet import ids
    from callfleet.compliance.duties import greeting  # as the call model stores it

    con = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    con.execute("PRAGMA busy_timeout=60000")
    picked = [r[0] for r in con.execute(
        "SELECT id, phone FROM contacts WHERE team_id = ? AND phone IS NOT NULL "
        "ORDER BY id LIMIT ?", (team_id, calls))]
    phone_of = dict(con.execute(
        "SELECT id, phone FROM contacts WHERE team_id = ? AND phone IS NOT NULL "
        "ORDER BY id LIMIT ?", (team_id, calls)).fetchall())
    log(f"loading {len(picked):,} enrollments and calls")
    outcomes = ["answered", "no_answer", "voicemail", "busy", "answered", "declined"]
    ts = lambda d: (now - d).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    con.execute("BEGIN IMMEDIATE")
    enroll, call_rows = [], []
    for i, cid in enumerate(picked):
        eid, call_id = ids.new_id("cc"), ids.new_id("call")
        outcome = outcomes[i % len(outcomes)]
        done = outcome == "answered" or i % 3 == 0
        started = ts(timedelta(minutes=(len(picked) - i) // 20 + 5))
        enroll.append((eid, team_id, refs["campaign"], cid, "completed" if done else "pending",
                       0, 1, "{}", int(outcome == "answered"), None, outcome, call_id,
                       refs["number"], None, started, started))
        transcript = [{"role": "assistant", "text": "Hi, this is Ava.", "time": 0},
                      {"role": "user", "text": "Tell me more.", "time": 2.1}]
        messages = json.dumps(transcript)
        analysis = json.dumps({"summary": "Spoke briefly.", "extracted_data": {}})
        call_rows.append((call_id, team_id, "outbound", refs["campaign"], eid, cid,
                          refs["assistant"], "+16465550100", phone_of[cid], "ended", outcome,
                          "completed", 1, started, started, started, 30.0, "sim", messages,
                          greeting(transcript), analysis, "{}", started, started))
    con.executemany(
        "INSERT INTO campaign_contacts (id, team_id, campaign_id, contact_id, status, "
        "priority, attempts, outcome_counts, answered, next_attempt_at, last_outcome, "
        "last_call_id, from_number_id, reason, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", enroll)
    con.executemany(
        "INSERT INTO calls (id, team_id, direction, campaign_id, enrollment_id, contact_id, "
        "assistant_id, from_number, to_number, status, outcome, ended_reason, attempt, "
        "started_at, answered_at, ended_at, duration_seconds, carrier, messages, greeting, "
        "analysis, metadata, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
        "?,?,?,?,?,?,?)", call_rows)
    con.execute("COMMIT")
    con.close()
    _sqlite_analyze(db_path)
    return {"contact": picked[len(picked) // 2], "call": call_rows[len(call_rows) // 2][0]}


def pages(refs: dict[str, str], sample: dict[str, str], cf: str) -> list[tuple[str, str]]:
    return [
        ("campaigns", "/campaigns"),
        ("campaign dashboard", f"/campaigns/{refs['campaign']}"),
        ("contacts", "/contacts"),
        ("contacts search", "/contacts?search=smith"),
        ("contacts filter", "/contacts?leadStatus=qualified&hasPhone=true"),
        ("contacts page 2,000", "/contacts?offset=100000"),
        ("contact", f"/contacts/{sample['contact']}"),
        ("companies", "/companies"),
        ("company", f"/companies/{refs['company']}"),
        ("calls", "/calls"),
        ("calls answered", "/calls?outcome=answered"),
        ("call", f"/calls/{sample['call']}"),
        ("assistants", "/assistants"),
        ("assistant", f"/assistants/{refs['assistant']}"),
        ("phone numbers", "/phone-numbers"),
        ("settings: members", "/settings/members"),
        ("settings: custom fields", "/settings/custom-fields"),
        ("settings: api keys", "/settings/api-keys"),
        ("contacts import", "/contacts/import"),
    ]


async def sign_in(c: httpx.AsyncClient, email: str) -> None:
    page = await c.get("/login")
    r = await c.post("/login", data={"email": email, "password": PASSWORD,
                                     "csrf_token": CSRF.search(page.text)[1]})  # type: ignore[index]
    assert r.status_code == 303, r.text


async def time_pages(base: str, email: str, targets: list[tuple[str, str]], n: int
                     ) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        await sign_in(c, email)
        for name, url in targets:
            for _ in range(3):  # warm-up: caches, first-use imports
                r = await c.get(url)
                assert r.status_code == 200, (url, r.status_code, r.text[:300])
            lat = []
            for _ in range(n):
                t = time.perf_counter()
                r = await c.get(url)
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, url
            out[name] = lat
            log(f"{name}: p95 {pct(lat, 0.95) * 1000:.1f} ms")
    return out


async def count_statements(data_dir: Path, email: str, targets: list[tuple[str, str]]
                           ) -> dict[str, int]:
    """Each page's SQL statements, from the app in process on the same database."""
    from sqlalchemy import event

    from callfleet.app import create_app
    from callfleet.config import Settings

    app = create_app(Settings(data_dir=data_dir, rate_limit_per_minute=0), run_worker=False)
    counts: dict[str, int] = {}
    seen = [0]

    def count(*_: Any) -> None:
        seen[0] += 1

    async with app.router.lifespan_context(app):
        db = app.state.db
        for engine in {db.write_engine, db.read_engine}:
            event.listen(engine.sync_engine, "before_cursor_execute", count)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            await sign_in(c, email)
            for name, url in targets:
                await c.get(url)
                seen[0] = 0
                r = await c.get(url)
                assert r.status_code == 200, url
                counts[name] = seen[0]
    return counts


def render(result: dict[str, Any]) -> str:
    lines = [f"web pages, SQLite, {result['contacts']:,} contacts and {result['calls']:,} calls "
             f"in the team, {result['requests']} requests per page "
             f"(load before: {result['load_before']})",
             "", "| page | p50 ms | p95 ms | statements | p95 <= 150 ms |",
             "|---|---:|---:|---:|---|"]
    for name, row in result["pages"].items():
        lines.append(f"| {name} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
                     f"{row['statements']} | {'yes' if row['p95_ms'] <= TARGET_P95_MS else 'NO'} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="callfleet-web-bench-"))
    data = tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
    env.update(CALLFLEET_DATA_DIR=str(data), CALLFLEET_RATE_LIMIT_PER_MINUTE="0",
               PYTHONUNBUFFERED="1")
    team = json.loads(cli(env, tmp, "team", "create", "--name", "Bench", "--json"))
    email = "bench@example.com"
    cli(env, tmp, "user", "create", "--team", team["account_slug"], "--email", email,
        "--role", "owner", stdin=PASSWORD + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "callfleet.cli", "serve", "--no-worker",
                                 "--port", str(port)], cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    server = start()
    try:
        refs = await api_setup(base, team["api_key"], team["team_id"])
    finally:
        server.terminate()
        server.wait(30)
    sample = load(data / "callfleet.db", team["team_id"], refs, args.contacts, args.calls)
    targets = pages(refs, sample, "")
    server = start()
    try:
        lat = await time_pages(base, email, targets, args.requests)
    finally:
        server.terminate()
        server.wait(30)
    statements = await count_statements(data, email, targets)
    result: dict[str, Any] = {
        "benchmark": "web", "backend": "sqlite", "contacts": args.contacts,
        "calls": args.calls, "requests": args.requests, "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2), "machine": machine_info(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pages": {name: {"p50_ms": pct(v, 0.5) * 1000, "p95_ms": pct(v, 0.95) * 1000,
                         "statements": statements[name]} for name, v in lat.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"web-sqlite-{args.contacts}.json"
    out.write_text(json.dumps(result, indent=2))
    print(render(result))
    log(f"wrote {out}")
    ok = all(r["p95_ms"] <= TARGET_P95_MS and r["statements"] <= MAX_STATEMENTS
             for r in result["pages"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    sys.exit(asyncio.run(main(parser.parse_args())))
