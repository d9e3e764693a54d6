"""Dial decisions: requirements, caps and time together, the reason order, what is recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callfleet.compliance.caps import Cap, PastCall, check_caps
from callfleet.compliance.decision import (
    REASONS,
    Consent,
    Decision,
    describe,
    evaluate,
)
from callfleet.compliance.jurisdiction import resolve
from callfleet.compliance.schedule import Scope, compose
from callfleet.compliance.table import shipped_table
from callfleet.dialer.rules import LegalHours

TABLE = shipped_table()
TM = Scope(purpose="telemarketing")
PEWC = Consent("prior_express_written")
#: Tuesday 2026-11-17 15:00 UTC = 10:00 in New York, 09:00 in Chicago.
NOW = datetime(2026, 11, 17, 15, tzinfo=UTC)


def decide(phone: str | None = None, *, now: datetime = NOW, scope: Scope = TM,
           consent: Consent = PEWC, history: tuple[PastCall, ...] = (),
           team_caps: tuple[Cap, ...] = (), **kw: object) -> Decision:
    jset = resolve(TABLE, phone=phone, **kw)  # type: ignore[arg-type]
    schedule = compose(TABLE, jset, scope, since=now - timedelta(hours=1),
                       until=now + timedelta(days=14), legal=LegalHours())
    return evaluate(TABLE, jset, scope, schedule, now=now, consent=consent, history=history,
                    team_caps=team_caps)


def test_an_allowed_call_records_what_was_applied() -> None:
    d = decide("+13055550123")
    assert d.outcome == "allow" and d.reason is None and d.next_allowed_at == NOW
    assert {"US/hours", "US-FL/hours", "US/ai-voice-consent", "US-FL/cap"} <= set(d.rules_applied)
    assert d.table_version == TABLE.version and d.table_sha256 == TABLE.sha256
    assert [(j.code, j.source) for j in d.jurisdictions] == [
        ("US-FL", "area_code_presumption"), ("US", "derived")]
    (local,) = d.local_times
    assert local.zone == "America/New_York" and local.local.startswith("2026-11-17T10:00")
    assert local.weekday == "tue" and d.margin_seconds == 120
    assert json.loads(json.dumps(d.as_dict()))["caps"][0]["rule"] == "US-FL/cap"


def test_ai_telemarketing_needs_written_consent_unless_an_owner_turned_the_check_off() -> None:
    d = decide("+13055550123", consent=Consent("prior_express"))
    assert (d.outcome, d.reason, d.rules_fired) == ("skip", "consent_missing",
                                                    ("US/ai-voice-consent",))
    assert describe(d, TABLE) == "skipped: no prior express written consent on record"
    d = decide("+13055550123", consent=Consent("prior_express_written", revoked=True))
    assert d.reason == "consent_revoked"
    d = decide("+13055550123", consent=Consent(),
               scope=Scope(purpose="telemarketing", consent_check=False))
    assert d.outcome == "allow" and d.waived == ("US/ai-voice-consent",)
    # Informational calls to Florida need no consent record.
    assert decide("+13055550123", consent=Consent(), scope=Scope()).outcome == "allow"


def test_state_requirements_need_an_attestation() -> None:
    d = decide("+14155550123")  # California: a live announcement before an artificial voice
    assert (d.outcome, d.reason, d.rules_fired) == (
        "skip", "state_requirement_unmet", ("US-CA/adad-live-announcement",))
    assert describe(d, TABLE) == "skipped: California requirement not met"
    vouched = Scope(purpose="telemarketing",
                    attestations=frozenset({"natural_voice_announcement"}))
    noon = datetime(2026, 11, 17, 20, tzinfo=UTC)  # 12:00 in Los Angeles
    assert decide("+14155550123", scope=vouched, now=noon).outcome == "allow"


def test_consent_outranks_time() -> None:
    sunday = datetime(2026, 11, 22, 15, tzinfo=UTC)
    d = decide("+14015550123", now=sunday, consent=Consent())  # Rhode Island, Sunday
    assert d.reason == "consent_missing"
    d = decide("+14015550123", now=sunday)
    assert (d.outcome, d.reason) == ("defer", "state_day_closed")
    assert d.next_allowed_at == datetime(2026, 11, 23, 14, tzinfo=UTC)  # Monday 09:00 EST
    assert describe(d, TABLE) == "waiting for Rhode Island closed day"


def test_holiday_outranks_hours_and_names_every_rule_that_fired() -> None:
    # Thanksgiving 2026, 07:00 in Salt Lake City: a holiday and outside the hours.
    d = decide("+18015550123", now=datetime(2026, 11, 26, 14, tzinfo=UTC))
    assert d.reason == "state_holiday"
    assert d.rules_fired[0] == "US-UT/holidays" and "US-UT/hours" in d.rules_fired
    assert describe(d, TABLE) == "waiting for Utah holiday"
    assert d.next_allowed_at == datetime(2026, 11, 27, 15, tzinfo=UTC)  # Friday 08:00 MST


def test_frequency_cap_defers_to_the_first_call_plus_24_hours() -> None:
    first = NOW - timedelta(hours=20)
    history = (PastCall(first), PastCall(NOW - timedelta(hours=5)), PastCall(NOW - MINUTE))
    d = decide("+13055550123", history=history)
    assert (d.outcome, d.reason, d.rules_fired) == ("defer", "frequency_cap", ("US-FL/cap",))
    assert d.next_allowed_at == first + timedelta(hours=24)
    assert describe(d, TABLE) == "waiting for Florida call limit"
    # The release lands at 11:00 UTC = 06:00 EST, outside the hours: the window opens later.
    late = (PastCall(NOW - timedelta(hours=4)), PastCall(NOW - timedelta(hours=3)),
            PastCall(NOW - timedelta(hours=2)))
    d = decide("+13055550123", history=late)
    assert d.next_allowed_at == datetime(2026, 11, 18, 13, tzinfo=UTC)  # 08:00 EST
    # Georgia has no cap; informational calls are not capped by Florida either.
    assert decide("+14045550123", history=history).outcome == "allow"
    assert decide("+13055550123", history=history, scope=Scope()).outcome == "allow"


def test_team_caps_and_maine_counts_completed_calls_only() -> None:
    cap = Cap("team/daily", 1, timedelta(hours=24))
    d = decide("+14045550123", history=(PastCall(NOW - timedelta(hours=1)),), team_caps=(cap,))
    assert (d.reason, d.rules_fired) == ("frequency_cap", ("team/daily",))
    assert describe(d, TABLE) == "waiting for the team's call limit"
    me_time = datetime(2026, 11, 17, 16, tzinfo=UTC)  # 11:00 in Maine
    unanswered = (PastCall(me_time - timedelta(hours=1)),)
    assert decide("+12075550123", now=me_time, history=unanswered).outcome == "allow"
    answered = (PastCall(me_time - timedelta(hours=1), completed=True),)
    d = decide("+12075550123", now=me_time, history=answered)
    # One per 8 h: free again at 18:00, after Maine's 17:00 close, so 09:00 the next day.
    assert d.reason == "frequency_cap" and d.caps[-1].release_at == me_time + timedelta(hours=7)
    assert d.next_allowed_at == datetime(2026, 11, 18, 14, tzinfo=UTC)


def test_the_conservative_default_is_recorded() -> None:
    d = decide("+18005550123", scope=Scope())
    assert d.defaulted and all(j.source == "default" for j in d.jurisdictions)
    assert len(d.local_times) == 5


def test_evaluate_refuses_a_schedule_that_does_not_cover_now() -> None:
    jset = resolve(TABLE, phone="+13055550123")
    schedule = compose(TABLE, jset, TM, since=NOW, until=NOW + timedelta(hours=1))
    with pytest.raises(ValueError, match="does not cover"):
        evaluate(TABLE, jset, TM, schedule, now=NOW + timedelta(hours=2))
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(TABLE, jset, TM, schedule, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="unknown consent kind"):
        Consent("maybe")


def test_reasons_are_unique_and_permanent_ones_come_first() -> None:
    assert len(set(REASONS)) == len(REASONS)
    assert REASONS[:3] == ("consent_revoked", "consent_missing", "state_requirement_unmet")


MINUTE = timedelta(minutes=1)


@settings(max_examples=200, deadline=None)
@given(
    max_calls=st.integers(1, 5),
    hours=st.integers(1, 48),
    gaps=st.lists(st.integers(0, 36 * 60), min_size=1, max_size=60),
)
def test_a_cap_is_never_exceeded_in_any_rolling_window(max_calls: int, hours: int,
                                                       gaps: list[int]) -> None:
    cap = Cap("c", max_calls, timedelta(hours=hours))
    placed: list[PastCall] = []
    t = NOW
    for gap in gaps:
        t += gap * MINUTE
        (state,) = check_caps([cap], placed, t)
        if state.full:
            assert state.release_at is not None and state.release_at > t
            # Still full an instant before the release, free at it.
            assert check_caps([cap], placed, state.release_at - timedelta(microseconds=1))[0].full
            assert not check_caps([cap], placed, state.release_at)[0].full
        else:
            placed.append(PastCall(t))
    times = [p.at for p in placed]
    for i, start in enumerate(times):
        in_window = [x for x in times[i:] if x < start + cap.per]
        assert len(in_window) <= max_calls


def test_cap_values_are_checked() -> None:
    with pytest.raises(ValueError):
        Cap("c", 0, timedelta(hours=1))
    with pytest.raises(ValueError):
        Cap("c", 1, timedelta(0))
    with pytest.raises(ValueError):
        Cap("c", 1, timedelta(hours=1), counts="answered")
