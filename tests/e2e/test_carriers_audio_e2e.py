"""Real audio through each carrier's protocol: ``callfleet serve`` (configured only through
the documented ``CALLFLEET_*`` variables) against the fake carriers run as their own process
with ``--media``: every answered call that talks opens callfleet's media WebSocket in its
carrier's framing (Twilio Media Streams; Telnyx RTP streaming, PCMU), speaks with espeak-ng and
listens; callfleet runs the deterministic assistant on local speech (faster-whisper, espeak-ng).

Per carrier: a campaign of 20 contacts (people who answer and say goodbye, people who opt out,
answering machines the carrier's AMD detects, busy, no answer) dialed to completion; then
calls *to* the number: from a known contact and from an unknown number (who becomes a
contact), answered by the number's assistant over a media stream, listed with
``direction: inbound``; and a number without an assistant, which says so and hangs up.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("pipecat")
pytest.importorskip("espeakng_loader")
pytest.importorskip("faster_whisper")

from tests.conversation.fake_llm import FakeLLM
from tests.e2e.test_carriers_e2e import poll, running_fakes
from tests.e2e.test_server import Server, free_port
from tests.test_cli import cli_env, one_json, run_cli

PLAN = {"answer": 6, "opt_out": 3, "voicemail": 3, "busy": 4, "no_answer": 4}
EXPECTED = {"answer": "answered", "opt_out": "opted_out", "voicemail": "voicemail",
            "busy": "busy", "no_answer": "no_answer"}


@pytest.fixture
def media_carriers(tmp_path: Path) -> Iterator[str]:
    with running_fakes(tmp_path, "--media") as url:
        yield url


def _assistant(api: httpx.Client, team_id: str, **extra: Any) -> str:
    body = {"teamId": team_id, "templateId": "custom", "voiceProvider": "local",
            "voiceId": "espeak", "transcriberProvider": "local",
            "infoExtraction": {"enabled": False, "fields": []},
            "endCall": {"enabled": True, "closingPhrase": "Thanks, goodbye!"}, **extra}
    r = api.post("/api/assistants", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["assistant"]["id"])


def _number(api: httpx.Client, fake: httpx.Client, team_id: str, provider: str,
            number: str) -> str:
    fake.post("/_fake/stock", json={"carrier": provider, "numbers": [number]})
    r = api.post("/api/phone-numbers/purchase",
                 json={"teamId": team_id, "phoneNumber": number, "provider": provider})
    assert r.status_code == 201, r.text
    return str(r.json()["phone_number"]["id"])


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    """The transferring assistant's model: forwards the call to Sales once the callee
    spoke."""
    fake = FakeLLM().start()

    def policy(body: dict[str, Any]) -> dict[str, Any]:
        if any(m["role"] == "tool" for m in body["messages"]):
            return {"text": ""}
        if any(m["role"] == "user" for m in body["messages"]):
            return {"tool": "transfer_call", "args": {"department": "Sales"}}
        return {"text": "Hello."}

    fake.policy = policy
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
def test_campaign_and_inbound_calls_with_real_audio(tmp_path: Path, media_carriers: str,
                                                     llm: FakeLLM, provider: str) -> None:
    config = httpx.get(f"{media_carriers}/_fake/config").json()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = cli_env(
        tmp_path / "data", CALLFLEET_CARRIER=provider, CALLFLEET_PUBLIC_URL=public,
        CALLFLEET_TWILIO_ACCOUNT_SID=config["twilio_account_sid"],
        CALLFLEET_TWILIO_AUTH_TOKEN=config["twilio_auth_token"],
        CALLFLEET_TWILIO_API_BASE_URL=media_carriers,
        CALLFLEET_TELNYX_API_KEY=config["telnyx_api_key"],
        CALLFLEET_TELNYX_PUBLIC_KEY=config["telnyx_public_key"],
        CALLFLEET_TELNYX_CONNECTION_ID=config["telnyx_connection_id"],
        CALLFLEET_TELNYX_API_BASE_URL=f"{media_carriers}/v2",
        CALLFLEET_TWILIO_CALLS_PER_SECOND="20", CALLFLEET_TELNYX_CALLS_PER_SECOND="20",
        CALLFLEET_LEGAL_HOURS_START="00:00", CALLFLEET_LEGAL_HOURS_END="23:59",
        CALLFLEET_RATE_LIMIT_PER_MINUTE="0", HF_HUB_OFFLINE="1",
        CALLFLEET_OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32")
    team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "Acme", "--json").stdout)
    server = Server(env, tmp_path, "127.0.0.1", port).start()
    try:
        server.wait_ready()
        api = httpx.Client(base_url=public, timeout=30,
                           headers={"Authorization": f"Bearer {team['api_key']}"})
        fake = httpx.Client(base_url=media_carriers, timeout=30)
        tid = team["team_id"]
        api.patch("/api/compliance/settings",
                  json={"timeRulesForAllPurposes": False}).raise_for_status()
        outbound = _assistant(api, tid, name="Alex",
                              firstMessage="Hi {{contact.first_name}}, this is Alex.",
                              voicemailDetectionEnabled=True, voicemailAction="hangup")
        ours = "+16465550180" if provider == "twilio" else "+16465550190"
        pn = _number(api, fake, tid, provider, ours)
        api.put(f"/api/assistants/{outbound}/phone-numbers",
                json={"phoneNumberIds": [pn]}).raise_for_status()
        company = api.post("/api/crm/companies", json={"teamId": tid, "name": "Globex"}
                           ).json()["company"]["id"]
        behaviours: dict[str, str] = {}
        base = 12125550200 if provider == "twilio" else 12125550300
        for behaviour, n in PLAN.items():
            for _ in range(n):
                behaviours[f"+{base + len(behaviours)}"] = behaviour
        fake.post("/_fake/behave", json=behaviours).raise_for_status()
        shift = max(-12, min(14, 12 - time.gmtime().tm_hour))
        zone = f"Etc/GMT{-shift:+d}" if shift else "UTC"
        contacts = []
        for i, phone in enumerate(behaviours):
            r = api.post("/api/crm/contacts", json={
                "teamId": tid, "companyId": company, "firstName": f"Sam{i}",
                "lastName": "Audio", "phone": phone, "timezone": zone})
            assert r.status_code == 201, r.text
            contacts.append(r.json()["contact"]["id"])
        r = api.post("/api/crm/campaigns", json={
            "teamId": tid, "assistantId": outbound, "companyId": company,
            "fromNumberIds": [pn], "name": "Audio", "callWindowStart": "00:00",
            "callWindowEnd": "23:59", "callWindowTimezone": "UTC",
            "maxAttemptsPerContact": 1, "maxConcurrentCalls": 4})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign"]["id"]
        api.post(f"/api/crm/campaigns/{cid}/contacts", json={"contactIds": contacts})
        r = api.post(f"/api/crm/campaigns/{cid}/run", json={"accountSlug": team["account_slug"]})
        assert r.status_code == 200 and r.json()["started"] >= 1, r.text

        poll(lambda: api.get(f"/api/crm/campaigns/{cid}").json()["campaign"]["status"]
             == "completed", "the campaign to complete", timeout=240)
        calls = api.get("/api/calls", params={"campaignId": cid, "limit": 100}).json()["calls"]
        assert len(calls) == 20
        got = {c["to_number"]: c["outcome"] for c in calls}
        assert got == {n: EXPECTED[b] for n, b in behaviours.items()}, (
            got, server.log()[-3000:])

        def streams_closed() -> list[dict[str, Any]] | None:
            seen = fake.get("/_fake/calls").json()["calls"]
            return None if any(c["talking"] for c in seen) else seen

        dialed = {c["to"]: c for c in poll(streams_closed, "the streams to close", 30)}
        assert len(dialed) == 20  # none dialed twice
        for listed in calls:
            c = api.get(f"/api/calls/{listed['id']}").json()["call"]
            behaviour = behaviours[c["to_number"]]
            if behaviour in ("answer", "opt_out"):
                # Real audio both ways: the carrier heard the assistant (marks echoed after
                # playout), callfleet heard the callee through speech-to-text.
                seen = dialed[c["to_number"]]
                assert seen["streamed"] and seen["heard_seconds"] > 1.0, seen
                assert seen["marks"] >= 1, seen
                said = " ".join(m["text"] for m in c["messages"] if m["role"] == "user")
                assert said, c
            if behaviour == "opt_out":
                assert "list" in said.lower(), said
            if behaviour == "voicemail":
                assert dialed[c["to_number"]]["hung_up_by_api"], dialed[c["to_number"]]
        dnc = {e["phone_number"] for e in api.get("/api/dnc").json()["entries"]}
        assert {n for n, b in behaviours.items() if b == "opt_out"} <= dnc

        # ---- inbound: the number's assistant answers over a media stream
        inbound = _assistant(api, tid, name="Desk", inboundEnabled=True,
                             firstMessage="Thanks for calling Acme. How can I help?")
        desk = "+16465550181" if provider == "twilio" else "+16465550191"
        desk_id = _number(api, fake, tid, provider, desk)
        api.put(f"/api/assistants/{inbound}/phone-numbers",
                json={"phoneNumberIds": [desk_id]}).raise_for_status()
        known = next(n for n, b in behaviours.items() if b == "answer")
        unknown = "+13125550199" if provider == "twilio" else "+13125550198"
        hook = f"{public}/carriers/telnyx/webhook"
        for caller in (known, unknown):
            fake.post("/_fake/inbound", json={"carrier": provider, "to": desk,
                                              "from": caller, "webhook_url": hook}
                      ).raise_for_status()

        def inbound_done() -> list[dict[str, Any]] | None:
            got = api.get("/api/calls", params={"direction": "inbound"}).json()["calls"]
            return got if len(got) == 2 and all(c["status"] == "ended" for c in got) else None

        done = poll(inbound_done, "the inbound calls to end", timeout=90)
        by_caller = {c["from_number"]: c for c in done}
        assert set(by_caller) == {known, unknown}
        for listed in done:
            c = api.get(f"/api/calls/{listed['id']}").json()["call"]
            assert c["direction"] == "inbound" and c["to_number"] == desk
            assert c["outcome"] == "answered", c
            assert any(m["role"] == "assistant" and "Acme" in m["text"]
                       for m in c["messages"]), c["messages"]
            assert any(m["role"] == "user" and m["text"] for m in c["messages"]), c
        assert by_caller[known]["contact_id"] == contacts[list(behaviours).index(known)]
        new = api.get(f"/api/crm/contacts/{by_caller[unknown]['contact_id']}").json()["contact"]
        assert new["phone"] == unknown
        # Analysed and written back like an outbound call.
        poll(lambda: all(api.get(f"/api/calls/{c['id']}").json()["call"].get("analysis")
                         for c in done), "the inbound calls' analysis", timeout=60)

        # ---- a transfer: the assistant (a model with the transfer tool) forwards the call
        # to Sales; the carrier moves it (Twilio: new TwiML with <Dial>; Telnyx: transfer),
        # which ends the media stream while the call goes on with the transferee.
        sales = "+12125559990"
        closer = _assistant(api, tid, name="Closer", llmBaseUrl=llm.url,
                            firstMessage="Hi, this is Alex from Acme.",
                            callTransfer={"enabled": True, "departments": [
                                {"name": "Sales", "mode": "cold", "phoneNumber": sales}]})
        line = _number(api, fake, tid, provider,
                       "+16465550183" if provider == "twilio" else "+16465550193")
        api.put(f"/api/assistants/{closer}/phone-numbers",
                json={"phoneNumberIds": [line]}).raise_for_status()
        person = next(n for n, b in behaviours.items() if b == "answer")
        r = api.post("/api/crm/calls", json={"assistantId": closer, "toNumber": person,
                                             "contactId": contacts[0]})
        assert r.status_code in (200, 201), r.text
        moved_id = r.json()["call"]["id"]

        def moved() -> dict[str, Any] | None:
            call = api.get(f"/api/calls/{moved_id}").json()["call"]
            return call if call["status"] == "ended" else None

        call = poll(moved, "the transferred call to end", timeout=90)
        assert call["ended_reason"] == "assistant_forwarded_call", call

        def stream_ended() -> dict[str, Any] | None:
            seen = next(c for c in fake.get("/_fake/calls").json()["calls"]
                        if c["sid"] == call["carrier_call_id"])
            return seen if seen["streamed"] else None

        seen = poll(stream_ended, "the transferred call's stream to end", timeout=30)
        assert seen["transferred_to"] == sales and seen["closed_by"] == "carrier", seen

        # ---- a number without an assistant: a short message, then the call ends
        bare = "+16465550182" if provider == "twilio" else "+16465550192"
        _number(api, fake, tid, provider, bare)
        sid = fake.post("/_fake/inbound", json={"carrier": provider, "to": bare,
                                                "from": unknown, "webhook_url": hook}
                        ).json()["sid"]

        def declined() -> dict[str, Any] | None:
            call = next(c for c in fake.get("/_fake/calls").json()["calls"] if c["sid"] == sid)
            return call if call["said"] and call["status"] == "completed" else None

        call = poll(declined, "the unanswerable call to end", timeout=30)
        assert "cannot take calls" in call["said"][0]
        assert Counter(c["direction"] for c in api.get(
            "/api/calls", params={"limit": 100}).json()["calls"])["inbound"] == 2
    finally:
        server.stop()
