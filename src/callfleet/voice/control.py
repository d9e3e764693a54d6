"""The state of one voice call, kept beside its pipeline: what was said (and what of it the
callee actually heard), playout marks, the hang-up decision, per-turn latencies, DTMF.

Pure bookkeeping: no pipecat, no I/O, time passed in by the caller, so every rule here is
unit-tested on plain values.

Playout marks. After every sentence of the assistant's audio the pipeline sends a ``mark``;
the carrier echoes it when the audio queued before it has *played* (Twilio and Telnyx both do,
and both also echo marks whose audio a ``clear`` dropped). A mark echoed before the last
``clear`` was sent therefore means "the callee heard this sentence"; after it, "dropped".

Hang-up. The call is hung up only once the goodbye has played: every mark sent is echoed and
nothing was queued behind the last one (``ready_to_hang_up``), or, if the carrier never
confirms, after the goodbye's own length plus a grace period (``hangup_deadline``). Hanging
up when the last byte was *sent* cut goodbyes short by up to 2 s (docs/decisions/0027).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MARK_PREFIX = "cf"
HANGUP_GRACE_SECONDS = 2.0


@dataclass
class Sentence:
    text: str
    audio_ms: float
    mark: str
    queued_at: float
    echoed_at: float | None = None


@dataclass
class AssistantTurn:
    started_at: float  # seconds since the call connected
    sentences: list[Sentence] = field(default_factory=list)
    interrupted_at: float | None = None
    message: dict[str, Any] | None = None

    @property
    def planned(self) -> str:
        return " ".join(s.text.strip() for s in self.sentences if s.text.strip())


@dataclass
class HangupRequest:
    reason: str  # ended_reason of the call
    outcome: str | None  # the conversation's outcome (answered, opted_out, ...)
    requested_at: float
    deadline: float
    awaiting_speech: bool = True  # the goodbye has not yet gone through text-to-speech


def words_heard(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``'s words (what a callee heard of a cut sentence)."""
    words = text.split()
    n = int(len(words) * max(0.0, min(1.0, fraction)) + 1e-9)
    return " ".join(words[:n])


