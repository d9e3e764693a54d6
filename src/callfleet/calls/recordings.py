"""Where call recordings live: ``<data_dir>/recordings/<call id>.wav``, written atomically
(a partial file is never served). The voice runtime writes them; the calls API streams them
(``GET /api/calls/{id}/recording``) to the team's API key or to a signed link."""

from __future__ import annotations

import os
from pathlib import Path

SUFFIX = ".wav"


def recordings_dir(data_dir: Path) -> Path:
    return data_dir / "recordings"


def recording_path(data_dir: Path, call_id: str) -> Path:
    if not call_id.replace("_", "").isalnum():
        raise ValueError("not a call id")
    return recordings_dir(data_dir) / f"{call_id}{SUFFIX}"


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
