"""``callfleet voice``: a process that serves the media WebSocket (and /health, /metrics),
stops promptly on SIGTERM when no call is running."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("pipecat")

from tests.e2e.test_server import Server, free_port
from tests.test_cli import cli_env, run_cli


class VoiceProcess(Server):
    def start(self) -> VoiceProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callfleet.cli", "voice", "--host", self.host,
                 "--port", str(self.port)],
                cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self


def test_voice_process_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = VoiceProcess(cli_env(tmp_path / "data", CALLFLEET_VOICE_MAX_CALLS="3"), tmp_path,
                        "127.0.0.1", free_port()).start()
    try:
        proc.wait_ready()
        metrics = httpx.get(f"{proc.base_url}/metrics", timeout=5).text
        assert "callfleet_voice_capacity 3.0" in metrics
        assert "callfleet_voice_active_calls 0.0" in metrics
        # A stream for a call that does not exist is refused (bad token: HTTP 403).
        r = httpx.get(f"{proc.base_url}/voice/twilio/call_x/{'0' * 64}",
                      headers={"Connection": "Upgrade", "Upgrade": "websocket",
                               "Sec-WebSocket-Version": "13",
                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, timeout=5)
        assert r.status_code == 403
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=20) == 0, proc.log()
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()


def test_voice_demo_places_spoken_calls_and_keeps_their_recordings(tmp_path: Path) -> None:
    """``callfleet demo --voice``: real spoken calls, offline, each with a transcript and a
    recording file whose path it prints."""
    pytest.importorskip("piper")
    proc = run_cli(tmp_path, cli_env(tmp_path / "data", HF_HUB_OFFLINE="1"), "demo",
                   "--voice", "1", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "AI: Hi" in proc.stdout
    recordings = list((tmp_path / "data" / "recordings").glob("call_*.wav"))
    assert len(recordings) == 1 and str(recordings[0]) in proc.stdout.replace("\n", "")
