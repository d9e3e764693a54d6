"""Telnyx media streaming through the media endpoint: the carrier's framing (``stream_id``,
``media_format`` PCMU, ``{"event": "clear"}``, marks without a stream id), the assistant's
audio heard at the carrier, marks echoed after playout, and the callee's ``stop``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("pipecat")

import uvicorn
from cryptography.fernet import Fernet

from callfleet.secrets import SecretBox
from callfleet.voice.framing import FRAMINGS, HandshakeError
from callfleet.voice.mediaclient import CarrierMediaClient, Hangup, Wait
from callfleet.voice.routes import voice_app
from callfleet.voice.scripted import ScriptedPlanner
from callfleet.voice.session import CallPlan
from callfleet.voice.settings import Speech, VoiceSettings
from callfleet.voice.tokens import stream_path
from tests.voice.test_voice_calls import LINES

KEY = SecretBox([Fernet.generate_key()])


def test_telnyx_start_is_parsed_and_foreign_codecs_are_refused() -> None:
    framing = FRAMINGS["telnyx"]
    assert framing.start({"event": "connected", "version": "1.0.0"}) is None
    start = framing.start({"event": "start", "sequence_number": "1", "stream_id": "s-1",
                           "start": {"call_control_id": "v3:abc", "client_state": "Y2FsbA==",
                                     "media_format": {"encoding": "PCMU",
                                                      "sample_rate": 8000, "channels": 1}}})
    assert start is not None and start.carrier == "telnyx" and start.stream_id == "s-1"
    assert start.call_sid == "v3:abc" and start.parameters["client_state"] == "Y2FsbA=="
    with pytest.raises(HandshakeError):
        framing.start({"event": "start", "stream_id": "s", "start": {
            "media_format": {"encoding": "OPUS", "sample_rate": 16000}}})
    with pytest.raises(HandshakeError):
        framing.start({"event": "start", "start": {}})
    assert framing.clear("s") == {"event": "clear"}
    assert framing.mark("s", "cf-1") == {"event": "mark", "mark": {"name": "cf-1"}}


def plan(call_id: str, start: Any) -> CallPlan:
    settings = VoiceSettings(stt=Speech("fake", latency=0.1), tts=Speech("fake", latency=0.05),
                             end_of_turn_seconds=0.2, silence_timeout_seconds=1.0)
    return CallPlan(call_id, settings, LINES)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, ScriptedPlanner]]:
    planner = ScriptedPlanner(plan)
    app = voice_app(planner, capacity=4, box=KEY)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                       ws_per_message_deflate=False))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{port}", planner
    uv.should_exit = True
    await task


async def test_a_telnyx_stream_plays_the_assistant_and_confirms_playout(
        server: tuple[str, ScriptedPlanner]) -> None:
    base, planner = server
    silent = CarrierMediaClient(base + stream_path("telnyx", "silent_1", KEY), [],
                                framing="telnyx", max_seconds=30)
    gone = CarrierMediaClient(base + stream_path("telnyx", "gone_1", KEY),
                              [Wait(0.2), Hangup()], framing="telnyx", max_seconds=30)
    reports = await asyncio.gather(silent.run(), gone.run())
    for _ in range(250):
        if len(planner.records) >= 2:
            break
        await asyncio.sleep(0.02)
    r, rec = reports[0], planner.records["silent_1"]
    assert r.closed_by == "callfleet", r.error
    assert r.heard_seconds > 1.0  # the opening, the idle prompt and the goodbye were heard
    assert r.marks and all(m.startswith("cf-") for m in r.marks)
    assert rec["ended_reason"] == "silence_timeout" and rec["goodbye_confirmed"] is True
    assert reports[1].closed_by == "callee"
    assert planner.records["gone_1"]["ended_reason"] == "customer_ended_call"
