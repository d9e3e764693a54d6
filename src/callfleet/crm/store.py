"""Contact rows as plain dicts, written with hand-written statements on the driver connection
(aiosqlite / asyncpg) instead of the ORM: the bulk paths of the import and the single insert
of ``POST /api/crm/contacts``. The ORM costs more CPU per row than the database does
(docs/decisions/0013-contact-write-path.md).

A row dict holds every column of ``contacts`` (``COLUMNS``) as Python values; ``PgRows`` and
``SqliteRows`` encode them for their driver. Both work inside the caller's transaction (a
session's connection) or on a connection in autocommit (``Database.driver_connection``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

from callfleet import ids
from callfleet.crm import fields as F

# Every column of ``contacts``, in table order.
COLUMNS = (
    "id", "team_id", "company_id", "first_name", "last_name", "email", "phone",
    "phone_secondary", "job_title", "lead_status", "source", "timezone",
    "preferred_contact_method", "do_not_call", "notes", "custom_fields", "tags", "email_lower",
    "search_text", "created_at", "updated_at", "address_line1", "city", "state", "postal_code",
    "country", "consent_kind", "consent_source", "consent_at", "consent_evidence",
    "consent_revoked_at", "consent_revocation_channel",
)
#: Columns that may be absent from a new row's values (they default to None).
OPTIONAL_COLUMNS = COLUMNS[COLUMNS.index("updated_at") + 1:]
# What a merge can change (everything but id, team and created_at).
UPDATE_COLUMNS = tuple(c for c in COLUMNS if c not in ("id", "team_id", "created_at"))
JSON_COLUMNS = ("custom_fields", "tags")
_SELECT_C = ", ".join(f"c.{c}" for c in COLUMNS)  # every column of the probes' alias c
_HEAD = itemgetter(*COLUMNS[:COLUMNS.index("custom_fields")])
_TAIL = itemgetter(*COLUMNS[COLUMNS.index("tags") + 1:])
assert COLUMNS.index("tags") == COLUMNS.index("custom_fields") + 1
_TEXT = itemgetter("email_lower", "search_text")  # SQLite: between tags and the timestamps
assert COLUMNS[COLUMNS.index("tags") + 1:COLUMNS.index("updated_at") + 1] == (
    "email_lower", "search_text", "created_at", "updated_at")
_ADDRESS = itemgetter("address_line1", "city", "state", "postal_code", "country",
                      "consent_kind", "consent_source")
assert OPTIONAL_COLUMNS[:7] == _ADDRESS.__reduce__()[1]


def new_row(team_id: str, company_id: str, v: dict[str, Any], now: datetime,
            contact_id: str | None = None) -> dict[str, Any]:
    """A new contact from normalised values (``first_name`` and ``last_name`` required; the
    other keys optional, with the API's defaults)."""
    row = {
        "id": contact_id or ids.new_id("cont"), "team_id": team_id, "company_id": company_id,
        "first_name": v["first_name"], "last_name": v["last_name"], "email": v.get("email"),
        "phone": v.get("phone"), "phone_secondary": v.get("phone_secondary"),
        "job_title": v.get("job_title"), "lead_status": v.get("lead_status", "new"),
        "source": v.get("source"), "timezone": v.get("timezone"),
        "preferred_contact_method": v.get("preferred_contact_method"),
        "do_not_call": v.get("do_not_call", False), "notes": v.get("notes"),
        "custom_fields": v.get("custom_fields", {}), "tags": v.get("tags", []),
        "created_at": now, "updated_at": now,
    }
    for column in OPTIONAL_COLUMNS:
        row[column] = v.get(column)
    derive(row)
    return row


def derive(row: dict[str, Any]) -> None:
    """The derived columns: lower-cased email (dedup) and the text ``search`` matches."""
    row["email_lower"] = row["email"].lower() if row.get("email") else None
    row["search_text"] = F.search_text(
        row["first_name"], row["last_name"], row.get("email"), row.get("phone"),
        row.get("phone_secondary"),
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# The single insert is ``INSERT … SELECT … FROM companies WHERE <company is the team's>``, so
# the company check costs no statement of its own; with ``defs_version`` it also requires the
# team's custom-field definitions to be the version the values were checked against. No row
# inserted means one of them did not hold: the caller finds out which.


class PgRows:
    """Contact rows on an asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def existing(self, team_id: str, column: str, keys: list[str]) -> list[dict[str, Any]]:
        # One index probe per key, the oldest contact per key. (A plain `= ANY($2)` lets the
        # planner, underestimating a new team's rows, use only team_id from the index and
        # filter the rest: every batch would scan the whole team, quadratic in the import.)
        rows = await self.conn.fetch(
            f"SELECT {_SELECT_C} FROM unnest($2::varchar[]) AS k(v) CROSS JOIN LATERAL ("
            f"SELECT * FROM contacts WHERE team_id = $1 AND {column} = k.v "
            "ORDER BY id LIMIT 1) AS c",
            team_id, keys,
        )
        return [dict(r) for r in rows]

    @staticmethod
    def _record(r: dict[str, Any]) -> tuple[Any, ...]:
        return (*_HEAD(r), _json(r["custom_fields"]), _json(r["tags"]), *_TAIL(r))

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        await self.conn.copy_records_to_table(
            "contacts", records=[self._record(r) for r in rows], columns=COLUMNS)

    _INSERT_ONE = (
        f"INSERT INTO contacts ({', '.join(COLUMNS)}) SELECT "
        + ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        + " FROM companies WHERE "
    )

    async def insert_checked(self, row: dict[str, Any], defs_version: int | None) -> bool:
        n = len(COLUMNS)
        where = f"companies.id = ${n + 1} AND companies.team_id = ${n + 2}"
        args: list[Any] = [*self._record(row), row["company_id"], row["team_id"]]
        if defs_version is not None:
            where += (f" AND (SELECT custom_fields_version FROM teams WHERE teams.id = ${n + 3})"
                      f" = ${n + 4}")
            args += [row["team_id"], defs_version]
        status = await self.conn.execute(self._INSERT_ONE + where, *args)
        return bool(status.endswith(" 1"))

    async def update(self, rows: list[dict[str, Any]]) -> None:
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(UPDATE_COLUMNS, start=2))
        await self.conn.executemany(
            f"UPDATE contacts SET {sets} WHERE id = $1",
            [
                (r["id"], *(_json(r[c]) if c in JSON_COLUMNS else r[c] for c in UPDATE_COLUMNS))
                for r in rows
            ],
        )


FTS_INSERT_TRIGGER = "contacts_fts_ai"  # migrations 0001
FTS_DEFER_MIN_ROWS = 64


def _sqlite_ts(value: datetime) -> str:
    """The text SQLAlchemy stores for a UTC datetime on SQLite."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class SqliteRows:
    """Contact rows on an aiosqlite connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def existing(self, team_id: str, column: str, keys: list[str]) -> list[dict[str, Any]]:
        # CROSS JOIN keeps the keys as the outer loop: one (team_id, column) index probe per
        # key, whatever the planner guesses about the team's size.
        cur = await self.conn.execute(
            f"SELECT DISTINCT {_SELECT_C} FROM json_each(?) AS k CROSS JOIN contacts AS c "
            f"WHERE c.team_id = ? AND c.{column} = k.value",
            (_json(keys), team_id),
        )
        rows = sorted(await cur.fetchall())  # oldest first (ids are time-ordered), like PG
        await cur.close()
        out = []
        for r in rows:
            d = dict(zip(COLUMNS, r, strict=True))
            for c in JSON_COLUMNS:
                d[c] = orjson.loads(d[c]) if d[c] else ({} if c == "custom_fields" else [])
            out.append(d)
        return out

    @staticmethod
    def _value(row: dict[str, Any], c: str) -> Any:
        v = row[c]
        if c in JSON_COLUMNS:
            return _json(v)
        if isinstance(v, datetime):
            return _sqlite_ts(v)
        if isinstance(v, bool):
            return int(v)
        return v

    _INSERT = (f"INSERT INTO contacts ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(COLUMNS))})")

    @staticmethod
    def _records(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """``_value`` of every column, without a call per cell: the import's rows share one
        timestamp, converted once; booleans bind as 0/1 by themselves (7.5 -> 1.2 us a row,
        measured)."""
        stamps: dict[Any, Any] = {}

        def ts(v: Any) -> Any:
            out = stamps.get(v)
            if out is None:
                out = stamps[v] = _sqlite_ts(v) if isinstance(v, datetime) else v
            return out

        return [(*_HEAD(r), _json(r["custom_fields"]), _json(r["tags"]), *_TEXT(r),
                 ts(r["created_at"]), ts(r["updated_at"]), *_ADDRESS(r), ts(r["consent_at"]),
                 r["consent_evidence"], ts(r["consent_revoked_at"]),
                 r["consent_revocation_channel"]) for r in rows]

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        """executemany; for a batch, the FTS insert trigger is swapped for one set-based
        insert into ``contacts_fts`` of the new rows (a third of the CPU, measured), all in
        this write transaction: other connections never see the table without its trigger,
        and a failure rolls the swap back with the rows."""
        records = self._records(rows)
        trigger = None
        if len(records) >= FTS_DEFER_MIN_ROWS:
            cur = await self.conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                (FTS_INSERT_TRIGGER,))
            found = await cur.fetchone()
            await cur.close()
            trigger = found[0] if found else None
        if trigger is None:
            await self.conn.executemany(self._INSERT, records)
            return
        cur = await self.conn.execute("SELECT coalesce(max(rowid), 0) FROM contacts")
        (last_rowid,) = await cur.fetchone()
        await cur.close()
        await self.conn.execute(f"DROP TRIGGER {FTS_INSERT_TRIGGER}")
        await self.conn.executemany(self._INSERT, records)
        # New rows got rowids above the old maximum (this transaction is the only writer).
        await self.conn.execute(
            "INSERT INTO contacts_fts(rowid, search_text) "
            "SELECT rowid, search_text FROM contacts WHERE rowid > ?", (last_rowid,))
        await self.conn.execute(trigger)

    _INSERT_ONE = (f"INSERT INTO contacts ({', '.join(COLUMNS)}) "
                   f"SELECT {', '.join('?' * len(COLUMNS))} FROM companies "
                   "WHERE companies.id = ? AND companies.team_id = ?")

    async def insert_checked(self, row: dict[str, Any], defs_version: int | None) -> bool:
        val = self._value
        sql = self._INSERT_ONE
        args: list[Any] = [*(val(row, c) for c in COLUMNS), row["company_id"], row["team_id"]]
        if defs_version is not None:
            sql += " AND (SELECT custom_fields_version FROM teams WHERE teams.id = ?) = ?"
            args += [row["team_id"], defs_version]
        cur = await self.conn.execute(sql, args)
        inserted = cur.rowcount == 1
        await cur.close()
        return inserted

    async def update(self, rows: list[dict[str, Any]]) -> None:
        sets = ", ".join(f"{c} = ?" for c in UPDATE_COLUMNS)
        val = self._value
        await self.conn.executemany(
            f"UPDATE contacts SET {sets} WHERE id = ?",
            [(*(val(r, c) for c in UPDATE_COLUMNS), r["id"]) for r in rows],
        )


def rows_for(dialect: str, driver_connection: Any) -> PgRows | SqliteRows:
    return PgRows(driver_connection) if dialect == "postgresql" else SqliteRows(driver_connection)
