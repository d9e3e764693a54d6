"""Contacts CSV import in the browser: upload, preview with a column mapping (standard
fields, custom fields, ignore), the duplicate policy, a progress bar, and the rejected rows
as a CSV to download.

The rows go through the API's importer (``crm.importer.ContactImporter``: the same
normalisation, deduplication and batching), fed by the chosen mapping instead of the
header names. The import runs in the process that received the upload, as a task; its
counters are written to ``contact_imports`` every half second, so the progress survives
page loads and shows what was done if the process dies (docs/decisions/0033).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from callfleet import ids
from callfleet.crm import fields as crm_fields
from callfleet.crm import importer, lookups
from callfleet.crm import service as crm
from callfleet.crm.models import ContactImport
from callfleet.db.base import utcnow
from callfleet.db.session import Database
from callfleet.errors import ApiError
from callfleet.teams.principal import Principal
from callfleet.web.auth import Ctx, Editor, Viewer, read_form
from callfleet.web.forms import field_errors, text_values
from callfleet.web.render import SECURITY_HEADERS, page

log = structlog.get_logger("callfleet.web.imports")
router = APIRouter(include_in_schema=False)
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
PREVIEW_ROWS = 5
MAX_COLUMNS = 200
PROGRESS_EVERY = 0.5  # seconds between progress writes
STALE_AFTER = timedelta(seconds=30)  # a running import not heard of for this long is dead
STANDARD = [("first_name", "First name"), ("last_name", "Last name"),
            ("full_name", "Full name"), ("email", "Email"), ("phone", "Phone"),
            ("phone_secondary", "Second phone"), ("job_title", "Job title"),
            ("lead_status", "Lead status"), ("source", "Source"), ("timezone", "Time zone"),
            ("preferred_contact_method", "Preferred contact method"),
            ("do_not_call", "Do not call"), ("notes", "Notes"), ("tags", "Tags"),
            ("company_name", "Company name (finds or creates the company)")]
STANDARD_KEYS = {k for k, _ in STANDARD}


def _dir(request: Request) -> Path:
    path = Path(request.app.state.settings.data_dir) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_preview(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the first data records, decoded as the API's import decodes them."""
    with open(path, "rb") as f:
        header, records = importer.csv_records(f, None)
        rows = []
        for _, cells in records:
            if not isinstance(cells, importer.RowError):
                rows.append(cells[:MAX_COLUMNS])
            if len(rows) >= PREVIEW_ROWS:
                break
    return [h.replace("\x00", "").strip() for h in header][:MAX_COLUMNS], rows


def store(source: Any, path: Path) -> bool:
    """Copy the upload to the data directory; False (and nothing kept) past the size cap."""
    size = 0
    with open(path, "wb") as out:
        while chunk := source.read(1024 * 1024):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                break
            out.write(chunk)
    if size > MAX_UPLOAD_BYTES:
        path.unlink(missing_ok=True)
        return False
    return True


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def suggested(header: list[str]) -> list[str]:
    """What the API's importer would do with each column by its name."""
    out = []
    for name in header:
        canon = importer.canonical(name)
        if canon == "company_id":
            canon = None
        if canon and canon != "custom_fields":
            out.append(canon)
        elif name:
            out.append("custom:" + crm_fields.header_to_key(name))
        else:
            out.append("")
    return out


def mapped_rows(path: Path, mapping: list[str], progress: dict[str, int]
                ) -> Iterator[tuple[int, Any]]:
    """The importer's rows, ``(number, (fields, custom))``, by the chosen mapping."""
    with open(path, "rb") as f:
        _, records = importer.csv_records(f, None)
        for number, cells in records:
            progress["processed"] = number
            if isinstance(cells, importer.RowError):
                yield number, cells
                continue
            fields: dict[str, Any] = {}
            custom: dict[str, Any] = {}
            for cell, target in zip(cells, mapping):
                if target in STANDARD_KEYS:
                    fields[target] = cell
                elif target.startswith("custom:"):
                    custom[target[7:]] = cell
            yield number, (fields, custom)


