"""Where call recordings live, and for how long.

Two stores behind one interface (``RecordingStore``):

* ``LocalStore`` (the default): ``<data_dir>/recordings/<call id>.wav``, written atomically
  (a partial file is never served);
* ``S3Store``: an S3-compatible bucket (AWS S3, MinIO, R2, ...) when
  ``CALLFLEET_RECORDINGS_S3_BUCKET`` is set, through boto3 (the ``s3`` extra), objects
  ``<prefix><call id>.wav``; every call runs in a worker thread so the event loop never
  waits on the network.

The voice runtime saves a recording when the call ends; ``GET /api/calls/{id}/recording``
streams it from either store (to the team's API key or a signed link); deleting a contact
deletes its calls' recordings; ``sweep`` deletes recordings older than the retention
(``CALLFLEET_RECORDING_RETENTION_DAYS`` or the team's ``recordingRetentionDays``). The
bucket's keys are never logged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import structlog

from callfleet.config import Settings

log = structlog.get_logger("callfleet.recordings")

SUFFIX = ".wav"
CHUNK = 64 * 1024


def _checked(call_id: str) -> str:
    if not call_id or len(call_id) > 64 or not call_id.replace("_", "").isalnum():
        raise ValueError("not a call id")
    return call_id


class RecordingStore(Protocol):
    name: str

    async def save(self, call_id: str, data: bytes) -> None: ...

    async def open(self, call_id: str) -> AsyncIterator[bytes] | None:
        """The recording's bytes in chunks, or None when there is none."""
        ...

    async def delete(self, call_id: str) -> None: ...


# ---------------------------------------------------------------- the data directory


def recordings_dir(data_dir: Path) -> Path:
    return data_dir / "recordings"


def recording_path(data_dir: Path, call_id: str) -> Path:
    return recordings_dir(data_dir) / f"{_checked(call_id)}{SUFFIX}"


def save_recording(data_dir: Path, call_id: str, data: bytes) -> Path:
    path = recording_path(data_dir, call_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def delete_recording(data_dir: Path, call_id: str) -> None:
    try:
        recording_path(data_dir, call_id).unlink()
    except (FileNotFoundError, ValueError):
        pass


class LocalStore:
    name = "local"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def save(self, call_id: str, data: bytes) -> None:
        await asyncio.to_thread(save_recording, self.data_dir, call_id, data)

    async def open(self, call_id: str) -> AsyncIterator[bytes] | None:
        try:
            path = recording_path(self.data_dir, call_id)
            f = path.open("rb")
        except (FileNotFoundError, ValueError):
            return None

        async def chunks() -> AsyncIterator[bytes]:
            with f:
                while data := await asyncio.to_thread(f.read, CHUNK):
                    yield data
        return chunks()

    async def delete(self, call_id: str) -> None:
        await asyncio.to_thread(delete_recording, self.data_dir, call_id)


# ---------------------------------------------------------------- S3-compatible


class S3Store:
    name = "s3"

    def __init__(self, bucket: str, *, prefix: str = "recordings/",
                 endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        if client is None:
            try:
                import boto3  # the ``s3`` extra
                from botocore.config import Config
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError("recordings in S3 need boto3: pip install "
                                   "'callfleet[s3]'") from exc
            client = boto3.client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None,
                aws_access_key_id=access_key_id or None,
                aws_secret_access_key=secret_access_key or None,
                config=Config(retries={"max_attempts": 3, "mode": "standard"},
                              connect_timeout=5, read_timeout=30))
        self.client = client

    def key(self, call_id: str) -> str:
        return f"{self.prefix}{_checked(call_id)}{SUFFIX}"

    async def save(self, call_id: str, data: bytes) -> None:
        await asyncio.to_thread(self.client.put_object, Bucket=self.bucket,
                                Key=self.key(call_id), Body=data, ContentType="audio/wav")

    async def open(self, call_id: str) -> AsyncIterator[bytes] | None:
        try:
            key = self.key(call_id)
        except ValueError:
            return None
        try:
            got = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        body = got["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while data := await asyncio.to_thread(body.read, CHUNK):
                    yield data
            finally:
                body.close()
        return chunks()

    async def delete(self, call_id: str) -> None:
        try:
            key = self.key(call_id)
        except ValueError:
            return
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)


async def delete_recordings(store: RecordingStore, call_ids: list[str]) -> int:
    """Delete these calls' recordings (already unlinked from their calls); a failure is
    logged and the rest go on. Returns how many were deleted."""
    done = 0
    for call_id in call_ids:
        try:
            await store.delete(call_id)
            done += 1
        except Exception:
            log.exception("recording_delete_failed", call_id=call_id, store=store.name)
    return done


def recording_store(settings: Settings) -> RecordingStore:
    """The deployment's store: S3 when a bucket is configured, else the data directory."""
    if settings.recordings_s3_bucket:
        return S3Store(settings.recordings_s3_bucket, prefix=settings.recordings_s3_prefix,
                       endpoint_url=settings.recordings_s3_endpoint_url,
                       region=settings.recordings_s3_region,
                       access_key_id=settings.recordings_s3_access_key_id,
                       secret_access_key=settings.recordings_s3_secret_access_key)
    return LocalStore(settings.data_dir)
