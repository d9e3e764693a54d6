"""``callfleet import FILE --team SLUG``: a contact CSV file into a team, from the shell.

The same importer as ``POST /api/crm/contacts/import`` (crm/importer.py: the same dedup,
``onDuplicate``, validation and batches), fed from the file on disk record by record, never
whole in memory, with a progress bar on stderr. Every rejected row is kept as (row number,
error) while the import runs; afterwards the file is read a second time to copy those rows,
as they were, into the rejects file with an ``error`` column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from sqlalchemy import or_, select

from callfleet.api.errors import ApiError
from callfleet.config import Settings
from callfleet.crm import importer
from callfleet.db.migrate import migrate
from callfleet.db.session import open_database
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal

PROGRESS_EVERY = 500  # rows between progress updates


@dataclass
class Outcome:
    result: importer.ImportResult
    rejects_written: int
    errors: dict[int, str]


def _with_progress(rows: Iterator[tuple[int, Any]], stream: IO[bytes], size: int,
                   progress: Progress, task: Any) -> Iterator[tuple[int, Any]]:
    """The rows, moving the bar (bytes read, rows seen) as the importer takes them."""
    count = 0
    for count, item in enumerate(rows, start=1):
        if count % PROGRESS_EVERY == 0:
            progress.update(task, completed=_position(stream), rows=count)
        yield item
    progress.update(task, completed=size, rows=count)


def _position(stream: IO[bytes]) -> int:
    try:
        return stream.tell()
    except (OSError, ValueError):  # closed by the text reader at the end of the file
        return 0


async def import_file(settings: Settings, path: Path, team_ref: str, *,
                      company_id: str | None, on_duplicate: str, charset: str | None,
                      rejects: Path | None, console: Console) -> Outcome:
    """Import ``path`` into the team with id or slug ``team_ref``; raises ApiError for what
    the API would refuse (unknown team or company, a file without name columns)."""
    db = open_database(settings.resolved_database_url(),
                       pool_size=importer.PG_BATCHES_IN_FLIGHT + 2)
    errors: dict[int, str] = {}
    try:
        await migrate(db)
        async with db.session(write=False) as s:
            team = (await s.execute(select(Team.id, Team.slug).where(
                or_(Team.id == team_ref, Team.slug == team_ref)))).first()
        if team is None:
            raise ApiError(404, f"No team with id or slug {team_ref!r}")
        imp = importer.ContactImporter(
            db, Principal(team.id, team.slug, "cli"), company_id=company_id,
            on_duplicate=on_duplicate, region=settings.default_region,
            batch_size=settings.import_batch_size, max_errors=settings.import_max_errors,
            on_error=errors.__setitem__)
        await imp.start()  # an unknown --company fails before reading the file
        size = os.path.getsize(path)
        columns = (TextColumn("[bold]importing"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TextColumn("{task.fields[rows]:,} rows"),
                   TimeElapsedColumn())
        # A local file, read record by record by the (synchronous) CSV reader.
        with open(path, "rb") as stream, Progress(  # noqa: ASYNC230
                *columns, console=console, transient=False) as progress:
            task = progress.add_task("import", total=size, rows=0)
            rows = importer.csv_rows(stream, charset)
            result = await imp.run(_with_progress(rows, stream, size, progress, task))
    finally:
        await db.dispose()
    written = write_rejects(path, charset, errors, rejects) if rejects else 0
    return Outcome(result, written, errors)


def write_rejects(path: Path, charset: str | None, errors: dict[int, str],
                  out: Path) -> int:
    """Copy the rejected records of ``path`` into ``out`` (UTF-8, the header plus
    ``error``), in file order; returns how many rows were written."""
    written = 0
    with open(path, "rb") as stream, open(out, "w", newline="", encoding="utf-8") as f:
        header, records = importer.csv_records(stream, charset)
        writer = csv.writer(f)
        writer.writerow([*header, "error"])
        for number, cells in records:
            error = errors.get(number)
            if error is None:
                continue
            row = cells if isinstance(cells, list) else [""] * len(header)
            writer.writerow([*row, error])
            written += 1
    return written
