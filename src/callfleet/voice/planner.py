"""What a voice call runs, read from the database, and where its record goes afterwards.

``plan``: the call must exist and be in progress (answered); its assistant, contact,
company and campaign give the rendered lines (``conversation.runtime.call_context``), the
LLM endpoint if any (``runtime.llm_for``), and the speech settings (the assistant's voice
fields, the team's provider keys, decrypted only here). ``finished``: in one transaction the
messages (with what the callee actually heard), the transcript, the per-turn latency and the
rest of the record go onto the call, and the call ends through the same path as every call
(``dialer.outcomes.finish_call``: enrollment, retry rules, contact, webhooks, post-call
analysis); then the carrier is told to hang up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, update

from callfleet.assistants.voice import options_out
from callfleet.calls.models import ACTIVE_CALL_STATUSES, Call
from callfleet.carriers.accounts import TwilioAccount
from callfleet.carriers.callbacks import target
from callfleet.carriers.calling import PublicUrlError, stream_url
from callfleet.carriers.signatures import twilio_valid
from callfleet.clock import Clock
from callfleet.conversation import runtime
from callfleet.conversation.policy import DeterministicPolicy
from callfleet.conversation.worker import system_prompt
from callfleet.db.session import Database
from callfleet.dialer.outcomes import finish_call
from callfleet.recordings import LocalStore, RecordingStore
from callfleet.secrets import secret_box
from callfleet.teams.models import Team
from callfleet.voice.framing import StreamStart
from callfleet.voice.session import CallPlan
from callfleet.voice.settings import Speech, VoiceSettings

log = structlog.get_logger("callfleet.voice")

# Team settings holding speech provider keys (encrypted at rest, write-only in the API).
KEY_SETTINGS = {"openai": "speech_api_key", "deepgram": "deepgram_api_key",
                "cartesia": "cartesia_api_key", "elevenlabs": "elevenlabs_api_key"}


def _reveal(stored: Any) -> str | None:
    return secret_box().decrypt(stored) if isinstance(stored, str) and stored else None


def voice_settings(assistant: Any, team: dict[str, Any]) -> VoiceSettings:
    """The call's speech services and timing from the assistant and its team."""
    opts = options_out(getattr(assistant, "voice_options", None))
    tts_provider = getattr(assistant, "voice_provider", None) or "local"
    stt_provider = getattr(assistant, "transcriber_provider", None) or "local"

    def speech(provider: str, model: str | None, voice: str | None, url: str | None) -> Speech:
        base = url or (team.get("speech_base_url") if provider == "openai" else None)
        key = KEY_SETTINGS.get(provider)
        return Speech(provider, model, voice, base, _reveal(team.get(key)) if key else None)

    return VoiceSettings(
        stt=speech(stt_provider, getattr(assistant, "transcriber_model", None), None,
                   opts["transcriber_base_url"]),
        tts=speech(tts_provider, getattr(assistant, "voice_model", None),
                   getattr(assistant, "voice_id", None), opts["voice_base_url"]),
        language=getattr(assistant, "language", None) or "en",
        interruption_sensitivity=opts["interruption_sensitivity"],
        end_of_turn_seconds=opts["end_of_turn_seconds"],
        silence_timeout_seconds=opts["silence_timeout_seconds"],
        idle_prompt=opts["idle_prompt"], max_call_seconds=opts["max_call_seconds"])


def screening_line(assistant: Any, contact: dict[str, Any] | None,
                   company: dict[str, Any] | None) -> str:
    """What the assistant tells a call screener: who is calling, for whom, and that it holds
    (an automated caller says so: docs/decisions/0026)."""
    who = getattr(assistant, "name", None) or "an assistant"
    org = (company or {}).get("name")
    first = (contact or {}).get("first_name")
    line = f"Hi, this is {who}, an automated assistant, calling"
    if first:
        line += f" for {first}"
    if org:
        line += f" at {org}"
    return line + ". I'll hold while you connect me."


