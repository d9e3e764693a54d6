"""Contact import: JSON or CSV, in batches, deduplicated within the team.

The body is never held in memory whole: a CSV upload is spooled to a temporary file as it
arrives and read back record by record; rows are prepared (normalised, validated) outside any
transaction and written ``import_batch_size`` at a time, one transaction per batch, so one bad
row never aborts the import and other writers interleave between batches.

Dedup (SPEC 3): a row matches an existing contact of the team by normalised phone first, then
by lower-cased email; ``onDuplicate=update`` (default) merges the row into it, ``skip`` leaves
it. The same rule applies between rows of the same file.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import IO, Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.crm import fields as F
from callfleet.crm import store
from callfleet.crm.models import Company
from callfleet.crm.service import Definitions, company_of_team, load_definitions
from callfleet.db.base import utcnow
from callfleet.db.session import Database
from callfleet.errors import bad_request
from callfleet.teams.principal import Principal

csv.field_size_limit(1_000_000)

# Header spellings ("First Name", "first_name", "firstName", "FIRSTNAME") all reduce to the
# same squashed form: lower-case letters and digits only.
_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "givenname", "forename"),
    "last_name": ("lastname", "last", "surname", "familyname"),
    "full_name": ("fullname", "name", "contactname"),
    "email": ("email", "emailaddress", "mail"),
    "phone": ("phone", "phonenumber", "mobile", "mobilephone", "tel", "telephone", "cell"),
    "phone_secondary": ("phonesecondary", "secondaryphone", "phone2", "altphone", "otherphone"),
    "job_title": ("jobtitle", "title", "position", "role"),
    "lead_status": ("leadstatus", "status"),
    "source": ("source", "leadsource"),
    "timezone": ("timezone", "tz"),
    "preferred_contact_method": ("preferredcontactmethod", "contactmethod"),
    "do_not_call": ("donotcall", "dnc"),
    "notes": ("notes", "note", "comments"),
    "tags": ("tags", "tag", "labels"),
    "company_id": ("companyid",),
    "company_name": ("companyname", "company", "organization", "organisation", "account"),
    "custom_fields": ("customfields",),
}
HEADER_MAP = {alias: canon for canon, aliases in _ALIASES.items() for alias in aliases}
_SQUASH = re.compile(r"[^a-z0-9]")
# Batches a PostgreSQL import writes at once, each on its own connection (SQLite: one writer).
# Each batch checks every batch still in flight before it (``ContactImporter._write``).
# Three beat two by ~5% and four by ~7% on 2 cores (docs/decisions/0015-import-write-cost.md).
PG_BATCHES_IN_FLIGHT = 3
# Rows per batch (one transaction each) unless CALLFLEET_IMPORT_BATCH_SIZE says otherwise.
# SQLite: each commit adds a segment to the FTS5 index, which merges them as they pile up;
# 5,000-row batches cut the import's wall time by ~17% against 2,000 (measured) and hold
# the single write lock for ~0.2 s of SQL at a time (~40 us a row). PostgreSQL: larger
# batches measured within noise (0014, 0015).
DEFAULT_BATCH_SIZE = {"sqlite": 5000, "postgresql": 2000}

TEXT_LIMITS = {"job_title": 300, "source": 200, "preferred_contact_method": 50, "notes": 20_000}


# Phone numbers: ``fields.normalize_phone`` (with its NANP fast path).
normalize_phone = F.normalize_phone


def canonical(header: str) -> str | None:
    return HEADER_MAP.get(_SQUASH.sub("", header.lower()))


class RowError(Exception):
    pass


@dataclass
class Prepared:
    row: int
    values: dict[str, Any]
    company_id: str | None
    company_name: str | None


@dataclass
class ImportResult:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = dc_field(default_factory=list)
    errors_truncated: bool = False

    def out(self) -> dict[str, Any]:
        return {
            "success": True,
            "imported": self.imported,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "errors": self.errors,
            "errors_truncated": self.errors_truncated,
        }


def _text(value: Any, name: str, max_len: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise RowError(f"{name} must be text")
    if value.isprintable():  # no control characters: clean_text's fast equivalent
        value = value.strip()
        if not value:
            return None
        if len(value) <= max_len:
            return value
    try:
        return F.clean_text(value, max_len)
    except ValueError as exc:
        raise RowError(f"{name} {exc}") from None


def prepare_row(
    row: int, raw: dict[str, Any], custom: dict[str, Any], region: str, defs: Definitions
) -> Prepared:
    """Normalise one input row; raises ``RowError`` naming the bad field."""
    first = _text(raw.get("first_name"), "first_name", 200)
    last = _text(raw.get("last_name"), "last_name", 200)
    if not first and not last and raw.get("full_name"):
        full = _text(raw.get("full_name"), "full_name", 400) or ""
        first, _, last = full.partition(" ")
        last = last.strip() or None
    if not first:
        raise RowError("first_name is required")
    if not last:
        raise RowError("last_name is required")
    values: dict[str, Any] = {"first_name": first, "last_name": last}
    for key, max_len in TEXT_LIMITS.items():
        if key in raw:
            values[key] = _text(raw[key], key, max_len)
    if "email" in raw:
        values["email"] = _norm("email", F.normalize_email, _text(raw["email"], "email", 320))
    for key in ("phone", "phone_secondary"):
        if key in raw:
            text = _text(raw[key], key, 64)
            try:
                values[key] = normalize_phone(text, region)
            except ValueError as exc:
                raise RowError(f"{key} {exc}: {text!r}") from None
    if "timezone" in raw:
        values["timezone"] = _norm(
            "timezone", F.normalize_timezone, _text(raw["timezone"], "timezone", 64)
        )
    if raw.get("lead_status") not in (None, ""):
        values["lead_status"] = _norm(
            "lead_status", F.normalize_lead_status, _text(raw["lead_status"], "lead_status", 64)
        )
    if raw.get("do_not_call") not in (None, ""):
        values["do_not_call"] = _norm("do_not_call", F.parse_bool, raw["do_not_call"])
    if raw.get("tags") not in (None, ""):
        values["tags"] = _norm("tags", F.normalize_tags, raw["tags"])
    if custom:
        values["custom_fields"] = _norm(
            "custom_fields", F.check_custom_fields,
            {k: v for k, v in custom.items() if v not in (None, "")}, defs,
        )
    company_id = _text(raw.get("company_id"), "company_id", 64)
    company_name = _text(raw.get("company_name"), "company_name", 300)
    return Prepared(row, values, company_id, company_name)


def _norm(name: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError as exc:
        raise RowError(f"{name} {exc}") from None


# ---------------------------------------------------------------- reading CSV


def _decoded_lines(stream: IO[bytes], charset: str | None) -> Iterator[str]:
    """Lines of text: BOM-detected UTF-8/16, a declared charset, or UTF-8 per line with a
    Windows-1252 fallback (spreadsheets exported on Windows), so a stray byte never fails."""
    head = stream.read(4)
    stream.seek(0)
    encoding = None
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii"):
        try:
            codecs.lookup(charset)
            encoding = charset
        except LookupError:
            raise bad_request(f"Unknown charset {charset[:40]!r}", "Content-Type") from None
    if encoding:
        yield from io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")
        return
    for raw in stream:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield raw.decode("cp1252", errors="replace")


def csv_rows(stream: IO[bytes], charset: str | None) -> Iterator[tuple[int, Any]]:
    """``(row_number, (fields, custom) | RowError)`` for each data record of a CSV file."""
    reader = csv.reader(_decoded_lines(stream, charset), strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise bad_request("The CSV file is empty", "file") from None
    except csv.Error as exc:
        raise bad_request(f"The CSV header cannot be read: {exc}", "file") from None
    names = [h.replace("\x00", "").strip() for h in header]
    mapped = [canonical(n) for n in names]
    if not (
        ("first_name" in mapped and "last_name" in mapped) or "full_name" in mapped
    ):
        raise bad_request(
            "The CSV needs First Name and Last Name columns (or Full Name); found: "
            + ", ".join(n[:40] for n in names[:20]),
            "file",
        )
    custom_keys = [F.header_to_key(n) if m is None and n else None for n, m in zip(names, mapped)]
    width = len(names)
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield number, RowError(f"row cannot be parsed as CSV: {exc}")
            continue
        if not cells or not "".join(cells).strip():
            number -= 1
            continue
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            yield number, RowError(f"row has {len(cells)} columns, the header has {width}")
            continue
        fields: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for cell, canon, ckey in zip(cells, mapped, custom_keys):
            if canon is not None and canon != "custom_fields":
                fields[canon] = cell
            elif ckey:
                custom[ckey] = cell
        yield number, (fields, custom)


def json_rows(items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield number, RowError("row must be a JSON object")
            continue
        fields: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for key, value in item.items():
            canon = canonical(str(key))
            if canon == "custom_fields":
                if not isinstance(value, dict):
                    yield number, RowError("customFields must be an object")
                    break
                custom.update(value)
            elif canon is not None:
                fields[canon] = value
            else:
                custom[F.header_to_key(str(key))] = value
        else:
            yield number, (fields, custom)


# ---------------------------------------------------------------- writing


@dataclass
class _Flight:
    """A batch being written: what a later batch must know before it decides."""

    task: asyncio.Task[None] = dc_field(init=False)
    decided: asyncio.Event = dc_field(default_factory=asyncio.Event)
    keys: set[str] = dc_field(default_factory=set)  # phones and emails of the rows it writes
    ids: set[str] = dc_field(default_factory=set)  # ids of the rows it writes

    def decided_on(self, new_rows: list[dict[str, Any]],
                   changed: Iterable[dict[str, Any]]) -> None:
        for row in (*new_rows, *changed):
            self.ids.add(row["id"])
            if row.get("phone"):
                self.keys.add(row["phone"])
            if row.get("email_lower"):
                self.keys.add(row["email_lower"])
        self.decided.set()

    async def wait_decided(self) -> None:
        """Until this batch has decided; its failure is this caller's too."""
        if self.decided.is_set():
            return
        waiter = asyncio.ensure_future(self.decided.wait())
        try:
            await asyncio.wait({waiter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self.decided.is_set():
            self.task.result()  # raises what the batch raised
            raise RuntimeError("the previous import batch ended without deciding")

    async def wait_done(self) -> None:
        await asyncio.shield(self.task)


class ContactImporter:
    def __init__(
        self, db: Database, principal: Principal, *, company_id: str | None, on_duplicate: str,
        region: str, batch_size: int | None, max_errors: int,
    ) -> None:
        self.db = db
        self.p = principal
        self.default_company = company_id
        self.update_dupes = on_duplicate == "update"
        self.region = region
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE.get(db.dialect, 2000)
        self.max_errors = max_errors
        self.result = ImportResult()
        self.companies_by_name: dict[str, str] = {}
        self.known_companies: set[str] = set()
        self.defs: Definitions = {}
        self._started = False
        self._analyzed = False  # this import has run its ANALYZE

    def fail(self, row: int, error: str) -> None:
        r = self.result
        r.failed += 1
        if len(r.errors) < self.max_errors:
            r.errors.append({"row": row, "error": error})
        else:
            r.errors_truncated = True

    async def start(self) -> None:
        """Load custom field definitions and check ``companyId`` (raises 400/403/404)."""
        if self._started:
            return
        self._started = True
        async with self.db.session(write=False) as s:
            self.defs = await load_definitions(s, self.p.team_id, "contact")
            if self.default_company is not None:
                await self._check_company(s, self.default_company, field="companyId")

    async def _check_company(self, s: AsyncSession, company_id: str, field: str) -> bool:
        """Is ``company_id`` a company of the team? For the request's ``companyId`` a wrong
        one is the request's error (400/404/403); for a row's it is that row's (False)."""
        if company_id in self.known_companies:
            return True
        if field == "companyId":
            await company_of_team(s, self.p, company_id)
        elif not ids.is_valid("comp", company_id):
            return False
        else:
            company = await s.get(Company, company_id)
            if company is None or not self.p.scope.holds(company):
                return False
        self.known_companies.add(company_id)
        return True

    async def run(self, rows: Iterable[tuple[int, Any]]) -> ImportResult:
        """Prepare rows and write them a batch at a time, each batch in a task of its own, so
        parsing and normalising overlap with the database's work. On PostgreSQL up to
        PG_BATCHES_IN_FLIGHT batches are written at once (their writes use every core); see
        ``_write`` for why dedup still sees every earlier row."""
        await self.start()
        batch: list[Prepared] = []
        depth = PG_BATCHES_IN_FLIGHT if self.db.dialect == "postgresql" else 1
        flights: deque[_Flight] = deque()

        async def launch(items: list[Prepared]) -> None:
            while len(flights) >= depth:
                await flights.popleft().task
            me = _Flight()
            me.task = asyncio.create_task(self._write(items, list(flights), me))
            flights.append(me)

        try:
            for n, (number, item) in enumerate(rows):
                if n % 32 == 31:
                    await asyncio.sleep(0)  # let the writes in flight progress
                if isinstance(item, RowError):
                    self.fail(number, str(item))
                    continue
                fields, custom = item
                try:
                    batch.append(prepare_row(number, fields, custom, self.region, self.defs))
                except RowError as exc:
                    self.fail(number, str(exc))
                    continue
                if len(batch) >= self.batch_size:
                    await launch(batch)
                    batch = []
            if batch:
                await launch(batch)
            while flights:
                await flights.popleft().task
        finally:
            for f in flights:
                f.task.cancel()
            await asyncio.gather(*(f.task for f in flights), return_exceptions=True)
        self.result.errors.sort(key=lambda e: e["row"])
        return self.result

    async def _resolve_companies(self, s: AsyncSession, batch: list[Prepared]) -> list[Prepared]:
        ready: list[Prepared] = []
        for item in batch:
            if item.company_id:
                if not await self._check_company(s, item.company_id, field="row"):
                    self.fail(item.row, "company_id is not a company of this team")
                    continue
            elif item.company_name:
                item.company_id = await self._company_named(s, item.company_name)
            elif self.default_company:
                item.company_id = self.default_company
            else:
                self.fail(item.row, "a company is required: pass companyId or a Company Name column")
                continue
            ready.append(item)
        return ready

    async def _company_named(self, s: AsyncSession, name: str) -> str:
        low = name.lower()
        found = self.companies_by_name.get(low)
        if found is None:
            found = await s.scalar(
                select(Company.id)
                .where(self.p.scope.owns(Company), Company.name_lower == low)
                .order_by(Company.id)
                .limit(1)
            )
        if found is None:
            now = utcnow()
            found = ids.new_id("comp")
            await s.execute(
                insert(Company).values(
                    id=found, team_id=self.p.team_id, name=name, name_lower=low,
                    custom_fields={}, created_at=now, updated_at=now,
                )
            )
        self.companies_by_name[low] = found
        return found

    async def _write(self, batch: list[Prepared], before: list[_Flight], me: _Flight) -> None:
        """One transaction: resolve companies, find the stored contacts the batch's phones and
        emails match, merge in memory, then one bulk insert (COPY on PostgreSQL, executemany
        on SQLite) and one bulk update. No ORM objects: rows are plain dicts of columns.

        Batches decide (companies, probes, merges) one after the other, in file order; the
        earlier batches may still be writing meanwhile, their rows not yet visible. Their keys
        (phones, emails) and ids say when that matters: a row of this batch with one of a
        batch's keys, or a probe that found one of the rows it writes, waits for that batch
        to commit and probes again. So every batch decides as if all earlier batches had
        committed."""
        if before:
            await before[-1].wait_decided()  # decisions are in file order: all have
        async with self.db.session(write=True) as s:
            ready = await self._resolve_companies(s, batch)
            conn = (await (await s.connection()).get_raw_connection()).driver_connection
            bulk = store.rows_for(self.db.dialect, conn)
            phones = list({i.values["phone"] for i in ready if i.values.get("phone")})
            emails = list({i.values["email"].lower() for i in ready if i.values.get("email")})
            busy = [f for f in before if not f.task.done()]
            hit = [f for f in busy
                   if not (f.keys.isdisjoint(phones) and f.keys.isdisjoint(emails))]
            while True:
                for f in hit:  # wait for it to commit, then (re)probe
                    await f.wait_done()
                    busy.remove(f)
                # (Both backends probe the index once per key; no keys, no probe.)
                by_phone_rows = (await bulk.existing(self.p.team_id, "phone", phones)
                                 if phones else [])
                by_email_rows = (await bulk.existing(self.p.team_id, "email_lower", emails)
                                 if emails else [])
                found = {c["id"] for c in (*by_phone_rows, *by_email_rows)}
                hit = [f for f in busy if not f.ids.isdisjoint(found)]
                if not hit:
                    break
            new_rows, changed = self._merge(ready, by_phone_rows, by_email_rows)
            me.decided_on(new_rows, changed.values())
            if new_rows:
                await bulk.insert(new_rows)
            if changed:
                await bulk.update(list(changed.values()))
            await s.commit()
        await self._refresh_statistics()

    def _merge(self, ready: list[Prepared], by_phone_rows: list[dict[str, Any]],
               by_email_rows: list[dict[str, Any]],
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The batch's new rows and the stored contacts it changes (by id), merged in memory:
        phone first (stored contacts, then earlier rows of this batch), then email."""
        by_phone: dict[str, dict[str, Any]] = {}
        by_email: dict[str, dict[str, Any]] = {}
        seen: dict[str, dict[str, Any]] = {}  # one dict per stored contact
        for c in by_phone_rows:
            c = seen.setdefault(c["id"], c)
            by_phone.setdefault(c["phone"] or "", c)
        for c in by_email_rows:
            c = seen.setdefault(c["id"], c)
            by_email.setdefault(c["email_lower"] or "", c)
        new_rows: list[dict[str, Any]] = []
        new_by_phone: dict[str, dict[str, Any]] = {}
        new_by_email: dict[str, dict[str, Any]] = {}
        changed: dict[str, dict[str, Any]] = {}
        now = utcnow()
        fresh_ids = iter(ids.new_ids("cont", len(ready)))  # (one per row; merges leave some)
        for item in ready:
            v = item.values
            phone = v.get("phone")
            email = v["email"].lower() if v.get("email") else None
            target: dict[str, Any] | None = None
            stored = False
            if phone:
                target = by_phone.get(phone)
                stored = target is not None
                if target is None:
                    target = new_by_phone.get(phone)
            if target is None and email:
                target = by_email.get(email)
                stored = target is not None
                if target is None:
                    target = new_by_email.get(email)
            if target is not None:
                if not self.update_dupes:
                    self.result.skipped += 1
                    continue
                if stored:
                    _merge_into_row(target, v, item.company_id)
                    target["updated_at"] = now
                    changed[target["id"]] = target
                    # The merge may have given it a phone or email: later rows match it.
                    if target["phone"]:
                        by_phone.setdefault(target["phone"], target)
                    if target["email_lower"]:
                        by_email.setdefault(target["email_lower"], target)
                else:
                    _merge_into_row(target, v, None)
                    if target.get("phone"):
                        new_by_phone.setdefault(target["phone"], target)
                    if target.get("email_lower"):
                        new_by_email.setdefault(target["email_lower"], target)
                self.result.updated += 1
                continue
            row = store.new_row(self.p.team_id, item.company_id, v, now, next(fresh_ids))
            new_rows.append(row)
            if phone:
                new_by_phone[phone] = row
            if email:
                new_by_email[email] = row
            self.result.imported += 1
        return new_rows, changed

    async def _refresh_statistics(self) -> None:
        """PostgreSQL: ANALYZE ``contacts`` once, after the first batch that imported rows. A
        team the statistics don't know yet (a new one) is estimated at ~1 row, and for so few
        rows the planner may serve a dedup probe from any ``team_id`` index and filter the
        key: every probe would then read all the rows the import already wrote (quadratic).
        Once the team is known to have rows, the (team_id, phone/email) indexes win whatever
        the estimate (docs/decisions/0014). Measured on the 1M-row benchmark."""
        if self.db.dialect != "postgresql":
            return
        if self.result.imported == 0 or self._analyzed:
            return
        self._analyzed = True
        async with self.db.session(write=True) as s:
            await s.execute(text("ANALYZE contacts"))
            await s.commit()


_MERGE_SKIP = ("custom_fields", "tags")


def _merge_into_row(row: dict[str, Any], v: dict[str, Any], company_id: str | None) -> None:
    """A duplicate row updates its target (a stored contact or an earlier row of the file):
    non-empty values win, custom fields merge key by key, tags are unioned, and the row's
    company (if given) moves the contact."""
    for key, value in v.items():
        if key in _MERGE_SKIP or value is None:
            continue
        row[key] = value
    if company_id:
        row["company_id"] = company_id
    row["custom_fields"] = {**(row.get("custom_fields") or {}), **v.get("custom_fields", {})}
    row["tags"] = list(dict.fromkeys([*(row.get("tags") or []), *v.get("tags", [])]))
    store.derive(row)
