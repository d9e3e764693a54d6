"""A spoken call end to end through the real ``callfleet serve`` process.

The simulated carrier runs in audio mode (``CALLFLEET_SIM_AUDIO``): when the call is
answered it opens callfleet's media WebSocket as a carrier would, and its scripted callee
(a persona of ``conversation.personas``) talks: espeak-ng speaks its lines, faster-whisper
hears the assistant. callfleet's side runs the deterministic assistant on the local
providers (faster-whisper listening, Piper speaking). The call is placed through the API
and read back from it: the messages, what was heard, the latency, how it ended.
"""

from __future__ import annotations

import io
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("pipecat")
pytest.importorskip("piper")
pytest.importorskip("espeakng_loader")

from tests.e2e.test_server import Server, free_port
from tests.test_cli import cli_env, one_json, run_cli
from tests.voice.test_voice_process import VoiceProcess

FIRST = "Hi {{contact.first_name}}, this is Alex from Acme Solar."
QUESTION = "What is the best email address to send you the details?"


@pytest.fixture
def sim_mix() -> str:
    return "answer=100"


@pytest.fixture
def voice_server(tmp_path: Path, sim_mix: str) -> Iterator[tuple[Server, dict[str, str]]]:
    port = free_port()
    env = cli_env(tmp_path / "data", CALLFLEET_SIM_AUDIO="true",
                  CALLFLEET_SIM_MIX=sim_mix, CALLFLEET_SIM_INVALID_PERCENT="0",
                  CALLFLEET_LEGAL_HOURS_START="00:00", CALLFLEET_LEGAL_HOURS_END="23:59",
                  CALLFLEET_VOICE_URL=f"ws://127.0.0.1:{port}", CALLFLEET_LOG_LEVEL="INFO",
                  CALLFLEET_RATE_LIMIT_PER_MINUTE="0", HF_HUB_OFFLINE="1")
    server = Server(env, tmp_path, "127.0.0.1", port).start()
    try:
        server.wait_ready()
        yield server, env
    finally:
        server.stop()


def place_call(http: httpx.Client, team_id: str, **assistant: Any) -> str:
    """An assistant on the local speech providers, a number, a contact; one call placed."""
    # The test calls New York numbers at whatever hour it runs: informational calls, exempt
    # from the telemarketing calling hours once the team's owner says so (docs/compliance.md).
    http.patch("/api/compliance/settings",
               json={"timeRulesForAllPurposes": False}).raise_for_status()
    a = http.post("/api/assistants", json={
        "teamId": team_id, "name": "Alex", "firstMessage": FIRST,
        "voiceProvider": "local", "transcriberProvider": "local", "recordingEnabled": True,
        "infoExtraction": {"enabled": True, "fields": [
            {"key": "email", "type": "email", "target": "email",
             "description": "The email address the contact gave", "question": QUESTION}]},
        "endCall": {"enabled": True, "closingPhrase": "Thanks for your time. Goodbye!"},
        **assistant,
    }).json()["assistant"]
    offer = http.post("/api/phone-numbers/search", json={
        "filters": {"countryCode": "US", "areaCode": "415", "limit": 1}}).json()
    number = http.post("/api/phone-numbers/purchase", json={
        "teamId": team_id, "phoneNumber": offer["numbers"][0]["phoneNumber"]}
    ).json()["phone_number"]
    http.put(f"/api/assistants/{a['id']}/phone-numbers",
             json={"phoneNumberIds": [number["id"]]}).raise_for_status()
    company = http.post("/api/crm/companies", json={
        "teamId": team_id, "name": "Initech"}).json()["company"]
    # +14155550147 is the simulated network's gives_email persona.
    contact = http.post("/api/crm/contacts", json={
        "teamId": team_id, "companyId": company["id"], "firstName": "Sarah",
        "lastName": "Chen", "phone": "+14155550147"}).json()["contact"]
    r = http.post("/api/crm/calls", json={"assistantId": a["id"], "toNumber": contact["phone"],
                                          "contactId": contact["id"]})
    assert r.status_code == 201, r.text
    return str(r.json()["call"]["id"])


def wait_call(http: httpx.Client, call_id: str, done: Any, seconds: float = 150
              ) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    call: dict[str, Any] = {}
    while time.monotonic() < deadline:
        call = http.get(f"/api/calls/{call_id}").json()["call"]
        if done(call):
            break
        time.sleep(0.5)
    return call


