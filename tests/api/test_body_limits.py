"""Body limits are enforced while the body streams in, per route (api/limits.py).

The request bodies here are async generators, so httpx's ASGI transport hands the app one
chunk per ``receive`` and sends no Content-Length (a chunked upload); ``Upload.sent`` counts
what the app actually pulled, which is how "stops reading at the limit" is checked. The
limits are made small for these tests (``small_limits``) so no test moves megabytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import TeamCtx

KB = 1024
JSON_LIMIT, IMPORT_LIMIT, DNC_LIMIT = 64 * KB, 256 * KB, 128 * KB
CHUNK = 8 * KB


@pytest.fixture
def small_limits(app: Any) -> Iterator[None]:
    before = app.state.settings
    app.state.settings = before.model_copy(update={
        "max_body_bytes": JSON_LIMIT, "import_max_bytes": IMPORT_LIMIT,
        "dnc_import_max_bytes": DNC_LIMIT})
    try:
        yield
    finally:
        app.state.settings = before


pytestmark = pytest.mark.usefixtures("small_limits")


class Upload:
    """``data`` as a chunked body; ``sent`` is how much of it the app has read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), CHUNK):
            piece = self.data[i:i + CHUNK]
            self.sent += len(piece)
            yield piece


def json_body(team: TeamCtx, size: int) -> bytes:
    return json.dumps({"teamId": team.id, "name": "Big", "padding": "x" * size}).encode()


def csv_body(rows: int) -> bytes:
    lines = ["First Name,Last Name,Phone"] + [
        f"Ann{i},Lee,+1212555{i % 10000:04d}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def assert_413(r: httpx.Response, limit: int, upload: Upload | None = None) -> None:
    assert r.status_code == 413, r.text
    assert r.json() == {"success": False, "error": "Request body too large",
                        "details": {"body": f"must be at most {limit // KB} KB"}}
    if upload is not None:  # stopped reading at the limit, not at the end of the body
        assert upload.sent <= limit + CHUNK < len(upload.data), (upload.sent, limit)


async def post(client: httpx.AsyncClient, team: TeamCtx, url: str, upload: Upload,
               ctype: str, method: str = "POST") -> httpx.Response:
    return await client.request(method, url, content=upload, headers={
        **team.headers, "Content-Type": ctype})


async def test_json_route_stops_reading_a_chunked_body_at_its_limit(
        client: httpx.AsyncClient, team: TeamCtx) -> None:
    up = Upload(json_body(team, 4 * JSON_LIMIT))
    assert_413(await post(client, team, "/api/crm/companies", up, "application/json"),
               JSON_LIMIT, up)
    ok = Upload(json_body(team, JSON_LIMIT // 2))
    r = await post(client, team, "/api/crm/companies", ok, "application/json")
    assert r.status_code == 201, r.text


async def test_declared_length_over_the_limit_is_refused_before_reading(
        client: httpx.AsyncClient, team: TeamCtx) -> None:
    up = Upload(json_body(team, 2 * JSON_LIMIT))
    r = await client.post("/api/crm/companies", content=up, headers={
        **team.headers, "Content-Type": "application/json",
        "Content-Length": str(len(up.data))})
    assert_413(r, JSON_LIMIT)
    assert up.sent == 0


async def test_update_route_named_import_gets_the_json_limit(
        client: httpx.AsyncClient, team: TeamCtx) -> None:
    # PATCH /api/crm/contacts/{id} with the id "import": not the import route.
    up = Upload(json_body(team, 2 * JSON_LIMIT))
    r = await post(client, team, "/api/crm/contacts/import", up, "application/json", "PATCH")
    assert_413(r, JSON_LIMIT, up)


async def test_json_contact_import_answers_413_at_its_limit(
        client: httpx.AsyncClient, team: TeamCtx, company: str) -> None:
    contacts = [{"firstName": f"A{i}", "lastName": "B", "notes": "x" * 200}
                for i in range(1000)]
    up = Upload(json.dumps({"teamId": team.id, "companyId": company,
                            "contacts": contacts}).encode())
    r = await post(client, team, "/api/crm/contacts/import", up, "application/json")
    assert_413(r, JSON_LIMIT, up)


async def test_csv_contact_import_has_the_import_limit(
        client: httpx.AsyncClient, team: TeamCtx, company: str) -> None:
    url = f"/api/crm/contacts/import?teamId={team.id}&companyId={company}"
    fits = Upload(csv_body(5000))  # over the JSON limit, under the import limit
    assert JSON_LIMIT < len(fits.data) < IMPORT_LIMIT
    r = await post(client, team, url, fits, "text/csv")
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text
    up = Upload(csv_body(20000))
    assert_413(await post(client, team, url, up, "text/csv"), IMPORT_LIMIT, up)


async def test_multipart_contact_import_has_the_import_limit(
        client: httpx.AsyncClient, team: TeamCtx, company: str) -> None:
    boundary = "cfboundary"
    data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"c.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() + csv_body(20000) \
        + f"\r\n--{boundary}--\r\n".encode()
    up = Upload(data)
    r = await post(client, team, f"/api/crm/contacts/import?teamId={team.id}", up,
                   f"multipart/form-data; boundary={boundary}")
    assert_413(r, IMPORT_LIMIT, up)


async def test_dnc_import_stops_at_its_limit(client: httpx.AsyncClient, team: TeamCtx) -> None:
    reason = "asked not to be called again, " * 5
    numbers = "".join(f"+1212555{i:04d},{reason}\n" for i in range(600)).encode()
    assert JSON_LIMIT < len(numbers) < DNC_LIMIT
    r = await post(client, team, "/api/dnc/import", Upload(b"phone,reason\n" + numbers),
                   "text/csv")
    assert r.status_code == 200 and r.json()["imported"] == 600, r.text
    up = Upload(b"phone\n" + numbers * 4)
    assert_413(await post(client, team, "/api/dnc/import", up, "text/csv"), DNC_LIMIT, up)
