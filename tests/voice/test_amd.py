"""Who answered: the answering-machine rules on plain values, the beep detector on audio."""

from __future__ import annotations

import pytest

from callfleet.voice import amd, audio
from callfleet.voice.amd import (
    HUMAN,
    MACHINE,
    SCREENER,
    AnsweringMachineDetector,
    ToneDetector,
    beep_pcm,
    classify_words,
)


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i:i + 320] for i in range(0, len(pcm) - 319, 320)]


def feed(detector: ToneDetector, pcm: bytes, start: float = 0.0) -> list[float]:
    ended = []
    for i, f in enumerate(frames(pcm)):
        at = detector.feed(f, start + i * 0.02)
        if at is not None:
            ended.append(at)
    return ended


@pytest.mark.parametrize("frequency", [440.0, 1000.0, 1400.0])
def test_a_beep_is_found_where_it_ends(frequency: float) -> None:
    silence = bytes(320 * 25)
    pcm = silence + beep_pcm(0.4, frequency) + silence
    ended = feed(ToneDetector(), pcm)
    assert len(ended) == 1
    assert ended[0] == pytest.approx(0.5 + 0.4, abs=0.041)


def test_a_click_or_a_short_tone_is_not_a_beep() -> None:
    assert feed(ToneDetector(), bytes(3200) + beep_pcm(0.06) + bytes(3200)) == []


def test_speech_is_not_a_beep() -> None:
    espeak = pytest.importorskip("callfleet.voice.espeak")
    if not espeak.available():
        pytest.skip("espeak-ng not installed")
    ulaw = espeak.speak_ulaw("Hi, you have reached Sam. Please leave a message after the tone.")
    assert feed(ToneDetector(), audio.ulaw_to_pcm(ulaw)) == []


def test_a_beep_through_mu_law_is_still_a_beep() -> None:
    pcm = audio.ulaw_to_pcm(audio.pcm_to_ulaw(beep_pcm(0.5)))
    assert len(feed(ToneDetector(), pcm + bytes(640))) == 1


@pytest.mark.parametrize(("text", "kind"), [
    ("Hi, you've reached Sam. Please leave a message after the tone.", MACHINE),
    ("The person you are calling is not available.", MACHINE),
    ("Welcome to the voicemail of Sam", MACHINE),
    ("Please say your name and why you are calling.", SCREENER),
    ("State your name and the reason for your call", SCREENER),
    ("Hello?", None),
    ("Yes, speaking. Who is this?", None),
])
def test_words_say_machine_or_screener(text: str, kind: str | None) -> None:
    assert classify_words(text) == kind


def test_a_short_hello_is_a_person() -> None:
    d = AnsweringMachineDetector(0.0)
    d.speech_started(0.5)
    d.speech_stopped(1.1)
    v = d.user_turn("Hello?", 1.8)
    assert v is not None and (v.kind, v.source) == (HUMAN, "words")


def test_a_long_unbroken_greeting_is_a_machine_before_it_ends() -> None:
    d = AnsweringMachineDetector(0.0)
    d.speech_started(0.4)
    d.speech_stopped(1.5)
    d.speech_started(1.9)  # a pause shorter than a run gap: the same run
    assert d.tick(3.0) is None
    v = d.tick(0.4 + amd.MACHINE_GREETING_SECONDS)
    assert v is not None and (v.kind, v.source) == (MACHINE, "greeting_length")


def test_silence_is_a_person_waiting_for_us() -> None:
    d = AnsweringMachineDetector(10.0)
    assert d.tick(10.0 + amd.INITIAL_SILENCE_SECONDS - 0.1) is None
    v = d.tick(10.0 + amd.INITIAL_SILENCE_SECONDS)
    assert v is not None and (v.kind, v.source) == (HUMAN, "silence")


def test_the_message_waits_for_the_beep_or_the_end_of_the_greeting() -> None:
    d = AnsweringMachineDetector(0.0)
    d.speech_started(0.3)
    d.user_turn("You have reached Sam, please leave a message", 3.0)
    assert d.kind == MACHINE
    d.speech_started(3.1)
    assert not d.ready_to_leave_message(3.5)  # still talking
    d.speech_stopped(4.0)
    d.beep(4.6)
    assert not d.ready_to_leave_message(4.7)
    assert d.ready_to_leave_message(4.6 + amd.AFTER_BEEP_SECONDS)
    # Without a beep: once the machine has been quiet long enough.
    e = AnsweringMachineDetector(0.0)
    e.carrier_verdict(MACHINE, 2.0)
    e.speech_started(2.5)
    e.speech_stopped(4.0)
    assert not e.ready_to_leave_message(5.0)
    assert e.ready_to_leave_message(4.0 + amd.GREETING_END_SILENCE_SECONDS)


def test_the_carrier_machine_verdict_wins_a_human_one_does_not_overrule() -> None:
    d = AnsweringMachineDetector(0.0)
    d.user_turn("Hello?", 1.0)
    assert d.kind == HUMAN
    assert d.carrier_verdict(MACHINE, 3.0) is not None and d.kind == MACHINE
    e = AnsweringMachineDetector(0.0)
    e.user_turn("Please leave a message after the tone", 2.0)
    assert e.carrier_verdict(HUMAN, 3.0) is None and e.kind == MACHINE


def test_a_screener_then_hold_then_the_person() -> None:
    d = AnsweringMachineDetector(0.0)
    assert d.user_turn("Please say your name and why you are calling", 2.0).kind == SCREENER
    assert d.user_turn("Thanks, please stay on the line", 6.0) is None
    assert d.kind == SCREENER
    v = d.user_turn("Hello, this is Sam.", 9.0)
    assert v is not None and v.kind == HUMAN
