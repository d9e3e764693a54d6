"""Assistants: template pre-fill, prompt variables, validation, CRUD, team scoping, and the
assistant's phone numbers."""

from __future__ import annotations

import re
from typing import Any

import httpx

from callfleet import ids
from callfleet.assistants.prompts import render, variables_for
from callfleet.assistants.templates import TEMPLATE_IDS, template_defaults
from tests.conftest import DbHandle, TeamCtx, make_company
from tests.numbers.test_numbers import (
    add_campaign,
    buy,
    make_assistant,
    set_campaign_status,
)

ASSISTANT_FIELDS = {
    "id", "team_id", "name", "type", "template_id", "system_prompt", "first_message",
    "provider", "model", "temperature", "max_tokens", "voice_provider", "voice_model",
    "voice_id", "transcriber_provider", "transcriber_model", "language", "recording_enabled",
    "inbound_enabled", "outbound_enabled", "voicemail_detection_enabled", "voicemail_action",
    "voicemail_message", "end_call", "call_transfer", "info_extraction", "success_criteria",
    "phone_number_ids", "created_at", "updated_at",
    "llm_base_url", "llm_api_key_set", "tools",  # LLM settings (docs/intelligence.md)
}


# ---------------------------------------------------------------- prompt variables


def test_render_substitutes_documented_variables() -> None:
    contact = {"first_name": "Sarah", "last_name": "Chen", "job_title": "VP",
               "custom_fields": {"plan": "pro", "seats": 40.0, "renewal": None}}
    company = {"name": "Initech", "custom_fields": {"tier": "gold"}}
    variables = variables_for(contact, company, {"name": "Spring outreach", "id": "camp_x"})
    text, missing = render(
        "Hi {{contact.first_name}} ({{ contact.full_name }}), {{company.name}} is on "
        "{{contact.custom.plan}} with {{contact.custom.seats}} seats, tier "
        "{{  company.custom.tier  }}, for {{campaign.name}}.", variables,
    )
    assert text == ("Hi Sarah (Sarah Chen), Initech is on pro with 40 seats, tier gold, "
                    "for Spring outreach.")
    assert missing == []


def test_unknown_variables_render_empty_and_are_reported() -> None:
    variables = variables_for({"first_name": "Ada", "last_name": "Lovelace",
                               "custom_fields": {"renewal": None}}, None, None)
    text, missing = render(
        "Hi {{contact.first_name}}{{contact.custom.renewal}} from {{company.name}}, "
        "{{ nonsense }}{{}}{{contact.first_name}} {{company.name}} {{contact}}", variables,
    )
    assert text == "Hi Ada from , Ada  "
    assert missing == ["contact.custom.renewal", "company.name", "nonsense", "", "contact"]
    assert render("", {}) == ("", [])
    assert render("no variables {here}", {}) == ("no variables {here}", [])


def test_templates_prefill_a_prompt_that_identifies_the_caller() -> None:
    for template_id in TEMPLATE_IDS:
        t = template_defaults(template_id, "Acme {{evil}}")
        assert t["system_prompt"].strip() and t["first_message"].strip()
        first, missing = render(t["first_message"], variables_for(
            {"first_name": "Sarah", "last_name": "Chen"}, {"name": "Initech"},
            {"name": "Q3"}))
        assert "AI assistant" in first and "Acme evil" in first, template_id
        assert missing == [], template_id


# ---------------------------------------------------------------- create from templates


