"""One owner per state machine (docs/decisions/0016):

- every change of a campaign's status is written by ``campaigns/lifecycle.py`` and reported by
  an event (the automatic pause and the scheduled start included, with their reasons);
- every change of an enrollment's status follows the enrollment transition rule, written by
  ``campaigns/enrollments.py`` (in bulk) or ``dialer/outcomes.py`` (after an attempt).
"""

from __future__ import annotations

import ast
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select
from sqlalchemy.orm.base import NO_VALUE

from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.dialer.rules import ENROLLMENT_TRANSITIONS
from callfleet.webhooks.outbox import OutboxEvent
from tests.campaigns.helpers import drive, fresh_monday, setup_campaign, us_phone
from tests.conftest import DbHandle, TeamCtx

SRC = Path(__file__).resolve().parents[2] / "src"
CAMPAIGN_OWNER = "callfleet/campaigns/lifecycle.py"
ENROLLMENT_OWNERS = ("callfleet/campaigns/enrollments.py", "callfleet/dialer/outcomes.py")


def _writer() -> str:
    """The callfleet source file that made the current attribute write."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = frame.filename.replace("\\", "/")
        if "/src/callfleet/" in path:
            return path.split("/src/", 1)[1]
    return "?"


@contextmanager
def status_writes() -> Iterator[list[tuple[str, str, Any, Any]]]:
    """Every ORM write of Campaign.status / Enrollment.status while the block runs:
    (model, writer file, old value, new value)."""
    seen: list[tuple[str, str, Any, Any]] = []

    def on_campaign(target: Any, value: Any, old: Any, _initiator: Any) -> None:
        seen.append(("campaign", _writer(), old, value))

    def on_enrollment(target: Any, value: Any, old: Any, _initiator: Any) -> None:
        seen.append(("enrollment", _writer(), old, value))

    event.listen(Campaign.status, "set", on_campaign)
    event.listen(Enrollment.status, "set", on_enrollment)
    try:
        yield seen
    finally:
        event.remove(Campaign.status, "set", on_campaign)
        event.remove(Enrollment.status, "set", on_enrollment)


async def _status(client: httpx.AsyncClient, t: TeamCtx, cid: str) -> str:
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=t.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["campaign"]["status"])


async def _events(database: DbHandle, cid: str) -> list[tuple[str, str, str]]:
    async with database.db.session(write=False) as s:
        rows = await s.execute(
            select(OutboxEvent.type, OutboxEvent.data).where(OutboxEvent.subject_id == cid)
            .order_by(OutboxEvent.seq))
        return [(kind, data["campaign"]["status"], data["reason"]) for kind, data in rows]


class Reported:
    """After each step: the campaign's status is the one its last event reports, and a step
    that changed the status added exactly one event."""

    def __init__(self, client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                 cid: str, created: str | None = None) -> None:
        self.client, self.database, self.t, self.cid = client, database, t, cid
        self.status = created  # a campaign created as a draft has no event
        self.count = 0

    async def check(self, expect: str, kind: str | None = None,
                    reason: str | None = None) -> None:
        status = await _status(self.client, self.t, self.cid)
        events = await _events(self.database, self.cid)
        assert status == expect, (status, events)
        if status != self.status:
            assert len(events) == self.count + 1, events
            assert events[-1][1] == status, events
            if kind is not None:
                assert events[-1][0] == kind, events
            if reason is not None:
                assert events[-1][2] == reason, events
        else:
            assert len(events) == self.count, events
        self.status, self.count = status, len(events)


async def test_every_campaign_status_change_is_reported(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    now = fresh_monday(app)
    h = team.headers
    phones = [us_phone(8100 + i) for i in range(3)]
    for phone in phones:
        await app.state.carrier.set_profile(phone, ["answer"])

    def at(minutes: int) -> str:
        return (now + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    with status_writes() as writes:
        cid, _ = await setup_campaign(
            client, database, team, [{"firstName": "A", "lastName": str(i), "phone": p}
                                     for i, p in enumerate(phones)],
            scheduledStartAt=at(60), maxConcurrentCalls=1)
        seen = Reported(client, database, team, cid)
        await seen.check("scheduled", "campaign.scheduled", "requested")
        r = await client.patch(f"/api/crm/campaigns/{cid}", headers=h,
                               json={"scheduledStartAt": None})
        assert r.status_code == 200, r.text
        await seen.check("draft", "campaign.unscheduled", "requested")
        await client.patch(f"/api/crm/campaigns/{cid}", headers=h,
                           json={"scheduledStartAt": at(30)})
        await seen.check("scheduled", "campaign.scheduled")
        await app.state.dialer.tick()
        await seen.check("scheduled")
        app.state.clock.advance(minutes=31)
        await app.state.dialer.tick()
        await seen.check("running", "campaign.started", "scheduled_start")
        assert (await client.post(f"/api/crm/campaigns/{cid}/pause", headers=h)).is_success
        await seen.check("paused", "campaign.paused", "requested")
        assert (await client.post(f"/api/crm/campaigns/{cid}/resume", headers=h)).is_success
        await seen.check("running", "campaign.resumed", "requested")
        # The campaign's only caller-ID number is suspended: the dialer pauses it.
        campaign = (await client.get(f"/api/crm/campaigns/{cid}", headers=h)).json()
        number = campaign["campaign"]["from_number_ids"][0]
        app.state.clock.advance(minutes=10)  # the call in progress ends
        await app.state.dialer.tick()
        await client.patch(f"/api/phone-numbers/{number}", headers=h,
                           json={"status": "suspended"})
        app.state.clock.advance(minutes=10)
        await app.state.dialer.tick()
        await seen.check("paused", "campaign.paused", "no_active_caller_id")
        await client.patch(f"/api/phone-numbers/{number}", headers=h, json={"status": "active"})
        assert (await client.post(f"/api/crm/campaigns/{cid}/resume", headers=h)).is_success
        await seen.check("running", "campaign.resumed")

        async def done() -> bool:
            return await _status(client, team, cid) == "completed"

        await drive(app, done, step=timedelta(minutes=5))
        await seen.check("completed", "campaign.completed", "all_contacts_done")

        other, _ = await setup_campaign(client, database, team, [
            {"firstName": "B", "lastName": "B", "phone": us_phone(8200)}])
        seen = Reported(client, database, team, other, created="draft")
        await seen.check("draft")
        assert (await client.post(f"/api/crm/campaigns/{other}/run", json={},
                                  headers=h)).is_success
        await seen.check("running", "campaign.started", "requested")
        assert (await client.post(f"/api/crm/campaigns/{other}/cancel", headers=h)).is_success
        await seen.check("cancelled", "campaign.cancelled", "requested")

    campaign_writers = {w for kind, w, old, new in writes if kind == "campaign"
                        and old is not NO_VALUE and old != new}
    assert campaign_writers == {CAMPAIGN_OWNER}
    for kind, writer, old, new in writes:
        if kind == "enrollment" and old is not NO_VALUE and old is not None and old != new:
            assert writer in ENROLLMENT_OWNERS, (writer, old, new)
            assert new in ENROLLMENT_TRANSITIONS[old], (writer, old, new)


def _status_values(tree: ast.AST, model: str) -> list[int]:
    """Lines of ``update(<model>...)....values(status=...)`` in a module."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "values"
                and any(k.arg == "status" for k in node.keywords)):
            continue
        for inner in ast.walk(node.func.value):
            if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)
                    and inner.func.id == "update" and inner.args
                    and model in ast.unparse(inner.args[0])):
                lines.append(node.lineno)
                break
    return lines


def test_set_based_status_writes_have_one_owner() -> None:
    """Bulk UPDATEs of a status column are only written by the state machine's owner (the
    ORM writes are checked at run time above)."""
    problems = []
    for path in sorted((SRC / "callfleet").rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text())
        if rel != CAMPAIGN_OWNER:
            problems += [f"{rel}:{n} sets Campaign.status" for n in _status_values(tree, "Campaign")]
        if rel != ENROLLMENT_OWNERS[0]:
            problems += [f"{rel}:{n} sets Enrollment.status"
                         for n in _status_values(tree, "Enrollment")]
        problems += [f"{rel}:{n} sets Enrollment.status"
                     for n in _status_values(tree, "ENROLLMENTS") if rel != ENROLLMENT_OWNERS[0]]
    assert not problems, "\n".join(problems)
    # The check sees what it checks.
    sample = ast.parse("update(Campaign).where(x).values(status='paused')")
    assert _status_values(sample, "Campaign") == [1]
