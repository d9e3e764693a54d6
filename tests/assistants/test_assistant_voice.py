"""An assistant's live-voice settings: stored, returned with defaults, and bad values are a
400 naming the field."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TeamCtx


async def test_voice_settings_round_trip_with_defaults(client: httpx.AsyncClient,
                                                       team: TeamCtx) -> None:
    r = await client.post("/api/assistants", json={
        "teamId": team.id, "name": "Voice", "voiceProvider": "OpenAI",
        "voiceBaseUrl": "http://127.0.0.1:8880/v1", "transcriberProvider": "local",
        "interruptionSensitivity": "high", "endOfTurnSeconds": 0.8,
        "idlePrompt": "  Hello,   are you there? "}, headers=team.headers)
    assert r.status_code == 201, r.text
    a = r.json()["assistant"]
    assert (a["voice_provider"], a["transcriber_provider"]) == ("openai", "local")
    assert a["voice_base_url"] == "http://127.0.0.1:8880/v1"
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
])
async def test_bad_voice_settings_are_400_naming_the_field(
        client: httpx.AsyncClient, team: TeamCtx, body: dict[str, object], field: str) -> None:
    r = await client.post("/api/assistants", json={"teamId": team.id, "name": "V", **body},
                          headers=team.headers)
    assert r.status_code == 400, r.text
    assert field in r.text
