"""An assistant's live-voice settings: stored, returned with defaults, and bad values are a
400 naming the field."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from callfleet.teams.models import Team
from tests.conftest import DbHandle, TeamCtx


async def test_voice_settings_round_trip_with_defaults(client: httpx.AsyncClient,
                                                       team: TeamCtx) -> None:
    r = await client.post("/api/assistants", json={
        "teamId": team.id, "name": "Voice", "voiceProvider": "OpenAI",
        "voiceBaseUrl": "https://speech.example.com/v1", "transcriberProvider": "local",
        "interruptionSensitivity": "high", "endOfTurnSeconds": 0.8,
        "idlePrompt": "  Hello,   are you there? "}, headers=team.headers)
    assert r.status_code == 201, r.text
    a = r.json()["assistant"]
    assert (a["voice_provider"], a["transcriber_provider"]) == ("openai", "local")
    assert a["voice_base_url"] == "https://speech.example.com/v1"
    assert (a["interruption_sensitivity"], a["end_of_turn_seconds"]) == ("high", 0.8)
    assert a["idle_prompt"] == "Hello, are you there?"
    assert (a["silence_timeout_seconds"], a["max_call_seconds"]) == (10.0, 600.0)
    assert a["transcriber_base_url"] is None
    r = await client.patch(f"/api/assistants/{a['id']}", json={
        "maxCallSeconds": 120, "endOfTurnSeconds": None}, headers=team.headers)
    a = r.json()["assistant"]
    assert (a["max_call_seconds"], a["end_of_turn_seconds"]) == (120.0, 0.5)
    assert a["interruption_sensitivity"] == "high"  # untouched keys stay


@pytest.mark.parametrize(("body", "field"), [
    ({"voiceProvider": "acme-tts"}, "voiceProvider"),
    ({"transcriberProvider": "cartesia"}, "transcriberProvider"),
    ({"interruptionSensitivity": "extreme"}, "interruptionSensitivity"),
    ({"endOfTurnSeconds": 0.05}, "endOfTurnSeconds"),
    ({"silenceTimeoutSeconds": 500}, "silenceTimeoutSeconds"),
    ({"maxCallSeconds": "long"}, "maxCallSeconds"),
    ({"voiceBaseUrl": "ftp://example.com"}, "voiceBaseUrl"),
    ({"transcriberBaseUrl": "not a url"}, "transcriberBaseUrl"),
    ({"transcriberBaseUrl": "http://10.0.0.5/v1"}, "transcriberBaseUrl"),
    ({"voiceBaseUrl": "http://[::ffff:127.0.0.1]/v1"}, "voiceBaseUrl"),
])
async def test_bad_voice_settings_are_400_naming_the_field(
        client: httpx.AsyncClient, team: TeamCtx, body: dict[str, object], field: str) -> None:
    r = await client.post("/api/assistants", json={"teamId": team.id, "name": "V", **body},
                          headers=team.headers)
    assert r.status_code == 400, r.text
    assert field in r.text


async def test_team_speech_keys_are_write_only_and_reach_the_call_encrypted(
        client: httpx.AsyncClient, team: TeamCtx, database: DbHandle) -> None:
    h = team.headers
    for bad in ("not a url", "http://127.0.0.1:8880/v1", "http://169.254.169.254/v1"):
        r = await client.patch("/api/team", headers=h, json={"settings": {
            "speechBaseUrl": bad}})
        assert r.status_code == 400 and "speechBaseUrl" in r.text, bad
    r = await client.patch("/api/team", headers=h, json={"settings": {
        "speechBaseUrl": "https://speech.example.com/v1", "speechApiKey": "sk-speech-secret",
        "deepgramApiKey": "dg-secret"}})
    assert r.status_code == 200, r.text
    s = r.json()["team"]["settings"]
    assert s["speech_api_key_set"] and s["deepgram_api_key_set"]
    assert not s["cartesia_api_key_set"] and "secret" not in r.text
    async with database.db.session(write=False) as session:
        stored = (await session.get(Team, team.id)).settings
    assert "sk-speech-secret" not in str(stored)
    # What a voice call of an assistant with hosted speech is built from.
    voice_settings = pytest.importorskip("callfleet.voice.planner").voice_settings
    assistant = SimpleNamespace(voice_provider="openai", voice_model="tts-1", voice_id="alloy",
                                transcriber_provider="deepgram", transcriber_model=None,
                                language="en", voice_options={"end_of_turn_seconds": 0.8})
    settings = voice_settings(assistant, stored)
    assert (settings.tts.provider, settings.tts.base_url, settings.tts.api_key) == (
        "openai", "https://speech.example.com/v1", "sk-speech-secret")
    assert (settings.stt.provider, settings.stt.api_key) == ("deepgram", "dg-secret")
    assert settings.end_of_turn_seconds == 0.8 and settings.vad_stop() == 0.2
    assert "secret" not in repr(settings)  # keys are kept out of reprs (and so of logs)
