"""Who answered an outbound call: a person, an answering machine, or a call screener.

Pure bookkeeping plus a tone detector, no pipecat, time passed in by the caller (so each rule
is unit-tested on plain values). Three sources feed ``AnsweringMachineDetector``:

* the **carrier's verdict** (Twilio/Telnyx AMD), when the carrier has one: it wins;
* the **callee's first words** (their transcript and how long they spoke without a pause):
  "leave a message", "after the tone", "not available" ... or a greeting of 3.5 s or more
  of unbroken speech is a machine; "say your name", "why you are calling" ... is a call
  screener; a short "Hello?" is a person;
* a **beep**: ``ToneDetector`` runs the Goertzel filter at a few candidate frequencies on
  the callee's 8 kHz audio and reports a pure tone held for at least 150 ms. A beep is a
  machine, and it is also the moment to speak.

An outbound call with voicemail detection never pitches to a machine: the assistant holds
its first message until the detector decides (a person who says nothing is a person after
``INITIAL_SILENCE_SECONDS``). On a machine, the voicemail message is spoken when the greeting
ends: right after the beep, or once the machine has been quiet for
``GREETING_END_SILENCE_SECONDS`` (no beep), at the latest ``MAX_GREETING_SECONDS`` in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HUMAN = "human"
MACHINE = "machine"
SCREENER = "screener"

INITIAL_SILENCE_SECONDS = 2.0  # no word from the callee: a person waiting for us
MACHINE_GREETING_SECONDS = 3.5  # unbroken speech this long is a recorded greeting
RUN_GAP_SECONDS = 0.8  # pauses shorter than this do not break a run of speech
GREETING_END_SILENCE_SECONDS = 1.5  # a machine quiet this long, without a beep: speak
AFTER_BEEP_SECONDS = 0.2  # a beat after the beep ends
MAX_GREETING_SECONDS = 30.0

MACHINE_PHRASES = re.compile(
    r"leave (me |us )?(a |your )?(message|name|voicemail)|after the (tone|beep)"
    r"|at the (tone|beep)|(not|un) ?available|voice ?mail|mailbox|record your message"
    r"|can(no|')t (come|get) to the phone|reached the (voicemail|mailbox|number)"
    r"|you have reached|you've reached|please leave|is not in service")
SCREENER_PHRASES = re.compile(
    r"(say|state) your name|(say|state|tell me) (why|the reason)"
    r"|why (you are|you're) calling|reason for (your|the) call|call ?screen"
    r"|who is calling and why|record your name")
HOLD_PHRASES = re.compile(r"\bhold\b|stay on the line|one moment|connect(ing)? you|see if")


def classify_words(text: str) -> str | None:
    """MACHINE or SCREENER from what the callee said, or None when the words do not say."""
    t = " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())
    if SCREENER_PHRASES.search(t):
        return SCREENER
    if MACHINE_PHRASES.search(t):
        return MACHINE
    return None


@dataclass
class Verdict:
    kind: str  # HUMAN | MACHINE | SCREENER
    source: str  # carrier | words | greeting_length | beep | silence
    at: float


@dataclass
class AnsweringMachineDetector:
    """One call's answering-machine state. Feed it the callee's speech (VAD start/stop),
    transcripts, beeps and the carrier's verdict; read ``verdict`` and, on a machine,
    ``ready_to_leave_message``."""

    started_at: float
    verdict: Verdict | None = None
    beep_at: float | None = None  # end of the (last) beep
    speaking: bool = False
    run_started: float | None = None  # start of the current run of speech
    last_speech_end: float | None = None
    longest_run: float = 0.0
    heard: list[str] = field(default_factory=list)
    screened: bool = False  # the assistant answered a screener

    # ------------------------------------------------------------ inputs

    def carrier_verdict(self, kind: str, at: float) -> Verdict | None:
        """The carrier's AMD: ``machine`` wins over a heuristic verdict; ``human`` decides
        only an open call (a person may still be screened)."""
        if kind == MACHINE and (self.verdict is None or self.verdict.kind != MACHINE):
            self.verdict = Verdict(MACHINE, "carrier", at)
            return self.verdict
        if kind == HUMAN and self.verdict is None:
            self.verdict = Verdict(HUMAN, "carrier", at)
            return self.verdict
        return None

    def speech_started(self, at: float) -> None:
        self.speaking = True
        if self.run_started is None or (self.last_speech_end is not None
                                        and at - self.last_speech_end > RUN_GAP_SECONDS):
            self.run_started = at

    def speech_stopped(self, at: float) -> None:
        self.speaking = False
        self.last_speech_end = at
        if self.run_started is not None:
            self.longest_run = max(self.longest_run, at - self.run_started)

    def beep(self, ended_at: float) -> Verdict | None:
        self.beep_at = ended_at
        if self.verdict is None or self.verdict.kind != MACHINE:
            self.verdict = Verdict(MACHINE, "beep", ended_at)
            return self.verdict
        return None

    def user_turn(self, text: str, at: float) -> Verdict | None:
        """A finished turn of the callee: decide from its words and its length. Returns the
        new verdict, if this turn changed it."""
        self.heard.append(text)
        words = classify_words(text)
        if words == MACHINE and (self.verdict is None or self.verdict.kind != MACHINE):
            self.verdict = Verdict(MACHINE, "words", at)
            return self.verdict
        if words == SCREENER and (self.verdict is None or self.verdict.kind == SCREENER):
            self.verdict = Verdict(SCREENER, "words", at)
            return self.verdict
        if self.verdict is not None and self.verdict.kind != SCREENER:
            return None
        if self.verdict is not None and HOLD_PHRASES.search(text.lower()):
            return None  # the screener asks us to hold: the person is not there yet
        if self.longest_run >= MACHINE_GREETING_SECONDS:
            self.verdict = Verdict(MACHINE, "greeting_length", at)
            return self.verdict
        if text.strip():
            # A short answer (or, after a screener, the person picking up).
            self.verdict = Verdict(HUMAN, "words", at)
            return self.verdict
        return None

    def tick(self, now: float) -> Verdict | None:
        """Time passing: unbroken speech long enough is a machine even before its turn
        ends; no speech at all is a person waiting for us."""
        if self.verdict is not None:
            return None
        if self.speaking and self.run_started is not None \
                and now - self.run_started >= MACHINE_GREETING_SECONDS:
            self.verdict = Verdict(MACHINE, "greeting_length", now)
            return self.verdict
        if self.run_started is None and now - self.started_at >= INITIAL_SILENCE_SECONDS:
            self.verdict = Verdict(HUMAN, "silence", now)
            return self.verdict
        return None

    # ------------------------------------------------------------ decisions

    @property
    def kind(self) -> str | None:
        return self.verdict.kind if self.verdict else None

    def ready_to_leave_message(self, now: float) -> bool:
        """On a machine: the greeting is over (beep, or quiet long enough, or too long)."""
        if self.kind != MACHINE:
            return False
        if now - self.started_at >= MAX_GREETING_SECONDS:
            return True
        if self.speaking:
            return False
        if self.beep_at is not None:
            return now - self.beep_at >= AFTER_BEEP_SECONDS
        quiet_since = self.last_speech_end if self.last_speech_end is not None \
            else self.verdict.at if self.verdict else now
        return now - max(quiet_since, self.verdict.at if self.verdict else 0) \
            >= GREETING_END_SILENCE_SECONDS

    def record(self) -> dict[str, Any]:
        v = self.verdict
        return {"answered_by": v.kind if v else "unknown", "detected_by": v.source if v else None,
                "beep": self.beep_at is not None,
                "longest_greeting_run_seconds": round(self.longest_run, 2)}


# ---------------------------------------------------------------- the beep


BEEP_FREQUENCIES = (400.0, 440.0, 480.0, 500.0, 600.0, 700.0, 800.0, 850.0, 900.0, 950.0,
                    1000.0, 1050.0, 1100.0, 1200.0, 1300.0, 1400.0, 1500.0, 1600.0, 1800.0,
                    2000.0)
TONE_RATE = 8000
TONE_MIN_SECONDS = 0.15  # held at least this long
TONE_PURITY = 0.6  # share of the frame's energy at the tone's frequency
TONE_MIN_RMS = 300.0  # 16-bit RMS: not line noise


def _goertzel_basis(n: int, rate: int) -> np.ndarray:
    """Per candidate frequency f, the Goertzel filter's result for a block of ``n`` samples
    in closed form: |sum x[i]·e^(-j2πfi/rate)|² = (x·cos)² + (x·sin)². One small matrix
    product per 20 ms frame instead of a Python loop per sample."""
    t = np.arange(n) / rate
    w = 2 * math.pi * np.asarray(BEEP_FREQUENCIES)[:, None] * t[None, :]
    return np.vstack([np.cos(w), np.sin(w)])


class ToneDetector:
    """A beep on the callee's audio: one of ``BEEP_FREQUENCIES`` holding most of the energy
    of consecutive 20 ms frames for ``TONE_MIN_SECONDS`` or more. ``feed`` returns the time
    the beep ended (the frame after it), once per beep."""

    def __init__(self, rate: int = TONE_RATE) -> None:
        self.rate = rate
        self._bases: dict[int, np.ndarray] = {}
        self._freq: int | None = None
        self._since: float | None = None
        self._last: float | None = None
        self.beeps: list[tuple[float, float, float]] = []  # start, end, frequency

    def frequency(self, pcm: bytes) -> int | None:
        """Index of the pure tone in this frame (16-bit PCM), or None."""
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        n = len(x)
        if n < 64:
            return None
        energy = float(np.dot(x, x))
        if energy / n < TONE_MIN_RMS ** 2:
            return None
        basis = self._bases.get(n)
        if basis is None:
            basis = self._bases[n] = _goertzel_basis(n, self.rate).astype(np.float32)
        proj = basis @ x
        k = len(BEEP_FREQUENCIES)
        power = proj[:k] ** 2 + proj[k:] ** 2
        best = int(np.argmax(power))
        # A pure tone of amplitude A at f: energy = n·A²/2, power = (n·A/2)², so
        # 2·power / (n·energy) is 1 for a pure tone and small for speech.
        purity = 2.0 * float(power[best]) / (n * energy)
        return best if purity >= TONE_PURITY else None

    def feed(self, pcm: bytes, at: float) -> float | None:
        """One frame received at ``at``; the beep's end when a beep has just ended."""
        f = self.frequency(pcm)
        ended: float | None = None
        if f is not None and (f == self._freq or (self._freq is not None and abs(
                BEEP_FREQUENCIES[f] - BEEP_FREQUENCIES[self._freq]) <= 60)):
            self._last = at
            return None
        if self._freq is not None and self._since is not None and self._last is not None \
                and self._last - self._since + 0.02 >= TONE_MIN_SECONDS:
            ended = at
            self.beeps.append((self._since, at, BEEP_FREQUENCIES[self._freq]))
        self._freq, self._since, self._last = (f, at, at) if f is not None else (None, None, None)
        return ended


def beep_pcm(seconds: float = 0.5, frequency: float = 1000.0, rate: int = TONE_RATE,
             amplitude: int = 8000) -> bytes:
    """A voicemail beep (16-bit PCM): what the simulated machine plays after its greeting."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    return (np.sin(2 * math.pi * frequency * t) * amplitude).astype("<i2").tobytes()