class CallControl:
    """Per-call state shared by the pipeline's processors and the media session."""

    def __init__(self, call_id: str, *, started_at: float = 0.0) -> None:
        self.call_id = call_id
        self.started_at = started_at  # loop time of the stream's start
        self.messages: list[dict[str, Any]] = []
        self.turns: list[AssistantTurn] = []
        self.latencies: list[dict[str, Any]] = []
        self.dtmf: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.hangup: HangupRequest | None = None
        self.hung_up_at: float | None = None
        self.ended_reason: str | None = None
        self.outcome: str | None = None
        self.goodbye_confirmed: bool | None = None
        self.callee_spoke = False
        self.last_clear_at: float | None = None
        # Outbound with voicemail detection: who answered (``voice.amd``) and, on a
        # machine, whether a message was left.
        self.answered_by: dict[str, Any] | None = None
        self.voicemail_left: bool | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.transfer: dict[str, Any] | None = None
        # The carrier's answering-machine verdict, once it arrived (``machine_verdict``).
        self.amd: dict[str, Any] | None = None
        self._marks: dict[str, Sentence] = {}
        self._n_marks = 0
        self._pending_audio_ms = 0.0  # audio queued since the last sentence mark
        self._open: AssistantTurn | None = None

    # ------------------------------------------------------------ time

    def rel(self, at: float) -> float:
        return round(max(0.0, at - self.started_at), 2)

    def event(self, kind: str, at: float, **data: Any) -> None:
        self.events.append({"type": kind, "time": self.rel(at), **data})

    # ------------------------------------------------------------ the callee

    def user_said(self, text: str, at: float) -> None:
        text = text.strip()
        if not text:
            return
        self._close_turn(at)
        self.callee_spoke = True
        self.messages.append({"role": "user", "text": text, "time": self.rel(at)})

    def dtmf_pressed(self, digit: str, at: float) -> None:
        self.dtmf.append({"digit": digit, "time": self.rel(at)})

    # ------------------------------------------------------------ the assistant's audio

    def audio_queued(self, ms: float) -> None:
        self._pending_audio_ms += ms

    def sentence_queued(self, text: str, at: float) -> str:
        """A sentence's audio has been queued for the carrier; returns the mark to send
        behind it."""
        turn = self._open
        if turn is None:
            turn = self._open = AssistantTurn(started_at=self.rel(at))
            self.turns.append(turn)
            turn.message = {"role": "assistant", "text": "", "time": turn.started_at}
            self.messages.append(turn.message)
        self._n_marks += 1
        name = f"{MARK_PREFIX}-{self._n_marks}"
        sentence = Sentence(text, self._pending_audio_ms, name, at)
        self._pending_audio_ms = 0.0
        turn.sentences.append(sentence)
        self._marks[name] = sentence
        self._refresh(turn)
        return name

    def tail_mark(self, at: float) -> str | None:
        """A mark behind the end of a speech (the output flushes its last partial chunk of
        audio only then); None when no assistant turn is open."""
        if self.hangup is not None and self.hangup.requested_at <= at:
            self.hangup.awaiting_speech = False
        if self._open is None:
            return None
        name = self.sentence_queued("", at)
        self._open = None  # the next speech is a new message (it may still be playing)
        return name

    def mark_echoed(self, name: str, at: float) -> None:
        sentence = self._marks.get(name)
        if sentence is None or sentence.echoed_at is not None:
            return
        sentence.echoed_at = at
        for turn in reversed(self.turns[-4:]):
            if sentence in turn.sentences:
                self._refresh(turn)
                break

    def _playing(self) -> AssistantTurn | None:
        """The assistant turn whose audio the carrier may still be playing."""
        turn = self._open or (self.turns[-1] if self.turns else None)
        if turn is None or turn.interrupted_at is not None:
            return None
        if any(s.echoed_at is None and s.text for s in turn.sentences):
            return turn
        return None

    def cleared(self, at: float) -> None:
        """The pipeline sent ``clear`` (the callee started talking). When the assistant's
        audio was still playing, that is a barge-in: its turn ends where the callee cut it."""
        turn = self._playing()
        self.last_clear_at = at
        if turn is not None:
            turn.interrupted_at = at
            self._refresh(turn)
            self.event("barge_in", at)
        self._close_turn(at)
        self._pending_audio_ms = 0.0

    def _heard(self, s: Sentence) -> bool:
        return s.echoed_at is not None and (self.last_clear_at is None
                                            or s.echoed_at <= self.last_clear_at
                                            or s.queued_at > self.last_clear_at)

    def spoken(self, turn: AssistantTurn, until: float | None = None) -> str:
        """What the callee heard of ``turn``: its played sentences, and of the sentence
        playing when it was cut (``until``), the share of words its played audio covers."""
        parts: list[str] = []
        play_from: float | None = None
        for s in turn.sentences:
            if self._heard(s):
                parts.append(s.text.strip())
                play_from = s.echoed_at
                continue
            if until is not None and s.audio_ms > 0:
                start = play_from if play_from is not None else s.queued_at
                fraction = (until - start) * 1000 / s.audio_ms
                partial = words_heard(s.text, fraction)
                if partial:
                    parts.append(partial)
            break
        return " ".join(p for p in parts if p)

    def _refresh(self, turn: AssistantTurn) -> None:
        if turn.message is None:
            return
        cut = turn.interrupted_at
        turn.message["text"] = self.spoken(turn, cut)
        planned = turn.planned
        if cut is not None:
            turn.message["interrupted"] = True
        if planned != turn.message["text"]:
            turn.message["planned"] = planned
        else:
            turn.message.pop("planned", None)

    def _close_turn(self, at: float) -> None:
        if self._open is not None:
            self._refresh(self._open)
            self._open = None

    # ------------------------------------------------------------ hanging up

    def request_hangup(self, reason: str, outcome: str | None, at: float,
                       goodbye_seconds: float = 0.0, *, speech: bool = True) -> None:
        """End the call once the goodbye has played. ``speech``: a goodbye was just sent to
        text-to-speech (the hang-up also waits for the end of its audio to pass)."""
        if self.hangup is None:
            self.hangup = HangupRequest(reason, outcome, at,
                                        at + goodbye_seconds + HANGUP_GRACE_SECONDS, speech)

    def extend_deadline(self, audio_ms: float) -> None:
        """The goodbye's audio is longer than estimated: wait for it."""
        if self.hangup is not None:
            self.hangup.deadline += audio_ms / 1000

    def unechoed(self) -> int:
        """Marks still to come back. Those queued before the last ``clear`` never will:
        the pipeline dropped them with their audio."""
        clear = self.last_clear_at
        return sum(1 for s in self._marks.values()
                   if s.echoed_at is None and (clear is None or s.queued_at > clear))

    def ready_to_hang_up(self, now: float, settle: float = 0.3) -> bool:
        """True once the goodbye has played (every mark echoed, nothing queued after the
        last one) or the deadline passed."""
        h = self.hangup
        if h is None:
            return False
        if now >= h.deadline:
            self.goodbye_confirmed = False
            return True
        if now - h.requested_at < settle or self._pending_audio_ms > 0 or h.awaiting_speech:
            return False
        if self.unechoed() == 0:
            self.goodbye_confirmed = True
            return True
        return False

    def finish(self, at: float, reason: str, outcome: str | None = None) -> None:
        """The call is over (hung up by either side). The open turn's text is what played."""
        if self.ended_reason is not None:
            return
        turn = self._playing()
        if turn is not None:
            turn.interrupted_at = at
            self._refresh(turn)
        self._close_turn(at)
        self.hung_up_at = at
        self.ended_reason = self.hangup.reason if self.hangup else reason
        self.outcome = self.hangup.outcome if self.hangup and self.hangup.outcome else outcome
        self.event("ended", at, reason=self.ended_reason)

    # ------------------------------------------------------------ the carrier's AMD

    def machine_verdict(self, answered_by: str, amd: str | None, at: float) -> None:
        """The carrier's answering-machine detection finished mid-call (``answered_by``
        ``machine`` or ``human``; ``amd`` its own result when known): kept and recorded as an
        event on the call's timeline, once (a repeated verdict changes nothing). What the
        call does about it is the voicemail gate's (``voice.voicemail``)."""
        if self.amd is not None:
            return
        self.amd = {"answered_by": answered_by, "amd": amd, "time": self.rel(at)}
        self.event("carrier_amd", at, answered_by=answered_by, amd=amd)

    @property
    def machine(self) -> bool:
        return bool(self.amd and self.amd["answered_by"] == "machine")

    # ------------------------------------------------------------ latency

    def latency(self, **values: Any) -> None:
        self.latencies.append({k: v for k, v in values.items() if v is not None})

    def transcript(self) -> str:
        return "\n".join(f"{'AI' if m['role'] == 'assistant' else 'User'}: {m['text']}"
                         for m in self.messages if m.get("text"))

    def record(self) -> dict[str, Any]:
        """Everything worth keeping on the call."""
        return {
            "messages": [m for m in self.messages if m.get("text") or m["role"] == "user"],
            "transcript": self.transcript(),
            "latency": self.latencies,
            "dtmf": self.dtmf,
            "events": self.events,
            "ended_reason": self.ended_reason,
            "outcome": self.outcome,
            "goodbye_confirmed": self.goodbye_confirmed,
            "tool_calls": self.tool_calls,
            "transfer": self.transfer,
            "answered_by": self.answered_by,
            "voicemail_left": self.voicemail_left,
        }