async def test_outbound_setter_template_prefills(client: httpx.AsyncClient,
                                                 team: TeamCtx) -> None:
    r = await client.post("/api/assistants", headers=team.headers, json={
        "accountSlug": team.slug, "name": "Q3 setter", "templateId": "outbound-setter"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True
    a = body["assistant"]
    assert set(a) == ASSISTANT_FIELDS
    assert re.match(r"^asst_[0-9a-hjkmnp-tv-z]{26}$", a["id"])
    assert a["team_id"] == team.id and a["template_id"] == "outbound-setter"
    assert "{{contact.first_name}}" in a["system_prompt"]
    assert "{{company.name}}" in a["system_prompt"] and "{{campaign.name}}" in a["system_prompt"]
    assert "Acme" in a["system_prompt"]  # the team's name is the calling business
    assert a["first_message"].startswith("Hi {{contact.first_name}}, this is an AI assistant "
                                         "calling on behalf of Acme")
    assert a["outbound_enabled"] is True and a["voicemail_detection_enabled"] is True
    assert a["voicemail_action"] == "leave_message" and "Acme" in a["voicemail_message"]
    assert a["end_call"]["enabled"] is True and "goodbye" in a["end_call"]["trigger_phrases"]
    assert a["end_call"]["closing_phrase"]
    assert a["call_transfer"] == {"enabled": False, "departments": []}
    fields = {f["key"]: f for f in a["info_extraction"]["fields"]}
    assert a["info_extraction"]["enabled"] is True
    assert fields["interest_level"]["type"] == "select" and fields["interest_level"]["options"]
    assert fields["interest_level"]["target"] == "custom_fields"
    assert "callback_day" in fields
    assert fields["email"]["type"] == "email" and fields["email"]["target"] == "email"
    assert a["phone_number_ids"] == []

    got = await client.get(f"/api/assistants/{a['id']}", headers=team.headers)
    assert got.status_code == 200 and got.json()["assistant"] == a


async def test_default_template_and_overrides(client: httpx.AsyncClient, team: TeamCtx) -> None:
    plain = await make_assistant(client, team)
    assert plain["template_id"] == "custom" and plain["type"] == "outbound"
    assert "Acme" in plain["first_message"] and plain["temperature"] == 0.7
    assert plain["max_tokens"] == 300 and plain["voicemail_action"] == "hangup"
    inbound = await make_assistant(client, team, templateId="inbound-support")
    assert inbound["inbound_enabled"] is True and inbound["outbound_enabled"] is False
    assert inbound["first_message"].startswith("Thanks for calling Acme")

    a = await make_assistant(
        client, team, templateId="follow-up", firstMessage="  Hello {{contact.first_name}}!  ",
        temperature=1.2, maxTokens=800, voiceProvider="elevenlabs", voiceId="rachel",
        language="en-GB", recordingEnabled=True, voicemailAction="hangup",
        successCriteria="Booked", endCall={"closingPhrase": "Cheers!"},
        callTransfer={"enabled": True, "departments": [
            {"name": "Sales", "mode": "warm", "phoneNumber": "(415) 555-0100",
             "introMessage": "Transferring a warm lead"}]},
    )
    assert a["template_id"] == "follow-up"
    assert a["first_message"] == "Hello {{contact.first_name}}!"
    assert a["temperature"] == 1.2 and a["max_tokens"] == 800
    assert a["voice_provider"] == "elevenlabs" and a["voice_id"] == "rachel"
    assert a["language"] == "en-GB" and a["recording_enabled"] is True
    assert a["voicemail_action"] == "hangup" and a["success_criteria"] == "Booked"
    # A partial tool object merges into the template's: the trigger phrases stay.
    assert a["end_call"]["closing_phrase"] == "Cheers!" and a["end_call"]["trigger_phrases"]
    assert a["call_transfer"] == {"enabled": True, "departments": [
        {"name": "Sales", "mode": "warm", "phone_number": "+14155550100",
         "intro_message": "Transferring a warm lead", "announcement": None}]}
    assert "follow up" in a["system_prompt"]


async def test_validation_is_400_naming_the_field(client: httpx.AsyncClient,
                                                  team: TeamCtx) -> None:
    dept = {"name": "Sales", "phoneNumber": "+14155550100"}
    field = {"key": "budget", "type": "number"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"templateId": "sales-bot"}, "templateId"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"maxTokens": 0}, "maxTokens"),
        ({"maxTokens": 32001}, "maxTokens"),
        ({"voicemailAction": "beep"}, "voicemailAction"),
        ({"type": "robot"}, "type"),
        ({"language": "english please"}, "language"),
        ({"recordingEnabled": "maybe"}, "recordingEnabled"),
        ({"endCall": {"triggerPhrases": "bye"}}, "endCall.triggerPhrases"),
        ({"callTransfer": {"enabled": True, "departments": []}}, "callTransfer.departments"),
        ({"callTransfer": {"departments": [{**dept, "mode": "hot"}]}},
         "callTransfer.departments.0.mode"),
        ({"callTransfer": {"departments": [{**dept, "phoneNumber": "12345"}]}},
         "callTransfer.departments.0.phoneNumber"),
        ({"callTransfer": {"departments": [{"phoneNumber": "+14155550100"}]}},
         "callTransfer.departments.0.name"),
        ({"callTransfer": {"departments": [dept, dept]}}, "callTransfer.departments.1.name"),
        ({"infoExtraction": {"fields": [{**field, "key": "Budget Size"}]}},
         "infoExtraction.fields.0.key"),
        ({"infoExtraction": {"fields": [{**field, "type": "color"}]}},
         "infoExtraction.fields.0.type"),
        ({"infoExtraction": {"fields": [{"key": "tier", "type": "select"}]}},
         "infoExtraction.fields.0.options"),
        ({"infoExtraction": {"fields": [{**field, "target": "company"}]}},
         "infoExtraction.fields.0.target"),
        ({"infoExtraction": {"fields": [{**field, "target": "email"}]}},
         "infoExtraction.fields.0.type"),
        ({"infoExtraction": {"fields": [field, field]}}, "infoExtraction.fields.1.key"),
        ({"infoExtraction": {"enabled": True, "fields": []}}, "infoExtraction.fields"),
    ]
    for patch, name in cases:
        r = await client.post("/api/assistants", headers=team.headers,
                              json={"teamId": team.id, "name": "A", **patch})
        assert r.status_code == 400, (patch, r.text)
        body = r.json()
        assert body["success"] is False and name in body["details"], (patch, body)
    r = await client.post("/api/assistants", headers=team.headers, json={"name": "A"})
    assert r.status_code == 400 and "teamId" in r.json()["details"]