class DatabasePlanner:
    def __init__(self, db: Database, clock: Clock, carrier: Any, *,
                 tool_timeout: float = 5.0, data_dir: Path | None = None,
                 recordings: RecordingStore | None = None) -> None:
        self.db = db
        self.clock = clock
        self.carrier = carrier
        self.tool_timeout = tool_timeout
        self.data_dir = data_dir or Path(".callfleet")
        self.recordings = recordings or LocalStore(self.data_dir)

    async def handshake_signed(self, carrier: str, call_id: str, signature: str) -> bool:
        """Twilio signs the media WebSocket's opening request as it signs its callbacks:
        ``X-Twilio-Signature`` over the stream's URL (the one its TwiML named) under the
        auth token of the call's account. True when that holds; a signature that cannot be
        checked (no public URL, not a Twilio call, no carrier router) does not hold."""
        settings = getattr(self.carrier, "settings", None)
        if carrier != "twilio" or settings is None:
            return False
        try:
            url = stream_url(settings.public_url, "twilio", call_id)
        except PublicUrlError:
            return False
        account = (await target(self.carrier, "twilio", call_id)).account
        token = account.auth_token if isinstance(account, TwilioAccount) else ""
        return twilio_valid(token, url, {}, signature)

    async def plan(self, call_id: str, start: StreamStart) -> CallPlan | None:
        async with self.db.session(write=False) as s:
            call = await s.get(Call, call_id)
            # A carrier opens the stream when the call is answered; its "answered" status may
            # arrive a moment later, so a call not yet marked answered is accepted too.
            if call is None or call.status not in ACTIVE_CALL_STATUSES:
                log.warning("media_stream_for_no_live_call", call_id=call_id,
                            status=call.status if call else None)
                return None
            ctx = await runtime.call_context(s, call)
            config = await runtime.llm_for(s, call, ctx.assistant)
            team = await s.scalar(select(Team.settings)
                                  .where(Team.id == call.team_id)) or {}  # tenancy: system
        settings = voice_settings(ctx.assistant, team)
        call_info = {"id": call.id, "team_id": call.team_id, "contact_id": call.contact_id,
                     "campaign_id": call.campaign_id, "to_number": call.to_number,
                     "from_number": call.from_number,
                     "contact_name": (ctx.contact or {}).get("first_name")}
        record = bool(getattr(ctx.assistant, "recording_enabled", False))
        machine = {
            "detect_machine": call.direction == "outbound" and bool(
                getattr(ctx.assistant, "voicemail_detection_enabled", False)),
            "voicemail_action": (ctx.campaign.voicemail_action if ctx.campaign is not None
                              and ctx.campaign.voicemail_action else
                              getattr(ctx.assistant, "voicemail_action", None) or "hangup"),
            "screening": screening_line(ctx.assistant, ctx.contact, ctx.company)}
        if config is not None and ctx.assistant is not None:
            return CallPlan(call_id, settings, ctx.lines, llm=config,
                            system_prompt=system_prompt(ctx.lines.system_prompt, ctx.assistant),
                            assistant=ctx.assistant, call_info=call_info,
                            tool_timeout=self.tool_timeout, record=record, **machine)
        return CallPlan(call_id, settings, ctx.lines, policy=DeterministicPolicy(ctx.lines),
                        assistant=ctx.assistant, call_info=call_info, record=record, **machine)

    async def amd_verdict(self, call_id: str) -> str | None:
        """The carrier's answering-machine verdict recorded on the call by the carrier-event
        path (``dialer.media``): ``machine``, ``human`` or None (none yet)."""
        async with self.db.session(write=False) as s:
            meta = await s.scalar(select(Call.call_metadata).where(Call.id == call_id))
        if not meta:
            return None
        if meta.get("voicemail"):
            return "machine"
        return "human" if meta.get("amd") is not None else None

    async def progress(self, call_id: str, record: dict[str, Any]) -> None:
        """Write the conversation so far onto the call (only while it is in progress)."""
        async with self.db.session() as s:
            await s.execute(update(Call).where(Call.id == call_id, Call.status != "ended")
                            .values(**Call.transcript_columns(record["messages"]),
                                    transcript=record["transcript"]))
            await s.commit()

    async def finished(self, call_id: str, record: dict[str, Any]) -> None:
        now = self.clock.now()
        wav = record.get("recording_wav")
        saved = False
        if wav:
            # Stored before the transaction (an upload may take a while; no row lock waits
            # for it), linked on the call inside it.
            try:
                await self.recordings.save(call_id, wav)
                saved = True
            except Exception:  # the call's record matters more than its audio
                log.exception("recording_save_failed", call_id=call_id,
                              store=self.recordings.name)
        async with self.db.session() as s:
            stmt = select(Call).where(Call.id == call_id)
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update()
            call = await s.scalar(stmt)
            if call is None:
                return
            carrier_call_id = call.carrier_call_id
            if call.status == "ended":
                await s.commit()
                return
            if saved:
                call.recording_url = f"/api/calls/{call.id}/recording"
            call.messages = record["messages"]
            call.transcript = record["transcript"]
            meta = dict(call.call_metadata or {})
            meta["voice"] = {k: record.get(k) for k in (
                "latency", "dtmf", "events", "goodbye_confirmed")}
            outcome = record.get("outcome") or "answered"
            answered_by = record.get("answered_by")
            if answered_by:
                meta["answered_by"] = answered_by
            machine = ((answered_by or {}).get("answered_by") == "machine"
                       or meta.get("voicemail"))
            if machine and outcome != "opted_out":
                # Never a conversation with a person (the pipeline's classifier, or the
                # carrier's answering-machine detection through dialer.media.on_machine): the
                # retry rules see a voicemail, and whether a message was left.
                outcome = "voicemail"
                meta.update(voicemail=True,
                            voicemail_left=bool(record.get("voicemail_left")))
            meta.update(conversation_outcome=outcome,
                        conversation_ended_reason=record.get("ended_reason"))
            if record.get("tool_calls"):
                meta["tool_calls"] = record["tool_calls"]
            if record.get("transfer"):
                meta["transfer"] = record["transfer"]
            call.call_metadata = meta
            reason = record.get("ended_reason") or (
                "voicemail" if outcome == "voicemail" else "customer_ended_call")
            await finish_call(s, call, outcome, reason, now)
            await s.commit()
        if carrier_call_id:
            await self._hang_up_or_transfer(call_id, carrier_call_id, record.get("transfer"))

    async def _hang_up_or_transfer(self, call_id: str, carrier_call_id: str,
                                   transfer: dict[str, Any] | None) -> None:
        """The assistant forwarded the call to a department with a number: the carrier
        transfers it (warm: the transferee hears the briefing first), else hangs up."""
        to = (transfer or {}).get("phone_number")
        move = getattr(self.carrier, "transfer", None)
        if to and move is not None:
            try:
                await move(carrier_call_id, to, briefing=(transfer or {}).get("brief")
                           if (transfer or {}).get("mode") == "warm" else None)
                return
            except Exception:
                log.warning("carrier_transfer_failed", call_id=call_id, exc_info=True)
        try:
            await self.carrier.hangup(carrier_call_id, 0.0)
        except Exception:
            log.exception("carrier_hangup_failed", call_id=call_id)
