"""Call recordings in either store: the data directory, or an S3-compatible bucket (a real
HTTP S3 server: moto's, on 127.0.0.1). Streamed by ``GET /api/calls/{id}/recording`` with
the key or a signed link, deleted with the call's contact, expired by the retention sweep."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from callfleet import ids
from callfleet.app import create_app
from callfleet.calls.models import Call
from callfleet.calls.retention import sweep
from callfleet.clock import FixedClock
from callfleet.db.base import utcnow
from callfleet.recordings import LocalStore, S3Store
from tests.campaigns.helpers import us_phone
from tests.conftest import DbHandle, TeamCtx, make_company, make_settings, new_team

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

WAV = b"RIFF" + bytes(100_000) + b"end"  # longer than one streamed chunk
KEYS = {"recordings_s3_access_key_id": "testing", "recordings_s3_secret_access_key": "testing",
        "recordings_s3_region": "us-east-1"}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def bucket(s3_url: str) -> str:
    name = f"rec-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                 aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
async def store_app(request: pytest.FixtureRequest, database: DbHandle, tmp_path: Path,
                    s3_url: str) -> AsyncIterator[Any]:
    extra: dict[str, Any] = {"data_dir": tmp_path}
    if request.param == "s3":
        extra.update(recordings_s3_bucket=bucket(s3_url), recordings_s3_endpoint_url=s3_url,
                     **KEYS)
    app = create_app(make_settings(database.url, **extra), db=database.db, run_worker=False,
                     clock=FixedClock(datetime.now(UTC)))
    async with app.router.lifespan_context(app):
        yield app


async def recorded_call(app: Any, client: httpx.AsyncClient, team: TeamCtx,
                        ended_days_ago: float = 0.0) -> tuple[str, str]:
    company = await make_company(client, team)
    r = await client.post("/api/crm/contacts", headers=team.headers, json={
        "teamId": team.id, "companyId": company, "firstName": "Rec", "lastName": "Orded",
        "phone": us_phone(int(uuid.uuid4().int % 9000), area=415)})
    assert r.status_code == 201, r.text
    contact_id = r.json()["contact"]["id"]
    call_id = ids.new_id("call")
    ended = datetime.now(UTC) - timedelta(days=ended_days_ago)
    async with app.state.db.session() as s:
        s.add(Call(id=call_id, team_id=team.id, direction="outbound", contact_id=contact_id,
                   from_number="+14155550100", to_number="+14155550101", status="ended",
                   outcome="answered", started_at=ended, ended_at=ended, messages=[],
                   analysis={}, call_metadata={},
                   recording_url=f"/api/calls/{call_id}/recording",
                   created_at=utcnow(), updated_at=utcnow()))
        await s.commit()
    await app.state.recordings.save(call_id, WAV)
    return call_id, contact_id


async def stored(app: Any, call_id: str) -> bytes | None:
    chunks = await app.state.recordings.open(call_id)
    if chunks is None:
        return None
    return b"".join([c async for c in chunks])


async def test_the_recording_streams_from_the_store_with_the_key_or_a_signed_link(
        store_app: Any, database: DbHandle) -> None:
    team = await new_team(database, "Rec")
    other = await new_team(database, "Other")
    transport = httpx.ASGITransport(app=store_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        call_id, _ = await recorded_call(store_app, client, team)
        r = await client.get(f"/api/calls/{call_id}/recording", headers=team.headers)
        assert r.status_code == 200 and r.content == WAV
        assert r.headers["content-type"] == "audio/wav"
        link = (await client.get(f"/api/calls/{call_id}/recording-url",
                                 headers=team.headers)).json()["url"]
        assert (await client.get(link)).content == WAV
        assert (await client.get(link.replace("signature=", "signature=0"))).status_code == 401
        assert (await client.get(f"/api/calls/{call_id}/recording",
                                 headers=other.headers)).status_code == 403
    if isinstance(store_app.state.recordings, S3Store):
        s3 = store_app.state.recordings
        head = s3.client.head_object(Bucket=s3.bucket, Key=f"recordings/{call_id}.wav")
        assert head["ContentLength"] == len(WAV)
    else:
        assert isinstance(store_app.state.recordings, LocalStore)


async def test_deleting_the_contact_deletes_its_calls_recordings(
        store_app: Any, database: DbHandle) -> None:
    team = await new_team(database, "Rec")
    transport = httpx.ASGITransport(app=store_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        call_id, contact_id = await recorded_call(store_app, client, team)
        kept_id, _ = await recorded_call(store_app, client, team)
        r = await client.delete(f"/api/crm/contacts/{contact_id}", headers=team.headers)
        assert r.status_code == 200, r.text
        assert await stored(store_app, call_id) is None
        assert await stored(store_app, kept_id) == WAV  # another contact's call keeps its own
        r = await client.get(f"/api/calls/{call_id}", headers=team.headers)
        assert r.json()["call"]["recording_url"] is None
        r = await client.get(f"/api/calls/{call_id}/recording", headers=team.headers)
        assert r.status_code == 404


async def test_the_retention_sweep_deletes_recordings_older_than_the_teams_days(
        store_app: Any, database: DbHandle) -> None:
    team = await new_team(database, "Rec")
    transport = httpx.ASGITransport(app=store_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.patch("/api/team", headers=team.headers,
                               json={"settings": {"recordingRetentionDays": 30}})
        assert r.status_code == 200 and r.json()["team"]["settings"][
            "recording_retention_days"] == 30
        old, _ = await recorded_call(store_app, client, team, ended_days_ago=31)
        young, _ = await recorded_call(store_app, client, team, ended_days_ago=29)
        assert await sweep(store_app.state.db, store_app.state.recordings,
                           datetime.now(UTC), default_days=0) >= 1
        assert await stored(store_app, old) is None
        assert await stored(store_app, young) == WAV
        r = await client.get(f"/api/calls/{old}", headers=team.headers)
        assert r.json()["call"]["recording_url"] is None
        # Without a team setting the deployment's default applies (0: keep forever).
        r = await client.patch("/api/team", headers=team.headers,
                               json={"settings": {"recordingRetentionDays": None}})
        assert r.status_code == 200
        assert await sweep(store_app.state.db, store_app.state.recordings,
                           datetime.now(UTC) + timedelta(days=365), default_days=0) == 0
        assert await stored(store_app, young) == WAV