async def test_select_field_options_and_standard_targets(client: httpx.AsyncClient,
                                                         team: TeamCtx) -> None:
    a = await make_assistant(client, team, infoExtraction={"enabled": True, "fields": [
        {"key": "tier", "type": "select", "options": ["gold", " silver ", "gold", ""],
         "description": "Plan tier"},
        {"key": "status", "type": "select", "options": ["qualified", "unqualified"],
         "target": "lead_status"},
        {"key": "alt_phone", "type": "phone", "target": "phone_secondary"},
        {"key": "seats", "type": "number", "options": ["ignored"]},
    ]})
    fields = a["info_extraction"]["fields"]
    assert fields[0] == {"key": "tier", "type": "select", "description": "Plan tier",
                         "question": None, "options": ["gold", "silver"],
                         "target": "custom_fields"}
    assert fields[1]["target"] == "lead_status" and fields[2]["target"] == "phone_secondary"
    assert fields[3]["options"] is None and fields[3]["target"] == "custom_fields"
    r = await client.post("/api/assistants", headers=team.headers, json={
        "teamId": team.id, "name": "x", "infoExtraction": {"fields": [
            {"key": "status", "type": "select", "options": ["hot"], "target": "lead_status"}]}})
    assert r.status_code == 400 and "infoExtraction.fields.0.options" in r.json()["details"]


# ---------------------------------------------------------------- read, update, delete


