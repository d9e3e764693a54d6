"""The call's bookkeeping (voice.control), the stream framing and tokens, and the turn
policy: pure rules on plain values."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from callfleet.secrets import SecretBox
from callfleet.voice.control import HANGUP_GRACE_SECONDS, CallControl, words_heard
from callfleet.voice.framing import HandshakeError, TwilioFraming
from callfleet.voice.tokens import stream_path, stream_token, valid_token

KEY = SecretBox([Fernet.generate_key()])


def test_spoken_text_is_what_played_before_the_clear() -> None:
    c = CallControl("call_1")
    c.audio_queued(2000)
    m1 = c.sentence_queued("Hello there, this is Alex.", 1.0)
    c.audio_queued(2000)
    c.sentence_queued("Do you have a minute to talk today?", 1.1)
    c.mark_echoed(m1, 3.0)  # first sentence played at 3.0
    c.cleared(4.0)  # the callee cut in 1 s into the 2 s second sentence
    msg = c.messages[0]
    assert msg["text"] == "Hello there, this is Alex. Do you have a"
    assert msg["planned"] == "Hello there, this is Alex. Do you have a minute to talk today?"
    assert msg["interrupted"] is True
    assert [e["type"] for e in c.events] == ["barge_in"]


def test_a_clear_after_the_turn_played_is_not_a_barge_in() -> None:
    c = CallControl("call_1")
    c.audio_queued(500)
    m = c.sentence_queued("Hi.", 1.0)
    c.mark_echoed(m, 1.6)
    c.cleared(2.0)  # pipecat clears at every user turn start
    assert c.events == []
    assert c.messages[0] == {"role": "assistant", "text": "Hi.", "time": 1.0}


def test_marks_echoed_after_a_clear_were_dropped_not_heard() -> None:
    c = CallControl("call_1")
    c.audio_queued(1000)
    m = c.sentence_queued("One two three four.", 1.0)
    c.cleared(1.5)
    c.mark_echoed(m, 1.6)  # Twilio echoes marks of cleared audio too
    assert c.messages[0]["text"] == "One two"
    assert c.unechoed() == 0  # nothing queued since the clear is awaited


def test_hang_up_waits_for_every_mark_then_confirms() -> None:
    c = CallControl("call_1")
    c.request_hangup("assistant_ended_call", "answered", 10.0, goodbye_seconds=2.0)
    c.audio_queued(1500)
    m = c.sentence_queued("Thanks for your time. Goodbye!", 10.1)
    tail = c.tail_mark(10.2)  # the end of the goodbye's speech went through
    assert tail is not None
    assert not c.ready_to_hang_up(10.5)
    c.mark_echoed(m, 11.6)
    assert not c.ready_to_hang_up(11.6)
    c.mark_echoed(tail, 11.7)
    assert c.ready_to_hang_up(11.7)
    assert c.goodbye_confirmed is True
    c.finish(11.7, "customer_ended_call")
    assert (c.ended_reason, c.outcome) == ("assistant_ended_call", "answered")


def test_audio_behind_the_last_mark_holds_the_hang_up() -> None:
    c = CallControl("call_1")
    c.request_hangup("assistant_ended_call", "answered", 0.0)
    c.audio_queued(300)
    c.mark_echoed(c.sentence_queued("Bye.", 0.1), 0.5)
    c.mark_echoed(c.tail_mark(0.2) or "", 0.5)
    c.audio_queued(200)  # more audio after the last mark: not played yet
    assert not c.ready_to_hang_up(1.0)


def test_hang_up_waits_for_the_goodbye_to_reach_the_speech_service() -> None:
    c = CallControl("call_1")
    c.request_hangup("silence_timeout", "no_answer", 0.0, goodbye_seconds=1.0)
    assert not c.ready_to_hang_up(1.0)  # nothing queued yet: the goodbye is on its way
    c.request_hangup("other", None, 0.5)  # the first request stands
    assert c.hangup is not None and c.hangup.reason == "silence_timeout"


def test_without_an_echo_the_deadline_hangs_up_unconfirmed() -> None:
    c = CallControl("call_1")
    c.request_hangup("assistant_ended_call", "answered", 0.0, goodbye_seconds=1.0)
    c.audio_queued(1000)
    c.sentence_queued("Goodbye!", 0.1)
    assert not c.ready_to_hang_up(1.0 + HANGUP_GRACE_SECONDS - 0.01)
    c.extend_deadline(500)
    assert not c.ready_to_hang_up(1.0 + HANGUP_GRACE_SECONDS + 0.4)
    assert c.ready_to_hang_up(1.0 + HANGUP_GRACE_SECONDS + 0.5)
    assert c.goodbye_confirmed is False


def test_callee_hanging_up_mid_sentence_keeps_what_was_heard() -> None:
    c = CallControl("call_1")
    c.user_said("Yes?", 0.5)
    c.audio_queued(3000)
    c.sentence_queued("Great, let me tell you about our offer today.", 1.0)
    c.finish(2.0, "customer_ended_call", "answered")
    last = c.messages[-1]
    assert last["interrupted"] and last["text"] == "Great, let me"
    assert c.ended_reason == "customer_ended_call"
    assert c.transcript() == "User: Yes?\nAI: Great, let me"


@given(st.lists(st.text(alphabet="abc ", min_size=1), min_size=1, max_size=12),
       st.floats(min_value=-1, max_value=2, allow_nan=False))
def test_words_heard_is_a_prefix_of_whole_words(words: list[str], fraction: float) -> None:
    text = " ".join(words)
    heard = words_heard(text, fraction)
    assert text.split()[:len(heard.split())] == heard.split()
    if fraction >= 1:
        assert heard.split() == text.split()
    if fraction <= 0:
        assert heard == ""


def test_twilio_start_is_parsed_and_bad_handshakes_refused() -> None:
    f = TwilioFraming()
    assert f.start(f.parse('{"event": "connected", "protocol": "Call"}')) is None
    start = f.start(f.parse(json.dumps({"event": "start", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1",
        "customParameters": {"a": "b"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})))
    assert start is not None
    assert (start.stream_id, start.call_sid, start.parameters) == ("MZ1", "CA1", {"a": "b"})
    for bad in ('nope', '[1]', '{"event": "media"}', '{"event": "start"}',
                ('{"event": "start", "start": {"streamSid": "MZ1", "mediaFormat": '
                 '{"encoding": "audio/l16", "sampleRate": 16000}}}')):
        with pytest.raises(HandshakeError):
            f.start(f.parse(bad))
    assert f.mark("MZ1", "cf-1") == {"event": "mark", "streamSid": "MZ1",
                                     "mark": {"name": "cf-1"}}


def test_stream_tokens_name_one_call_under_one_key() -> None:
    token = stream_token("call_1", KEY)
    assert valid_token("call_1", token, KEY)
    assert not valid_token("call_2", token, KEY)
    assert not valid_token("call_1", token, SecretBox([Fernet.generate_key()]))
    assert not valid_token("call_1", "", KEY)
    assert not valid_token("call_1", token[:-1] + ("a" if token[-1] != "a" else "b"), KEY)
    assert not valid_token("call_1", token.upper(), KEY)
    assert stream_path("twilio", "call_1", KEY) == f"/voice/twilio/call_1/{token}"
