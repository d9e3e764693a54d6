"""The deterministic post-call extractor (no LLM): examples per field type and properties."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callfleet.conversation.extract.extractor import ExtractedValue, _extract, extract

NOW = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)  # Wednesday 12 March 2025, 11:00 in New York


def F(key: str, ftype: str, description: str = "", options: list[str] | None = None) -> dict:
    f: dict[str, Any] = {"key": key, "type": ftype, "description": description,
                         "target": "custom_fields"}
    if options is not None:
        f["options"] = options
    return f


def convo(*turns: str) -> list[dict[str, Any]]:
    """Alternating turns, the assistant first: convo("Question?", "Answer.", ...)."""
    return [{"role": "assistant" if i % 2 == 0 else "user", "text": t, "time": float(i)}
            for i, t in enumerate(turns)]


def run(turns: list[dict[str, Any]], fields: list[dict], *, now: datetime = NOW,
        tz: str = "America/New_York", region: str = "US") -> dict[str, Any]:
    got = extract(turns, fields, now=now, timezone=tz, region=region)
    return {k: v.value for k, v in got.items()}


EMAIL = F("email", "email", "The email address the contact gave for more details.")
PHONE = F("phone", "phone", "Best phone number to reach the contact.")
CALLBACK = F("callback_date", "date", "The date to call the contact back.")
GUESTS = F("guests", "number", "How many guests they will bring.")
BUDGET = F("budget", "number", "Monthly budget in US dollars.")
TEAM = F("team_size", "number", "Number of employees at the company.")
NEWSLETTER = F("newsletter", "boolean", "Whether the contact wants the monthly newsletter.")
USES_CRM = F("uses_crm", "boolean", "Whether the company already uses a CRM.")
PLAN = F("plan", "select", "Which plan the contact prefers.", ["basic", "premium", "enterprise"])
METHOD = F("contact_method", "select", "How the contact prefers to be contacted.",
           ["email", "phone", "sms"])


# ---------------------------------------------------------------------------------- email


@pytest.mark.parametrize(("answer", "expected"), [
    ("Sure, it's sam.lee@example.org.", "sam.lee@example.org"),
    ("john dot smith at gmail dot com", "john.smith@gmail.com"),
    ("It's J O H N at fastmail dot com.", "john@fastmail.com"),
    ("you can use t-o-m at acme dash tools dot io", "tom@acme-tools.io"),
    ("mary underscore jones at company dot co dot uk please", "mary_jones@company.co.uk"),
    ("Send it to Dana@Northwind.IO", "Dana@northwind.io"),
    ("it's bob at sign example dot net", "bob@example.net"),
])
def test_email_literal_and_spelled_out(answer: str, expected: str) -> None:
    got = run(convo("What's the best email for you?", answer), [EMAIL])
    assert got == {"email": expected}


def test_email_correction_takes_the_later_one() -> None:
    got = run(convo("Where should we send the details?",
                    "old.me@aol.com. Actually no, use new.me@proton.me instead."), [EMAIL])
    assert got == {"email": "new.me@proton.me"}


def test_email_correction_in_a_later_turn() -> None:
    got = run(convo("What's your email?", "pat at example dot com.",
                    "Thanks Pat.", "Oh, sorry, it's pat dot k at example dot com."), [EMAIL])
    assert got == {"email": "pat.k@example.com"}


@pytest.mark.parametrize("answer", [
    "I don't have an email.",
    "Just use the one you already have on file.",
    "I'd rather not give that out.",
    "We'll be there at six.",
    "We're with Gusto at the moment.",
])
def test_no_email_when_none_is_given(answer: str) -> None:
    assert run(convo("Can I get an email address?", answer), [EMAIL]) == {}


def test_email_the_assistant_said_is_not_the_contacts() -> None:
    got = run(convo("You can also write to help@vendor.com. Anything else?",
                    "Okay, help@vendor.com, got it."), [EMAIL])
    assert got == {}


def test_only_user_turns_are_evidence() -> None:
    turns = convo("Is your email still ann@example.com?", "Hmm, let me think.")
    assert run(turns, [EMAIL]) == {}


# ---------------------------------------------------------------------------------- phone


@pytest.mark.parametrize(("answer", "expected"), [
    ("Call my cell, (415) 555-0132.", "+14155550132"),
    ("It's four one five, five five five, zero one three two.", "+14155550132"),
    ("My mobile is 212.555.0148, extension 12.", "+12125550148"),
    ("+1 646 555 0190", "+16465550190"),
])
def test_phone_formats(answer: str, expected: str) -> None:
    got = run(convo("What's the best number to reach you?", answer), [PHONE])
    assert got == {"phone": expected}


def test_phone_uses_the_region() -> None:
    got = run(convo("What's the best number to reach you?", "My mobile, 07812 345678."),
              [PHONE], tz="Europe/London", region="GB")
    assert got == {"phone": "+447812345678"}


def test_phone_ignores_numbers_the_assistant_said() -> None:
    turns = convo("Our office is 415-555-0100. Is there another number for you?",
                  "No, I'll call 415-555-0100 if I need you.")
    assert run(turns, [PHONE]) == {}


def test_phone_corrected_tail() -> None:
    got = run(convo("Which number should we call?", "(773) 555-0138. Sorry, 0183."), [PHONE])
    assert got == {"phone": "+17735550183"}


def test_phone_not_given() -> None:
    assert run(convo("Is there a better number?", "You have my number already."), [PHONE]) == {}


# ---------------------------------------------------------------------------------- date


@pytest.mark.parametrize(("answer", "expected"), [
    ("2025-04-02 works.", "2025-04-02"),
    ("March 20th, please.", "2025-03-20"),
    ("On the 3rd of April.", "2025-04-03"),
    ("January 5th.", "2026-01-05"),  # already past this year: next year
    ("Tomorrow is fine.", "2025-03-13"),
    ("The day after tomorrow.", "2025-03-14"),
    ("Next Tuesday.", "2025-03-18"),
    ("Thursday afternoon.", "2025-03-13"),
    ("In two weeks.", "2025-03-26"),
    ("In 10 days", "2025-03-22"),
    ("The 28th.", "2025-03-28"),
    ("The 5th.", "2025-04-05"),
    ("End of the month.", "2025-03-31"),
    ("Let's say Friday the 21st.", "2025-03-21"),
])
def test_dates(answer: str, expected: str) -> None:
    got = run(convo("When should we call you back?", answer), [CALLBACK])
    assert got == {"callback_date": expected}


def test_relative_dates_use_the_contacts_time_zone() -> None:
    late = datetime(2025, 3, 13, 2, 30, tzinfo=UTC)  # still the 12th in Los Angeles
    turns = convo("When should we call you back?", "Tomorrow.")
    assert run(turns, [CALLBACK], now=late, tz="America/Los_Angeles") == {
        "callback_date": "2025-03-13"}
    assert run(turns, [CALLBACK], now=late, tz="Europe/Berlin") == {
        "callback_date": "2025-03-14"}


def test_numeric_dates_follow_the_region() -> None:
    turns = convo("When should we call you back?", "Let's do 4/5.")
    assert run(turns, [CALLBACK]) == {"callback_date": "2025-04-05"}
    assert run(turns, [CALLBACK], region="GB", tz="Europe/London") == {
        "callback_date": "2025-05-04"}


def test_date_correction() -> None:
    turns = convo("When should we call you back?",
                  "Thursday. Actually, make that Friday, Thursday is packed.")
    assert run(turns, [CALLBACK]) == {"callback_date": "2025-03-14"}


def test_date_correction_in_a_later_turn() -> None:
    turns = convo("When should we call you back?", "Monday.", "Monday it is.",
                  "Wait, no, Tuesday is better.")
    assert run(turns, [CALLBACK]) == {"callback_date": "2025-03-18"}


@pytest.mark.parametrize("answer", [
    "Monday won't work.",
    "Not this week, and I can't do Friday.",
    "Sometime in the spring.",
    "No idea yet.",
])
def test_negated_or_vague_dates_give_nothing(answer: str) -> None:
    assert run(convo("When should we call you back?", answer), [CALLBACK]) == {}


def test_a_day_the_contact_is_away_is_not_the_date() -> None:
    turns = convo("When should we call you back?", "I'm away on the 20th, otherwise any day.")
    assert run(turns, [CALLBACK]) == {}


def test_rejected_day_then_chosen_day() -> None:
    turns = convo("When should we call you back?", "Any day except Monday. Wednesday, say.")
    assert run(turns, [CALLBACK]) == {"callback_date": "2025-03-19"}


def test_a_user_turn_that_names_the_field() -> None:
    turns = convo("Is now a good time?", "No, I'm driving. Call me back tomorrow.")
    assert run(turns, [CALLBACK]) == {"callback_date": "2025-03-13"}


# ---------------------------------------------------------------------------------- number


@pytest.mark.parametrize(("answer", "expected"), [
    ("About 2,000 a month.", 2000),
    ("Maybe $1.5k.", 1500),
    ("Two thousand, tops.", 2000),
    ("Fifty.", 50),
    ("A hundred and twenty dollars.", 120),
    ("Around 3 grand.", 3000),
    ("$2.5M a year, but that's revenue.", 2500000),
    ("Roughly seven hundred fifty.", 750),
    ("Forty-five, give or take.", 45),
])
def test_numbers(answer: str, expected: float) -> None:
    got = run(convo("What monthly budget would you have for this?", answer), [BUDGET])
    assert got == {"budget": expected}


def test_number_correction() -> None:
    turns = convo("How many guests will you bring?", "Two. Oh wait, make that three.")
    assert run(turns, [GUESTS]) == {"guests": 3}


def test_no_guests_is_zero() -> None:
    assert run(convo("Will you bring any guests?", "No guests, just me."), [GUESTS]) == {
        "guests": 0}


@pytest.mark.parametrize("answer", [
    "Somewhere between 500 and 800.",
    "I'd rather not say.",
    "We haven't decided.",
])
def test_no_number_when_unsure(answer: str) -> None:
    assert run(convo("What's your monthly budget?", answer), [BUDGET]) == {}


def test_a_denied_field_gives_no_number() -> None:
    turns = convo("What's your monthly budget?",
                  "We spent 2,000 on the old tool, but we don't have a budget for this yet.")
    assert run(turns, [BUDGET]) == {}


def test_shared_scale_and_partial_counts() -> None:
    turns = convo("What's your monthly budget?", "Thirty, maybe thirty-five thousand.")
    assert run(turns, [BUDGET]) == {"budget": 30000}
    turns = convo("How many employees do you have?", "It's just me and one other guy.")
    assert run(turns, [TEAM]) == {}


def test_number_goes_to_the_field_the_user_names() -> None:
    turns = convo("How many employees do you have?", "Our budget is about 900 a month.")
    assert run(turns, [TEAM, BUDGET]) == {"budget": 900}


def test_numbers_in_unrelated_turns_are_ignored() -> None:
    turns = convo("Do you have a minute?", "I have about five minutes.")
    assert run(turns, [TEAM]) == {}


# ---------------------------------------------------------------------------------- boolean


@pytest.mark.parametrize(("answer", "expected"), [
    ("Yes please!", True),
    ("Sure, why not.", True),
    ("Nope.", False),
    ("Not really.", False),
    ("Yeah, no, I'll pass.", False),
    ("No thanks, I get enough email.", False),
    ("Oh, absolutely.", True),
    ("I don't think so.", False),
])
def test_yes_no(answer: str, expected: bool) -> None:
    got = run(convo("Would you like to receive our monthly newsletter?", answer), [NEWSLETTER])
    assert got == {"newsletter": expected}


@pytest.mark.parametrize("answer", ["I think so?", "I'm not sure.", "Why do you ask?",
                                    "Let me check with my boss."])
def test_unsure_yes_no_gives_nothing(answer: str) -> None:
    assert run(convo("Do you use a CRM today?", answer), [USES_CRM]) == {}


def test_statement_that_echoes_the_question() -> None:
    assert run(convo("Do you use a CRM?", "We use Salesforce."), [USES_CRM]) == {
        "uses_crm": True}


def test_negative_question_confirmed() -> None:
    turns = convo("You're not using a CRM yet, right?", "Correct.")
    assert run(turns, [USES_CRM]) == {"uses_crm": False}


def test_yes_to_another_question_is_not_an_answer() -> None:
    turns = convo("Do you have a minute?", "Yes, go ahead.",
                  "How many people work there?", "About twenty.")
    assert run(turns, [USES_CRM, TEAM]) == {"team_size": 20}


# ---------------------------------------------------------------------------------- select


@pytest.mark.parametrize(("answer", "expected"), [
    ("Premium, I think.", "premium"),
    ("Not the basic one, the premium.", "premium"),
    ("Enterprise... no, premium is enough.", "premium"),
    ("Definitely not enterprise. Basic.", "basic"),
])
def test_select_by_keyword(answer: str, expected: str) -> None:
    turns = convo("Which plan would you pick: Basic, Premium or Enterprise?", answer)
    assert run(turns, [PLAN]) == {"plan": expected}


def test_select_hedged_second_option() -> None:
    turns = convo("Which plan would you pick: Basic, Premium or Enterprise?",
                  "Premium for now, maybe enterprise later.")
    assert run(turns, [PLAN]) == {"plan": "premium"}


@pytest.mark.parametrize("answer", ["I don't know yet.", "Basic or premium, not sure.",
                                    "I'd need a demo first."])
def test_select_unsure(answer: str) -> None:
    turns = convo("Which plan would you pick: Basic, Premium or Enterprise?", answer)
    assert run(turns, [PLAN]) == {}


@pytest.mark.parametrize(("answer", "expected"), [
    ("Text me, I never read email.", "sms"),
    ("A phone call is best.", "phone"),
    ("Email's easiest. Please don't call.", "email"),
])
def test_select_synonyms_and_negation(answer: str, expected: str) -> None:
    turns = convo("How would you like us to contact you?", answer)
    assert run(turns, [METHOD]) == {"contact_method": expected}


def test_select_numeric_brackets() -> None:
    size = F("company_size", "select", "Company size bracket.", ["1-10", "11-50", "51-200", "201+"])
    assert run(convo("How many employees do you have?", "About forty."), [size]) == {
        "company_size": "11-50"}
    assert run(convo("How many employees do you have?", "Over 5,000."), [size]) == {
        "company_size": "201+"}


def test_select_option_chosen_by_position() -> None:
    step = F("next_step", "select", "The next step the contact agreed to.",
             ["meeting", "send_info", "call_later"])
    turns = convo("What next: a meeting, more information, or a call later?",
                  "The first one.")
    assert run(turns, [step]) == {"next_step": "meeting"}


# ---------------------------------------------------------------------------------- text


def test_text_is_the_answer_to_its_question() -> None:
    reason = F("call_reason", "text", "Why the caller called, in one sentence.")
    turns = convo("Thanks for calling. How can I help you today?",
                  "Hi, um, I'd like to cancel my order from last week.")
    assert run(turns, [reason]) == {"call_reason": "I'd like to cancel my order from last week"}


def test_text_about_a_day_keeps_the_day_phrase() -> None:
    day = F("callback_day", "text", "The day (and time, if given) to call the contact back.")
    turns = convo("When's a good time to call back?", "Not today. Friday after lunch works.")
    assert run(turns, [day]) == {"callback_day": "Friday after lunch"}


def test_text_non_answer() -> None:
    objection = F("objection", "text", "The main reason the contact is not interested.")
    turns = convo("What's holding you back from being interested?", "I don't know, really.")
    assert run(turns, [objection]) == {}


# ---------------------------------------------------------------------------------- API


def test_result_shape_and_threshold() -> None:
    turns = convo("What's your email?", "it's kim@example.com")
    got = extract(turns, [EMAIL], now=NOW)
    value = got["email"]
    assert isinstance(value, ExtractedValue)
    assert value.value == "kim@example.com"
    assert 0 < value.confidence <= 1
    assert "kim@example.com" in value.evidence
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.value = "x"  # type: ignore[misc]
    assert extract(turns, [EMAIL], now=NOW, threshold=0.99) == {}


def test_text_field_targeting_a_standard_field_takes_its_type() -> None:
    field = {"key": "contact_email", "type": "text", "description": "Email.", "target": "email"}
    assert run(convo("Your email?", "It's lee at example dot com."), [field]) == {
        "contact_email": "lee@example.com"}


def test_degenerate_inputs() -> None:
    assert extract([], [EMAIL], now=NOW) == {}
    assert extract(convo("Hi?", "Hello."), [], now=NOW) == {}
    turns = [{"role": "assistant", "content": "Your email?"},
             {"role": "user", "content": "a@b.co"},
             {"role": "system", "text": "x@y.co"}]
    assert run(turns, [EMAIL, F("odd", "colour")]) == {"email": "a@b.co"}
    naive = datetime(2025, 3, 12, 15, 0)
    assert extract(convo("When?", "Tomorrow."), [CALLBACK], now=naive, timezone="Nowhere/X")[
        "callback_date"].value == "2025-03-13"


# ---------------------------------------------------------------------------------- properties

_LOCAL = st.from_regex(r"[a-z][a-z0-9]{0,8}(?:[._][a-z0-9]{1,6})?", fullmatch=True)
_DOMAIN = st.from_regex(r"[a-z][a-z0-9]{1,10}(?:-[a-z0-9]{1,5})?\.(?:com|org|io|co\.uk|net)",
                        fullmatch=True)
_FILLER = st.sampled_from(["", "Sure, ", "Yes, it's ", "Okay so my email is ", "Use "])
_AFTER = st.sampled_from(["", ".", ", thanks.", " please.", " - that's it."])
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(local=_LOCAL, domain=_DOMAIN, before=_FILLER, after=_AFTER)
def test_embedded_email_is_extracted_exactly(local: str, domain: str, before: str,
                                             after: str) -> None:
    email = f"{local}@{domain}"
    got = run(convo("What's your email address?", f"{before}{email}{after}"), [EMAIL])
    assert got == {"email": email}


@FAST
@given(n=st.integers(min_value=0, max_value=9_999_999), commas=st.booleans(),
       lead=st.sampled_from(["", "About ", "Roughly ", "We have ", "Around "]),
       tail=st.sampled_from([".", " people.", " employees, give or take.", ""]))
def test_embedded_number_is_extracted_exactly(n: int, commas: bool, lead: str,
                                              tail: str) -> None:
    text = f"{lead}{n:,}{tail}" if commas else f"{lead}{n}{tail}"
    got = run(convo("How many employees do you have?", text), [TEAM])
    assert got == {"team_size": n}


ALL_FIELDS = [EMAIL, PHONE, CALLBACK, BUDGET, NEWSLETTER, PLAN,
              F("company_size", "select", "Size.", ["1-10", "11+"]),
              F("note", "text", "Anything else."),
              F("callback_day", "text", "The day to call back.")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(max_size=120), min_size=0, max_size=6),
       day=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
def test_never_raises_on_arbitrary_text(texts: list[str], day: date) -> None:
    turns = convo(*texts)
    now = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    got = _extract(turns, ALL_FIELDS, now=now, region="US", timezone="America/Chicago",
                   threshold=0.0)
    _check_types(got)


_WORDS = st.sampled_from(
    ["yes", "no", "not", "the", "at", "dot", "com", "gmail", "one", "two", "fifty", "thousand", "k", "$", "1,200", "3/4", "next", "Friday", "tomorrow", "in", "weeks", "premium", "basic", "555", "0100", "415", "email", "phone", ",", ".", "?", "actually", "make", "that", "oh", "wait", "sorry", "-", "_", "underscore", "plus", "between", "and", "to", "March", "31st", "the", "29th", "of", "February"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.lists(_WORDS, max_size=25).map(" ".join), max_size=6))
def test_never_raises_on_tricky_word_soup(texts: list[str]) -> None:
    got = _extract(convo(*texts), ALL_FIELDS, now=NOW, region="US",
                   timezone="America/New_York", threshold=0.0)
    _check_types(got)


def _check_types(got: dict[str, ExtractedValue]) -> None:
    types = {f["key"]: f for f in ALL_FIELDS}
    for key, ev in got.items():
        f = types[key]
        assert 0 <= ev.confidence <= 1
        if f["type"] == "date":
            date.fromisoformat(ev.value)
        elif f["type"] == "number":
            assert isinstance(ev.value, (int, float)) and math.isfinite(ev.value)
        elif f["type"] == "select":
            assert ev.value in f["options"]
        elif f["type"] == "boolean":
            assert isinstance(ev.value, bool)
        elif f["type"] == "phone":
            assert re.fullmatch(r"\+\d{8,15}", ev.value)
        elif f["type"] == "email":
            assert "@" in ev.value
        else:
            assert isinstance(ev.value, str) and ev.value