def rejected_rows(path: Path, reasons: dict[int, str]) -> Iterator[bytes]:
    """The file's header and its rejected records as they were, with an ``error`` column
    (a sync iterator: the response reads it in a worker thread)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with open(path, "rb") as f:
        header, records = importer.csv_records(f, None)
        writer.writerow([*header, "error"])
        for number, cells in records:
            if number in reasons:
                row_cells = [] if isinstance(cells, importer.RowError) else cells
                writer.writerow([*row_cells, reasons[number]])
            if buffer.tell() > 65536:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


async def _save(db: Database, import_id: str, **values: Any) -> None:
    async with db.session() as s:
        row = await s.get(ContactImport, import_id)
        if row is not None:
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            await s.commit()


async def run_import(db: Database, p: Principal, import_id: str, path: Path,
                     mapping: list[str], company_id: str | None, on_duplicate: str,
                     region: str, batch_size: int | None, max_errors: int) -> None:
    progress = {"processed": 0}
    imp = importer.ContactImporter(db, p, company_id=company_id, on_duplicate=on_duplicate,
                                   region=region, batch_size=batch_size,
                                   max_errors=max_errors)
    work = asyncio.create_task(imp.run(mapped_rows(path, mapping, progress)))
    try:
        while not work.done():
            await asyncio.wait({work}, timeout=PROGRESS_EVERY)
            r = imp.result
            await _save(db, import_id, processed=progress["processed"], imported=r.imported,
                        updated=r.updated, skipped=r.skipped, failed=r.failed)
        result = work.result()
    except Exception as exc:  # the import's own failure, shown on its page
        log.exception("contact_import_failed", import_id=import_id)
        message = exc.error if isinstance(exc, ApiError) else "The import stopped on an error"
        r = imp.result
        await _save(db, import_id, status="failed", message=message, imported=r.imported,
                    updated=r.updated, skipped=r.skipped, failed=r.failed, errors=r.errors)
        return
    await _save(db, import_id, status="done", processed=progress["processed"],
                imported=result.imported, updated=result.updated, skipped=result.skipped,
                failed=result.failed, errors=result.errors,
                message="Some rows were not listed: the error list is capped"
                if result.errors_truncated else None)


def _tasks(request: Request) -> dict[str, asyncio.Task[None]]:
    state = request.app.state
    if not hasattr(state, "import_tasks"):
        state.import_tasks = {}
    return state.import_tasks  # type: ignore[no-any-return]


async def _owned(ctx: Ctx, import_id: str) -> ContactImport:
    row = await ctx.p.scope.get(ctx.s, ContactImport, import_id)
    if row.status == "running" and import_id not in _tasks(ctx.request) \
            and row.updated_at < utcnow() - STALE_AFTER:
        row.status = "interrupted"  # shown only; the row is not written from a read
    return row


# ---------------------------------------------------------------- pages


async def _upload_page(ctx: Ctx, *, status: int = 200, errors: dict[str, str] | None = None,
                       ) -> Response:
    companies, _ = await lookups.company_choices(ctx.s, ctx.p)
    recent = list(await ctx.s.scalars(ctx.p.scope.select(ContactImport)
                                      .order_by(ContactImport.id.desc()).limit(10)))
    company = ctx.request.query_params.get("companyId", "")
    return page(ctx.request, "contacts/import.html", user=ctx.user, status=status,
                errors=errors or {}, companies=companies, recent=recent,
                values={"companyId": company, "onDuplicate": "update"})


@router.get("/contacts/import")
async def upload_page(ctx: Viewer) -> Response:
    return await _upload_page(ctx)


@router.post("/contacts/import")
async def upload(ctx: Editor) -> Response:
    form = await read_form(ctx.request)
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return await _upload_page(ctx, status=400, errors={"file": "Choose a CSV file"})
    import_id = ids.new_id("imp")
    path = _dir(ctx.request) / f"{import_id}.csv"
    if not await asyncio.to_thread(store, upload.file, path):
        return await _upload_page(ctx, status=413,
                                  errors={"file": "The file is larger than 1 GB"})
    try:
        header, _ = read_preview(path)
    except ApiError as exc:
        path.unlink(missing_ok=True)
        return await _upload_page(ctx, status=400, errors=field_errors(exc))
    lines = await asyncio.to_thread(count_lines, path)
    now = utcnow()
    ctx.s.add(ContactImport(
        id=import_id, team_id=ctx.p.team_id, user_id=ctx.user.user_id,
        filename=str(upload.filename)[:300], path=str(path), status="mapping",
        company_id=None, on_duplicate="update", mapping={"columns": suggested(header)},
        total_rows=max(lines - 1, 0), processed=0, imported=0, updated=0, skipped=0,
        failed=0, errors=[], created_at=now, updated_at=now))
    await ctx.s.commit()
    company = text_values(form, ("companyId",)).get("companyId")
    suffix = f"?companyId={company}" if company and ids.is_valid("comp", company) else ""
    return RedirectResponse(f"/contacts/import/{import_id}{suffix}", status_code=303)


async def _import_page(ctx: Ctx, row: ContactImport, *, status: int = 200,
                       errors: dict[str, str] | None = None,
                       values: dict[str, Any] | None = None) -> Response:
    context: dict[str, Any] = {"imp": row, "errors": errors or {}}
    if row.status == "mapping":
        header, preview = read_preview(Path(row.path))
        definitions, _ = await crm.list_custom_fields(ctx.s, ctx.p, "contact", 500, 0)
        companies, _ = await lookups.company_choices(ctx.s, ctx.p)
        context.update(header=header, preview=preview, standard=STANDARD,
                       definitions=definitions, companies=companies,
                       values=values or {
                           "columns": row.mapping.get("columns", []),
                           "companyId": ctx.request.query_params.get("companyId", ""),
                           "onDuplicate": row.on_duplicate})
    return page(ctx.request, "contacts/import_job.html", user=ctx.user, status=status,
                **context)


@router.get("/contacts/import/{import_id}")
async def import_page(import_id: str, ctx: Viewer) -> Response:
    return await _import_page(ctx, await _owned(ctx, import_id))


@router.get("/contacts/import/{import_id}/progress")
async def progress(import_id: str, ctx: Viewer) -> Response:
    row = await _owned(ctx, import_id)
    return page(ctx.request, "contacts/_import_progress.html", user=ctx.user, imp=row)


def _mapping_errors(columns: list[str], company_id: str | None) -> dict[str, str]:
    chosen = set(columns)
    errors: dict[str, str] = {}
    if not ({"first_name", "last_name"} <= chosen or "full_name" in chosen):
        errors["columns"] = "Map a column to First name and one to Last name (or to Full name)"
    if not company_id and "company_name" not in chosen:
        errors["companyId"] = "Choose a company, or map a column to Company name"
    dupes = [c for c in chosen if c and not c.startswith("custom:") and columns.count(c) > 1]
    if dupes:
        errors["columns"] = f"{dupes[0]} is mapped from more than one column"
    return errors


@router.post("/contacts/import/{import_id}/start")
async def start(import_id: str, ctx: Editor) -> Response:
    row = await _owned(ctx, import_id)
    if row.status not in ("mapping", "interrupted", "failed"):
        return RedirectResponse(f"/contacts/import/{import_id}", status_code=303)
    form = await read_form(ctx.request)
    values = text_values(form)
    path = Path(row.path)
    if not path.exists():
        raise ApiError(409, "The uploaded file is not on this server; upload it again")
    if row.status == "mapping":
        header, _ = read_preview(path)
        columns = [values.get(f"column.{i}", "") for i in range(len(header))]
        valid = STANDARD_KEYS | {""}
        columns = [c if c in valid or (c.startswith("custom:") and crm_fields.header_to_key(
            c[7:]) == c[7:] and c[7:]) else "" for c in columns]
        company_id = values.get("companyId") or None
        on_duplicate = values.get("onDuplicate") if values.get("onDuplicate") in (
            "skip", "update") else "update"
        errors = _mapping_errors(columns, company_id)
        if company_id and not errors:
            try:
                await crm.company_of_team(ctx.s, ctx.p, company_id)
            except ApiError as exc:
                errors = {"companyId": exc.error}
        if errors:
            return await _import_page(ctx, row, status=400, errors=errors, values={
                "columns": columns, "companyId": company_id or "",
                "onDuplicate": on_duplicate})
        row.mapping = {"columns": columns}
        row.company_id = company_id
        row.on_duplicate = on_duplicate
    row.status = "running"
    row.message = None
    row.updated_at = utcnow()
    await ctx.s.commit()
    settings = ctx.request.app.state.settings
    task = asyncio.create_task(run_import(
        ctx.request.app.state.db, ctx.p, import_id, path, list(row.mapping["columns"]),
        row.company_id, row.on_duplicate, settings.default_region, settings.import_batch_size,
        settings.import_max_errors))
    tasks = _tasks(ctx.request)
    tasks[import_id] = task
    task.add_done_callback(lambda _: tasks.pop(import_id, None))
    return RedirectResponse(f"/contacts/import/{import_id}", status_code=303)


@router.get("/contacts/import/{import_id}/rejects.csv")
async def rejects(import_id: str, ctx: Viewer) -> Response:
    """The rows that were not imported, as they were in the file, with the reason."""
    row = await _owned(ctx, import_id)
    reasons = {int(e["row"]): str(e["error"]) for e in row.errors or []}
    path = Path(row.path)
    if not path.exists():
        raise ApiError(404, "The uploaded file is gone")
    await ctx.s.close()  # the download reads the file only; hold no connection

    name = Path(row.filename).stem[:80] or "contacts"
    headers = {**SECURITY_HEADERS,
               "Content-Disposition": f'attachment; filename="{name}-rejected.csv"'}
    return StreamingResponse(rejected_rows(path, reasons), media_type="text/csv",
                             headers=headers)


@router.post("/contacts/import/{import_id}/delete")
async def delete(import_id: str, ctx: Editor) -> Response:
    row = await _owned(ctx, import_id)
    if row.status == "running":
        raise ApiError(409, "The import is running; wait for it to finish")
    Path(row.path).unlink(missing_ok=True)
    await ctx.s.delete(row)
    return await ctx.done("/contacts/import")
