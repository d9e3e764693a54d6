"""The simulated network's audio mode: an answered callee who talks over the media stream.

When the simulated carrier delivers "answered" for a number in audio mode, it calls
:func:`answer`: the callee opens the call's media WebSocket exactly as a carrier does
(``CarrierMediaClient``, Twilio framing) and after each of the assistant's turns (its
greeting first) runs what it heard through local speech-to-text (faster-whisper) and answers as its
persona would (``conversation.personas.Callee``, the same facts as the text simulation),
spoken by espeak-ng. It hangs up once it has said goodbye and the assistant is quiet, or
when callfleet hangs up. So the whole voice path runs offline as with a real carrier.

Two more callees, by the number's simulated behaviour: ``voicemail`` is an answering
machine (a recorded greeting, then a beep; it takes whatever is said after it and hangs up
once the caller is quiet), ``screened`` is a call screener ("please say your name and why
you are calling") who then puts the person through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from callfleet.calls.models import Call
from callfleet.carriers.base import CarrierEvent
from callfleet.conversation.personas import Callee
from callfleet.crm.models import Contact
from callfleet.crm.views import contact_out
from callfleet.db.session import Database
from callfleet.voice import audio, espeak, providers
from callfleet.voice.amd import beep_pcm
from callfleet.voice.mediaclient import (
    CallReport,
    CarrierMediaClient,
    Hangup,
    Pause,
    Say,
    SayNow,
    Step,
)
from callfleet.voice.tokens import stream_path

log = structlog.get_logger("callfleet.voice.sim")

MAX_CALL_SECONDS = 900.0
STATUS_DELAY_SECONDS = 1.0
QUIET_MS = 800  # the assistant's silence after which the callee takes its turn
PICK_UP_SECONDS = 0.8  # a callee who speaks first does so this long after answering
MACHINE_GREETING = ("Hi, you have reached {name}. I can't take your call right now. "
                    "Please leave a message after the tone.")
SCREENER_PROMPT = "Hi, please say your name and why you are calling."
SCREENER_HOLD = "Thanks, please stay on the line."


def say(text: str) -> Say:
    return Say(text, espeak.speak_ulaw(text))


def heard_text(ulaw: bytes) -> str:
    pcm = audio.resample(audio.ulaw_to_pcm(ulaw), audio.CARRIER_RATE, 16000)
    return providers.transcribe_pcm16k(pcm)


class ListeningCallee:
    """Answers what it heard, as its persona."""

    def __init__(self, callee: Callee) -> None:
        self.callee = callee
        self.heard: list[str] = []

    async def respond(self, ulaw: bytes) -> list[Step]:
        if self.callee.said_goodbye:
            return [Hangup()]
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(None, heard_text, ulaw)
        self.heard.append(text)
        reply = self.callee.reply(text)
        return [say(reply)]


def machine_script(name: str) -> list[Step]:
    """An answering machine: its greeting, a beep, then it records until the caller is
    quiet and hangs up."""
    text = MACHINE_GREETING.format(name=name or "us")
    ulaw = (espeak.speak_ulaw(text) + audio.silence_ulaw(300)
            + audio.pcm_to_ulaw(beep_pcm(0.5, 1000.0)))
    return [SayNow(text, ulaw, PICK_UP_SECONDS), Hangup()]


def screener_script(name: str) -> list[Step]:
    """A call screener asks who is calling, puts the caller on hold, then the person picks
    up; the persona's replies follow (the responder)."""
    hello = f"Hello, this is {name or 'me'}."
    return [SayNow(SCREENER_PROMPT, espeak.speak_ulaw(SCREENER_PROMPT), PICK_UP_SECONDS),
            say(SCREENER_HOLD), Pause(2.0), SayNow(hello, espeak.speak_ulaw(hello))]


async def answer(event: CarrierEvent, *, db: Database, voice_url: str,
                 hangup: Callable[[str, float], Awaitable[None]] | None = None
                 ) -> CallReport | None:
    """Pick up the simulated call of ``event`` and talk until it ends. When the stream
    closes, for whatever reason, the network ends the call (as Twilio does when a
    ``<Connect><Stream>`` has no verb after it)."""
    async with db.session(write=False) as s:
        call = await s.get(Call, event.call_ref)
        if call is None:
            return None
        row = await s.get(Contact, call.contact_id) if call.contact_id else None
        contact: dict[str, Any] | None = contact_out(row) if row else None
        number = call.to_number
    callee = ListeningCallee(Callee.for_call(event.data.get("persona"), contact, number))
    url = voice_url.rstrip("/") + stream_path("twilio", event.call_ref)
    name = str((contact or {}).get("first_name") or "")
    behaviour = event.data.get("behaviour")
    script: list[Step] = []
    responder = callee.respond
    if behaviour == "voicemail":
        script, responder = machine_script(name), None
    elif behaviour == "screened":
        script = screener_script(name)
    client = CarrierMediaClient(url, script, responder=responder, quiet_ms=QUIET_MS,
                                max_seconds=MAX_CALL_SECONDS,
                                custom_parameters={"callRef": event.call_ref})
    try:
        report = await client.run()
    except Exception:
        log.exception("simulated_callee_failed", call_id=event.call_ref)
        return None
    finally:
        if hangup is not None:
            # A carrier's "completed" follows the stream's end by a moment, never before it.
            await asyncio.sleep(STATUS_DELAY_SECONDS)
            await hangup(event.carrier_call_id, 0.0)
    log.info("simulated_callee_done", call_id=event.call_ref, closed_by=report.closed_by,
             heard=callee.heard, error=report.error)
    return report
