"""Reading uploaded CSV files as text: the one decoding path of every CSV import (contacts,
the do-not-call list, ``callfleet import``).

The encoding is decided from the first bytes and the declared charset: a UTF-8 BOM means
UTF-8, a UTF-16 BOM (either byte order) UTF-16, a declared charset other than UTF-8/ASCII is
used as declared; otherwise each line is read as UTF-8 and, when it is not valid UTF-8, as
Windows-1252 (a superset of Latin-1 for text: spreadsheets exported on Windows), so a stray
byte never fails a file and ``José`` stays ``José`` in either encoding.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import IO, Any

csv.field_size_limit(1_000_000)

_UTF8_NAMES = ("utf-8", "utf8", "us-ascii", "ascii")


class UnknownCharset(ValueError):
    """The declared charset is not an encoding Python knows."""


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, if any."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value:
            return value.strip().strip('"')
    return None


def encoding_of(stream: IO[bytes], charset: str | None) -> str | None:
    """The whole-file encoding (BOM or declared charset), or None for UTF-8 line by line
    with the Windows-1252 fallback. Leaves the stream at its start."""
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if charset and charset.lower().replace("_", "-") not in _UTF8_NAMES:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise UnknownCharset(f"Unknown charset {charset[:40]!r}") from None
        return charset
    return None


def text_lines(stream: IO[bytes], charset: str | None = None) -> Iterator[str]:
    """The lines of a seekable binary file as text (the encoding is decided at once: an
    unknown declared charset raises UnknownCharset here, not on the first line)."""
    encoding = encoding_of(stream, charset)
    if encoding:
        return io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")
    return _utf8_or_cp1252(stream)


def _utf8_or_cp1252(stream: IO[bytes]) -> Iterator[str]:
    for raw in stream:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield raw.decode("cp1252", errors="replace")


def reader(stream: IO[bytes], charset: str | None = None) -> Any:
    """``csv.reader`` over :func:`text_lines` (lenient quoting, 1 MB fields)."""
    return csv.reader(text_lines(stream, charset), strict=False)
