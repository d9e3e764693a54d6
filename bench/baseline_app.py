"""Baseline for the contact-create benchmark: the least a FastAPI service can do per request.

One route, ``POST /contacts``: parse the JSON body, one plain ``INSERT`` of the same columns
callfleet writes into a table shaped like ``contacts`` (same columns, same b-tree indexes and
the same search index: pg_trgm GIN on PostgreSQL, FTS5 trigram + trigger on SQLite), commit,
answer 201 with the row. No auth, no validation, no ORM, no middleware.

It uses the same stack as callfleet: FastAPI on uvicorn (uvloop + httptools), SQLAlchemy
async *core* on aiosqlite / asyncpg, the same SQLite pragmas and the same pool size.

Run by ``bench/crm.py``; by hand::

    BENCH_BASELINE_URL=sqlite+aiosqlite:////tmp/baseline.db \\
        .venv/bin/uvicorn baseline_app:app --app-dir bench --port 8100
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from ulid import ULID

URL = os.environ.get("BENCH_BASELINE_URL", "sqlite+aiosqlite:///baseline.db")
POOL_SIZE = int(os.environ.get("BENCH_BASELINE_POOL_SIZE", "20"))
TABLE = "baseline_contacts"

# The same pragmas callfleet's engine sets (callfleet.db.session.SQLITE_PRAGMAS).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
)

COLUMNS = (
    "id", "team_id", "company_id", "first_name", "last_name", "email", "phone",
    "job_title", "lead_status", "source", "timezone", "do_not_call", "custom_fields", "tags",
    "email_lower", "search_text", "created_at", "updated_at",
)


def _ddl(sqlite: bool) -> list[str]:
    ts = "TIMESTAMP" if sqlite else "TIMESTAMPTZ"
    js = "JSON" if sqlite else "JSONB"
    stmts = [
        f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            id VARCHAR(40) PRIMARY KEY, team_id VARCHAR(40) NOT NULL,
            company_id VARCHAR(40) NOT NULL, first_name VARCHAR(200) NOT NULL,
            last_name VARCHAR(200) NOT NULL, email VARCHAR(320), phone VARCHAR(32),
            phone_secondary VARCHAR(32), job_title VARCHAR(300),
            lead_status VARCHAR(32) NOT NULL, source VARCHAR(200), timezone VARCHAR(64),
            preferred_contact_method VARCHAR(50), do_not_call BOOLEAN NOT NULL, notes TEXT,
            custom_fields {js} NOT NULL, tags {js} NOT NULL, email_lower VARCHAR(320),
            search_text TEXT NOT NULL, created_at {ts} NOT NULL, updated_at {ts} NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_team_id_id ON {TABLE} (team_id, id)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_team_company_id "
        f"ON {TABLE} (team_id, company_id, id)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_team_status_id "
        f"ON {TABLE} (team_id, lead_status, id)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_team_phone ON {TABLE} (team_id, phone)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_team_email ON {TABLE} (team_id, email_lower)",
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_company_id ON {TABLE} (company_id)",
    ]
    if sqlite:
        stmts += [
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE}_fts USING fts5(search_text, "
            f"content='{TABLE}', content_rowid='rowid', tokenize='trigram')",
            f"CREATE TRIGGER IF NOT EXISTS {TABLE}_fts_ai AFTER INSERT ON {TABLE} BEGIN "
            f"INSERT INTO {TABLE}_fts(rowid, search_text) VALUES (new.rowid, new.search_text); "
            "END",
        ]
    else:
        stmts += [
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_search_trgm ON {TABLE} "
            "USING gin (search_text gin_trgm_ops)",
        ]
    return stmts


def _engine() -> AsyncEngine:
    if URL.startswith("sqlite"):
        engine = create_async_engine(URL, pool_size=POOL_SIZE)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        return engine
    return create_async_engine(URL, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = _engine()
    async with engine.begin() as conn:
        for stmt in _ddl(engine.dialect.name == "sqlite"):
            await conn.execute(text(stmt))
    app.state.engine = engine
    app.state.sqlite = engine.dialect.name == "sqlite"
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
INSERT = text(
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
)


@app.post("/contacts", status_code=201)
async def create_contact(request: Request) -> Response:
    b = orjson.loads(await request.body())
    now = datetime.now(UTC)
    email = b.get("email")
    phone = b.get("phone")
    row = {
        "id": "cont_" + str(ULID()).lower(), "team_id": b["teamId"],
        "company_id": b["companyId"], "first_name": b["firstName"], "last_name": b["lastName"],
        "email": email, "phone": phone, "job_title": b.get("jobTitle"),
        "lead_status": b.get("leadStatus") or "new", "source": b.get("source"),
        "timezone": b.get("timezone"), "do_not_call": bool(b.get("doNotCall")),
        "custom_fields": orjson.dumps(b.get("customFields") or {}).decode(),
        "tags": orjson.dumps(b.get("tags") or []).decode(),
        "email_lower": email.lower() if email else None,
        "search_text": " ".join(
            p for p in (b["firstName"], b["lastName"], email or "",
                        "".join(ch for ch in phone or "" if ch.isdigit())) if p
        ).lower(),
        "created_at": now.replace(tzinfo=None) if request.app.state.sqlite else now,
        "updated_at": now.replace(tzinfo=None) if request.app.state.sqlite else now,
    }
    async with request.app.state.engine.begin() as conn:
        await conn.execute(INSERT, row)
    out = {**row, "created_at": now.isoformat(), "updated_at": now.isoformat()}
    return Response(orjson.dumps({"success": True, "contact": out}), status_code=201,
                    media_type="application/json")


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"success": True}