def test_a_spoken_call_through_the_simulated_carriers_media_stream(
        voice_server: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, env = voice_server
    team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "Voice", "--json").stdout)
    with httpx.Client(base_url=server.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {team['api_key']}"}) as http:
        call_id = place_call(http, team["team_id"])
        call = wait_call(http, call_id, lambda c: c["status"] == "ended")
        log = server.log()
        assert call.get("status") == "ended", log[-4000:]
        # The recording: both sides, with the key or a signed link, nothing without either.
        assert call["recording_url"] == f"/api/calls/{call_id}/recording"
        wav = http.get(f"/api/calls/{call_id}/recording")
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        link = http.get(f"/api/calls/{call_id}/recording-url").json()["url"]
        with httpx.Client(timeout=30) as anonymous:
            assert anonymous.get(link).content == wav.content
            assert anonymous.get(link.replace("signature=", "signature=0")).status_code == 401
            assert anonymous.get(f"{server.base_url}/api/calls/{call_id}/recording"
                                 ).status_code == 401
    with wave.open(io.BytesIO(wav.content)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        seconds = w.getnframes() / 8000
    assert seconds > 5 and abs(seconds - float(call["duration_seconds"])) < 5, seconds
    messages = call["messages"]
    assert isinstance(messages, list) and messages, log[-4000:]
    # The first message, rendered for the contact, was spoken and heard to the end.
    assert messages[0]["role"] == "assistant"
    assert messages[0]["text"] == "Hi Sarah, this is Alex from Acme Solar."
    users = [m for m in messages if m["role"] == "user"]
    assert users and all(m["text"] for m in users), messages
    said = [m for m in messages if m["role"] == "assistant"]
    # The closing was said (the persona may hang up on its last word: then it is "planned").
    assert len(said) >= 2, messages
    assert said[-1].get("planned", said[-1]["text"]) == "Thanks for your time. Goodbye!", messages
    for m in said:  # a turn the callee talked over keeps what was heard and what was planned
        assert not m.get("interrupted") or m["planned"].startswith(m["text"].rstrip(".")), m
    assert call["outcome"] == "answered" and call["ended_reason"], call
    assert re.search(r"^AI: Hi Sarah", str(call["transcript"]))
    voice = call["metadata"]["voice"]  # type: ignore[index]
    assert voice["latency"] and all(
        row["callee_stopped_to_audio_ms"] > 0 for row in voice["latency"])
    assert {e["type"] for e in call["events"]} >= {"call.answered", "call.completed"}


def test_a_voice_process_killed_mid_call(tmp_path: Path) -> None:
    """The media process dies (SIGKILL) mid-conversation: the stream closes, the network
    ends the call, the attempt is recorded as failed with its reason, what was said so far
    stays on the call, and nothing re-dials it."""
    voice_port, api_port = free_port(), free_port()
    env = cli_env(tmp_path / "data", CALLFLEET_SIM_AUDIO="true",
                  CALLFLEET_SIM_MIX="answer=100", CALLFLEET_SIM_INVALID_PERCENT="0",
                  CALLFLEET_LEGAL_HOURS_START="00:00", CALLFLEET_LEGAL_HOURS_END="23:59",
                  CALLFLEET_VOICE_URL=f"ws://127.0.0.1:{voice_port}",
                  CALLFLEET_RATE_LIMIT_PER_MINUTE="0", HF_HUB_OFFLINE="1")
    api = Server(env, tmp_path, "127.0.0.1", api_port).start()
    voice = VoiceProcess(env, tmp_path, "127.0.0.1", voice_port)
    try:
        api.wait_ready()
        voice.start().wait_ready()
        team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "Kill",
                                "--json").stdout)
        with httpx.Client(base_url=api.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {team['api_key']}"}) as http:
            call_id = place_call(http, team["team_id"])
            talking = wait_call(http, call_id, lambda c: any(
                m["role"] == "user" for m in c["messages"]) or c["status"] == "ended")
            assert talking["status"] == "in_progress", (talking, voice.log()[-3000:])
            assert voice.proc is not None
            voice.proc.kill()
            voice.proc.wait(timeout=10)
            call = wait_call(http, call_id, lambda c: c["status"] == "ended", seconds=60)
            assert call["status"] == "ended", api.log()[-3000:]
            assert (call["outcome"], call["ended_reason"]) == ("failed", "voice_process_lost")
            assert call["messages"][:len(talking["messages"])] == talking["messages"]
            assert call["transcript"].startswith("AI: Hi Sarah")
            time.sleep(2)  # a blind re-dial would show up as a second call by now
            calls = http.get("/api/calls", params={"limit": "100"}).json()["calls"]
            assert [c["id"] for c in calls] == [call_id]
    finally:
        if voice.proc is not None and voice.proc.poll() is None:
            voice.proc.kill()
        api.stop()


VOICEMAIL = "Hi {{contact.first_name}}, this is Alex from Acme Solar. Please call us back."


@pytest.mark.parametrize("sim_mix", ["voicemail=100"])
def test_a_voicemail_left_after_the_beep_through_the_media_stream(
        voice_server: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    """The simulated callee is an answering machine (greeting, beep); the simulated
    network's AMD says "machine" through the carrier-event path. The assistant never
    pitches: it waits for the beep, leaves the rendered voicemail message, hangs up; the
    attempt is a voicemail with a message left."""
    server, env = voice_server
    team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "VM", "--json").stdout)
    with httpx.Client(base_url=server.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {team['api_key']}"}) as http:
        call_id = place_call(http, team["team_id"], voicemailAction="leave_message",
                             voicemailMessage=VOICEMAIL, voicemailDetectionEnabled=True)
        call = wait_call(http, call_id, lambda c: c["status"] == "ended")
    log = server.log()
    assert call.get("status") == "ended", log[-4000:]
    assert (call["outcome"], call["ended_reason"]) == ("voicemail", "voicemail"), call
    meta = call["metadata"]
    assert meta["voicemail"] is True and meta["voicemail_left"] is True, meta
    assert meta["answered_by"]["answered_by"] == "machine"
    said = [m["text"] for m in call["messages"] if m["role"] == "assistant"]
    assert said == ["Hi Sarah, this is Alex from Acme Solar. Please call us back."], said
    events = {e["type"]: e["time"] for e in meta["voice"]["events"]}
    assert events["beep"] <= events["voicemail_message"], events
    assert meta["voice"]["goodbye_confirmed"] is True  # the message played to its end