async def test_list_patch_delete(client: httpx.AsyncClient, team: TeamCtx) -> None:
    a = await make_assistant(client, team, name="One", templateId="outbound-setter")
    b = await make_assistant(client, team, name="Two")
    r = await client.get("/api/assistants", headers=team.headers, params={"teamId": team.id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2 and body["limit"] == 50 and body["offset"] == 0
    assert {x["id"] for x in body["assistants"]} == {a["id"], b["id"]}
    r = await client.get("/api/assistants", headers=team.headers,
                         params={"accountSlug": team.slug, "limit": 1, "offset": 1})
    assert r.json()["count"] == 2 and len(r.json()["assistants"]) == 1
    r = await client.get("/api/assistants", headers=team.headers)
    assert r.status_code == 400 and "teamId" in r.json()["details"]

    r = await client.patch(f"/api/assistants/{a['id']}", headers=team.headers, json={
        "name": "Renamed", "temperature": 0.2, "infoExtraction": {"enabled": False},
        "endCall": {"triggerPhrases": ["talk soon"]}, "voiceModel": "turbo"})
    assert r.status_code == 200, r.text
    u = r.json()["assistant"]
    assert u["name"] == "Renamed" and u["temperature"] == 0.2 and u["voice_model"] == "turbo"
    # Untouched fields and the rest of each tool object are kept.
    assert u["system_prompt"] == a["system_prompt"] and u["max_tokens"] == a["max_tokens"]
    assert u["info_extraction"]["enabled"] is False
    assert u["info_extraction"]["fields"] == a["info_extraction"]["fields"]
    assert u["end_call"]["trigger_phrases"] == ["talk soon"]
    assert u["end_call"]["closing_phrase"] == a["end_call"]["closing_phrase"]
    assert u["created_at"] == a["created_at"]

    # null resets a setting to its default; a tool set to null is switched off.
    r = await client.patch(f"/api/assistants/{a['id']}", headers=team.headers,
                           json={"temperature": None, "voiceModel": None, "endCall": None})
    u = r.json()["assistant"]
    assert u["temperature"] == 0.7 and u["voice_model"] is None
    assert u["end_call"] == {"enabled": False, "trigger_phrases": [], "closing_phrase": None}

    for patch, name in (({"temperature": 9}, "temperature"), ({"name": " "}, "name"),
                        ({"templateId": "custom"}, "templateId")):
        r = await client.patch(f"/api/assistants/{a['id']}", headers=team.headers, json=patch)
        assert r.status_code == 400 and name in r.json()["details"], (patch, r.text)

    r = await client.delete(f"/api/assistants/{b['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert (await client.get(f"/api/assistants/{b['id']}", headers=team.headers)).status_code \
        == 404


async def test_other_teams_assistants_are_403(client: httpx.AsyncClient, team: TeamCtx,
                                              other_team: TeamCtx) -> None:
    theirs = await make_assistant(client, other_team)
    for method, kw in (("get", {}), ("patch", {"json": {"name": "x"}}), ("delete", {})):
        r = await getattr(client, method)(f"/api/assistants/{theirs['id']}",
                                          headers=team.headers, **kw)
        assert r.status_code == 403, (method, r.text)
        for missing in (ids.new_id("asst"), ids.new_id("pn"), "asst_bad"):
            r = await getattr(client, method)(f"/api/assistants/{missing}",
                                              headers=team.headers, **kw)
            assert r.status_code == 404, (method, missing, r.text)
    r = await client.get(f"/api/assistants/{theirs['id']}/phone-numbers", headers=team.headers)
    assert r.status_code == 403
    for body in ({"teamId": other_team.id, "name": "x"},
                 {"accountSlug": other_team.slug, "name": "x"}):
        r = await client.post("/api/assistants", headers=team.headers, json=body)
        assert r.status_code == 403, body
    r = await client.get("/api/assistants", headers=team.headers,
                         params={"teamId": other_team.id})
    assert r.status_code == 403
    r = await client.get("/api/assistants", headers=team.headers, params={"teamId": team.id})
    assert theirs["id"] not in {x["id"] for x in r.json()["assistants"]}


async def test_delete_is_409_while_a_campaign_in_flight_uses_it(
    client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    """409 while a running, scheduled or paused campaign uses the assistant; once its
    campaigns are done the assistant is deleted (404 from then on), and the campaigns keep it
    for their history. A draft that still names it cannot run until it gets another one."""
    a = await make_assistant(client, team)
    pn = await buy(client, team)
    r = await client.put(f"/api/assistants/{a['id']}/phone-numbers", headers=team.headers,
                         json={"phoneNumberIds": [pn["id"]]})
    assert r.status_code == 200, r.text
    company = await make_company(client, team)
    campaign = await add_campaign(database, team, company, a["id"], [pn["id"]])
    draft = await add_campaign(database, team, company, a["id"], [pn["id"]], status="draft")
    for status in ("running", "paused", "scheduled"):
        await set_campaign_status(database, campaign, status)
        r = await client.delete(f"/api/assistants/{a['id']}", headers=team.headers)
        assert r.status_code == 409, (status, r.text)
        assert f"{status} campaign" in r.json()["error"] and campaign in r.json()["error"]
    await set_campaign_status(database, campaign, "cancelled")
    r = await client.delete(f"/api/assistants/{a['id']}", headers=team.headers)
    assert r.status_code == 200 and r.json() == {"success": True}, r.text
    for path in (f"/api/assistants/{a['id']}", f"/api/assistants/{a['id']}/phone-numbers"):
        assert (await client.get(path, headers=team.headers)).status_code == 404
    r = await client.get("/api/assistants", headers=team.headers, params={"teamId": team.id})
    assert a["id"] not in {x["id"] for x in r.json()["assistants"]}
    assert r.json()["count"] == len(r.json()["assistants"])
    r = await client.delete(f"/api/assistants/{a['id']}", headers=team.headers)
    assert r.status_code == 404
    # The campaigns still show it; the number is free; the draft cannot run with it.
    r = await client.get(f"/api/crm/campaigns/{campaign}", headers=team.headers)
    assert r.status_code == 200 and r.json()["campaign"]["assistant_id"] == a["id"]
    r = await client.get(f"/api/phone-numbers/{pn['id']}", headers=team.headers)
    assert r.json()["phone_number"]["assistant_id"] is None
    r = await client.post(f"/api/crm/campaigns/{draft}/run", headers=team.headers,
                          json={"accountSlug": team.slug})
    assert r.status_code == 404 and "assistantId" in r.json()["details"], r.text
    r = await client.post("/api/crm/calls", headers=team.headers,
                          json={"assistantId": a["id"], "toNumber": "+14155550123"})
    assert r.status_code == 404, r.text


async def test_deleting_an_assistant_frees_its_numbers(client: httpx.AsyncClient,
                                                       team: TeamCtx) -> None:
    a = await make_assistant(client, team)
    pn = await buy(client, team)
    r = await client.post(f"/api/assistants/{a['id']}/phone-numbers", headers=team.headers,
                          json={"phoneNumberIds": [pn["id"]]})
    assert r.status_code == 200, r.text
    assert (await client.delete(f"/api/assistants/{a['id']}",
                                headers=team.headers)).status_code == 200
    r = await client.get(f"/api/phone-numbers/{pn['id']}", headers=team.headers)
    assert r.json()["phone_number"]["assistant_id"] is None


# ---------------------------------------------------------------- phone numbers


async def test_assign_replace_and_add_numbers(client: httpx.AsyncClient, team: TeamCtx,
                                              other_team: TeamCtx, database: DbHandle) -> None:
    a = await make_assistant(client, team, name="A")
    b = await make_assistant(client, team, name="B")
    n1, n2, n3 = [await buy(client, team) for _ in range(3)]
    url = f"/api/assistants/{a['id']}/phone-numbers"

    async def numbers_of(assistant_id: str) -> list[str]:
        r = await client.get(f"/api/assistants/{assistant_id}/phone-numbers",
                             headers=team.headers)
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(r.json()["phone_numbers"])
        return sorted(n["id"] for n in r.json()["phone_numbers"])

    assert await numbers_of(a["id"]) == []
    r = await client.put(url, headers=team.headers,
                         json={"phoneNumberIds": [n1["id"], n2["id"], n1["id"]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert sorted(n["id"] for n in body["phone_numbers"]) == sorted([n1["id"], n2["id"]])
    assert all(n["assistant_id"] == a["id"] for n in body["phone_numbers"])
    r = await client.post(url, headers=team.headers, json={"phoneNumberIds": [n3["id"]]})
    assert r.status_code == 200
    assert await numbers_of(a["id"]) == sorted([n1["id"], n2["id"], n3["id"]])
    got = (await client.get(f"/api/assistants/{a['id']}", headers=team.headers)).json()
    assert sorted(got["assistant"]["phone_number_ids"]) == await numbers_of(a["id"])
    r = await client.get("/api/phone-numbers", headers=team.headers,
                         params={"teamId": team.id, "assistantId": a["id"]})
    assert r.json()["count"] == 3

    # PUT replaces: n1 and n3 are unassigned, n2 stays.
    r = await client.put(url, headers=team.headers, json={"phoneNumberIds": [n2["id"]]})
    assert r.status_code == 200
    assert await numbers_of(a["id"]) == [n2["id"]]
    r = await client.get(f"/api/phone-numbers/{n1['id']}", headers=team.headers)
    assert r.json()["phone_number"]["assistant_id"] is None

    # A number of another assistant is a 409, on both PUT and POST, and nothing changes.
    r = await client.post(f"/api/assistants/{b['id']}/phone-numbers", headers=team.headers,
                          json={"phoneNumberIds": [n1["id"], n2["id"]]})
    assert r.status_code == 409, r.text
    assert n2["id"] in r.json()["error"] and "another assistant" in r.json()["error"]
    r = await client.put(f"/api/assistants/{b['id']}/phone-numbers", headers=team.headers,
                         json={"phoneNumberIds": [n2["id"]]})
    assert r.status_code == 409
    assert await numbers_of(b["id"]) == []

    unknown = ids.new_id("pn")
    r = await client.post(url, headers=team.headers,
                          json={"phoneNumberIds": [n1["id"], unknown]})
    assert r.status_code == 404 and unknown in r.json()["error"]
    assert "phoneNumberIds" in r.json()["details"]
    r = await client.post(url, headers=team.headers, json={"phoneNumberIds": ["pn_bad"]})
    assert r.status_code == 400 and "phoneNumberIds" in r.json()["details"]
    r = await client.post(url, headers=team.headers, json={})
    assert r.status_code == 400 and "phoneNumberIds" in r.json()["details"]
    theirs = await buy(client, other_team)
    r = await client.post(url, headers=team.headers, json={"phoneNumberIds": [theirs["id"]]})
    assert r.status_code == 403
    assert await numbers_of(a["id"]) == [n2["id"]]

    # Unassigning a caller ID of this assistant's running campaign is a 409.
    company = await make_company(client, team)
    campaign = await add_campaign(database, team, company, a["id"], [n2["id"]])
    r = await client.put(url, headers=team.headers, json={"phoneNumberIds": []})
    assert r.status_code == 409 and campaign in r.json()["error"]
    await set_campaign_status(database, campaign, "paused")
    r = await client.put(url, headers=team.headers, json={"phoneNumberIds": []})
    assert r.status_code == 200 and r.json()["phone_numbers"] == []
