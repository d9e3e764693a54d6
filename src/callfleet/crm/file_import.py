"""A contact CSV file on disk into a team (``callfleet import``).

The same importer as ``POST /api/crm/contacts/import`` (crm/importer.py: the same dedup,
``onDuplicate``, validation and batches), fed from the file record by record, never whole in
memory. Every rejected row is kept as (row number, error) while the import runs; afterwards
the file is read a second time to copy those rows, as they were, into the rejects file with
an ``error`` column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import or_, select

from callfleet.config import Settings
from callfleet.crm import importer
from callfleet.db.migrate import migrate
from callfleet.db.session import open_database
from callfleet.errors import ApiError
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal

PROGRESS_EVERY = 500  # rows between progress reports
Progress = Callable[[int, int], None]  # (bytes read, rows read)


@dataclass
class FileImport:
    result: importer.ImportResult
    errors: dict[int, str]  # every rejected row's first error, by row number
    rejects_written: int


def _reporting(rows: Iterator[tuple[int, Any]], stream: IO[bytes], size: int,
               progress: Progress) -> Iterator[tuple[int, Any]]:
    """The rows, reporting (bytes read, rows seen) as the importer takes them."""
    count = 0
    for count, item in enumerate(rows, start=1):
        if count % PROGRESS_EVERY == 0:
            progress(_position(stream), count)
        yield item
    progress(size, count)


def _position(stream: IO[bytes]) -> int:
    try:
        return stream.tell()
    except (OSError, ValueError):  # closed by the text reader at the end of the file
        return 0


async def import_file(settings: Settings, path: Path, team_ref: str, *,
                      company_id: str | None, on_duplicate: str, charset: str | None,
                      rejects: Path | None, progress: Progress | None = None) -> FileImport:
    """Import ``path`` into the team with id or slug ``team_ref`` on the database of
    ``settings`` (migrated first). Raises ApiError for what the API would refuse: an unknown
    team or company, a file without name columns, an unknown charset."""
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
            on_error=errors.setdefault)
        await imp.start()  # an unknown company fails before the file is read
        size = os.path.getsize(path)
        # A local file, read record by record by the (synchronous) CSV reader.
        with open(path, "rb") as stream:  # noqa: ASYNC230
            rows = importer.csv_rows(stream, charset)
            if progress is not None:
                rows = _reporting(rows, stream, size, progress)
            result = await imp.run(rows)
    finally:
        await db.dispose()
    written = write_rejects(path, charset, errors, rejects) if rejects else 0
    return FileImport(result, errors, written)


def write_rejects(path: Path, charset: str | None, errors: dict[int, str],
                  out: Path) -> int:
    """Copy the rejected records of ``path`` into ``out`` (UTF-8: the header plus an
    ``error`` column), in file order; returns how many rows were written."""
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
