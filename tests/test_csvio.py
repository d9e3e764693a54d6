"""One CSV decoding path (callfleet.csvio) for the contact and do-not-call imports:
Latin-1/Windows-1252, UTF-8 with and without a BOM, UTF-16 with a BOM and a declared charset
all read the same text, in the module and through both import endpoints."""

from __future__ import annotations

import io

import httpx
import pytest

from callfleet import csvio
from tests.conftest import TeamCtx

TEXT = "phone,reason\n+12125550161,José\n+12125550162,Zoë Ñúñez\n"
ENCODINGS = [
    ("latin-1", TEXT.encode("latin-1"), None),
    ("cp1252", TEXT.replace("José", "José – “quoted”").encode("cp1252"), None),
    ("utf-8", TEXT.encode("utf-8"), None),
    ("utf-8 BOM", TEXT.encode("utf-8-sig"), None),
    ("utf-16 LE BOM", TEXT.encode("utf-16"), None),
    ("utf-16 BE BOM", b"\xfe\xff" + TEXT.encode("utf-16-be"), None),
    ("declared iso-8859-15", TEXT.encode("iso-8859-15"), "iso-8859-15"),
]


def expected(name: str) -> str:
    return TEXT.replace("José", "José – “quoted”") if name == "cp1252" else TEXT


@pytest.mark.parametrize(("name", "data", "charset"), ENCODINGS)
def test_every_encoding_reads_the_same_text(name: str, data: bytes, charset: str | None
                                            ) -> None:
    assert "".join(csvio.text_lines(io.BytesIO(data), charset)) == expected(name)


def test_a_stray_byte_in_a_utf8_file_costs_only_its_line() -> None:
    data = "a,é\n".encode() + b"b,\xe9\n" + "c,ü\n".encode()
    assert list(csvio.text_lines(io.BytesIO(data))) == ["a,é\n", "b,é\n", "c,ü\n"]


def test_unknown_charset_is_refused_at_once() -> None:
    with pytest.raises(csvio.UnknownCharset, match="no-such"):
        csvio.text_lines(io.BytesIO(b"x"), "no-such-charset")
    assert csvio.charset_of('text/csv; Charset="latin-1"') == "latin-1"
    assert csvio.charset_of("text/csv") is None


@pytest.mark.parametrize(("name", "data", "charset"), ENCODINGS)
async def test_dnc_import_and_contact_import_decode_alike(
        client: httpx.AsyncClient, team: TeamCtx, company: str, name: str, data: bytes,
        charset: str | None) -> None:
    ctype = f"text/csv; charset={charset}" if charset else "text/csv"
    r = await client.post("/api/dnc/import", content=data,
                          headers={**team.headers, "Content-Type": ctype})
    assert r.status_code == 200 and r.json()["imported"] == 2, r.text
    r = await client.get("/api/dnc", params={"search": "555016"}, headers=team.headers)
    reasons = sorted(e["reason"] for e in r.json()["entries"])
    first = "José – “quoted”" if name == "cp1252" else "José"
    assert reasons == sorted([first, "Zoë Ñúñez"])
    # The contact import reads the same bytes (as names) the same way.
    contacts = expected(name).replace("phone,reason", "Phone,First Name").replace(
        "\n", ",Lee\n").replace("First Name,Lee", "First Name,Last Name")
    raw = contacts.encode("utf-16") if "utf-16" in name else contacts.encode(
        {"latin-1": "latin-1", "cp1252": "cp1252", "declared iso-8859-15": "iso-8859-15"}
        .get(name, "utf-8-sig" if "BOM" in name else "utf-8"))
    r = await client.post(f"/api/crm/contacts/import?teamId={team.id}&companyId={company}",
                          content=raw, headers={**team.headers, "Content-Type": ctype})
    assert r.status_code == 200 and r.json()["imported"] == 2, r.text
    r = await client.get(f"/api/crm/companies/{company}/contacts", headers=team.headers)
    names = sorted(c["first_name"] for c in r.json()["contacts"])
    assert names == sorted([first, "Zoë Ñúñez"])


@pytest.mark.parametrize("data", [b"+12125550199\rx\n", b"phone\n+12125550198\rx\n"])
async def test_a_dnc_file_the_csv_reader_cannot_read_is_a_400(
        client: httpx.AsyncClient, team: TeamCtx, data: bytes) -> None:
    """A bare carriage return inside an unquoted field (in the first row or a later one)."""
    r = await client.post("/api/dnc/import", content=data,
                          headers={**team.headers, "Content-Type": "text/csv"})
    assert r.status_code == 400, r.text
    assert "The CSV cannot be read" in r.json()["error"]
