"""The analysis loop: claims ``analysis`` jobs (``conversation.jobs``), computes the findings
with no transaction open (``findings``) and writes them in ONE transaction that first fences
the job (still ours, still running): the values, the analysis, ``call.analyzed`` and
``contact.updated`` and the done-mark commit together or not at all. A crash before that
commit re-runs the analysis (another worker takes the job when the lease expires); after it,
the job is done and never runs again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select

from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.config import Settings
from callfleet.conversation import jobs, runtime
from callfleet.conversation.analysis.apply import write_results
from callfleet.conversation.analysis.findings import (
    Findings,
    deterministic_findings,
    llm_findings,
)
from callfleet.conversation.analysis.queue import KIND
from callfleet.conversation.llm import LlmClient, LlmConfig, LlmError
from callfleet.conversation.models import CallJob
from callfleet.crm.models import Contact
from callfleet.crm.views import contact_out
from callfleet.db.session import Database
from callfleet.outbound import allowed_networks
from callfleet.wakeup import IdleWait

log = structlog.get_logger("callfleet.analysis")

MAX_LLM_ATTEMPTS = 3  # then the deterministic extractor answers
MAX_ATTEMPTS = 6  # then the job is marked failed (a bug, not a flaky model)


@dataclass
class _Loaded:
    """A claimed call and what its analysis reads."""
    job: Any
    call: Call
    assistant: Any
    contact: dict[str, Any] | None
    config: LlmConfig | None


@dataclass
class _Ready:
    """A claimed call whose findings are computed, waiting to be written."""
    call_id: str
    contact_id: str | None
    assistant: Any
    findings: Findings


class AnalysisWorker:
    def __init__(self, db: Database, clock: Any, settings: Settings, worker_id: str, *,
                 sleep: Any = asyncio.sleep, capacity: int = 20) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.worker_id = worker_id
        self.sleep = sleep
        self.capacity = capacity
        # Test hook: called after the findings are computed, before they are written.
        self.before_write: Any = None

    def _lease(self) -> timedelta:
        return self.clock.sim_delta(self.settings.conversation_lease_seconds)

    async def tick(self) -> int:
        claimed = await jobs.claim(self.db, KIND, self.worker_id, self.clock.now(),
                                   self._lease(), self.capacity)
        if claimed:
            await self.handle_many(claimed)
        return len(claimed)

    async def handle_many(self, call_ids: list[str]) -> int:
        """Analyse claimed calls; returns how many this worker committed. Calls without an
        LLM (the deterministic extractor answers in microseconds) are read in one
        transaction and written in one; calls with an LLM go one by one (:meth:`handle`),
        since each waits for the model. If the batch's write fails, every call in it is
        retried alone, so one bad call cannot hold back the others."""
        try:
            ready, alone = await self._prepare_many(call_ids)
        except Exception:
            log.exception("analysis_batch_read_failed")
            ready, alone = [], list(call_ids)
        done = 0
        if ready:
            try:
                done += await self._write_many(ready)
            except Exception:
                log.exception("analysis_batch_write_failed", calls=len(ready))
                alone.extend(r.call_id for r in ready)
        for call_id in alone:
            done += await self.handle(call_id)
        return done

    async def _load(self, call_ids: list[str]) -> dict[str, _Loaded]:
        """What analysing these calls reads, one query per table (read transaction). Calls
        without their job or row are left out (nothing to analyse)."""
        out: dict[str, _Loaded] = {}
        async with self.db.session(write=False) as s:
            found = {j.call_id: j for j in await s.scalars(
                select(CallJob).where(CallJob.kind == KIND, CallJob.call_id.in_(call_ids)))}
            calls = {c.id: c for c in await s.scalars(select(Call).where(Call.id.in_(call_ids)))}
            wanted = {c.assistant_id for c in calls.values() if c.assistant_id}
            assistants = {a.id: a for a in await s.scalars(
                select(Assistant).where(Assistant.id.in_(sorted(wanted))))} if wanted else {}
            wanted = {c.contact_id for c in calls.values() if c.contact_id}
            contacts = {c.id: c for c in await s.scalars(
                select(Contact).where(Contact.id.in_(sorted(wanted))))} if wanted else {}
            for call_id in call_ids:
                job, call = found.get(call_id), calls.get(call_id)
                if job is None or call is None:
                    continue
                assistant = assistants.get(call.assistant_id or "")
                row = contacts.get(call.contact_id or "")
                config = (await runtime.llm_for(s, call, assistant)
                          if assistant is not None else None)
                out[call_id] = _Loaded(job, call, assistant,
                                       contact_out(row) if row else None, config)
        return out

    async def _prepare_many(self, call_ids: list[str]) -> tuple[list[_Ready], list[str]]:
        now = self.clock.now()
        region = self.settings.default_region
        ready: list[_Ready] = []
        alone: list[str] = []
        for call_id, x in (await self._load(call_ids)).items():
            if x.config is not None:
                alone.append(call_id)
                continue
            try:
                findings = deterministic_findings(x.call, x.assistant, x.contact, now, region)
            except Exception:
                log.exception("analysis_failed", call_id=call_id)
                alone.append(call_id)  # handle() records the error and retries
                continue
            ready.append(_Ready(call_id, x.call.contact_id, x.assistant, findings))
        return ready, alone

    async def _write_many(self, ready: list[_Ready]) -> int:
        if self.before_write is not None:
            for r in ready:
                await self.before_write(r.call_id)
        region = self.settings.default_region
        async with self.db.session() as s:
            fenced = await jobs.fence_many(s, [r.call_id for r in ready], KIND,
                                           self.worker_id, self.clock.now())
            for r in ready:
                if r.call_id not in fenced:
                    log.info("analysis_lost_lease", call_id=r.call_id)
            mine = [r for r in ready if r.call_id in fenced]
            if not mine:
                await s.rollback()
                return 0
            stmt = select(Call).where(Call.id.in_(sorted(r.call_id for r in mine)))
            wanted = sorted({r.contact_id for r in mine if r.contact_id})
            cstmt = select(Contact).where(Contact.id.in_(wanted))
            if not self.db.is_sqlite:  # the same lock order as the dialer: calls, contacts
                stmt = stmt.order_by(Call.id).with_for_update()
                cstmt = cstmt.order_by(Contact.id).with_for_update()
            rows = {c.id: c for c in await s.scalars(stmt)}
            contacts = {c.id: c for c in await s.scalars(cstmt)} if wanted else {}
            definitions: dict[str, Any] = {}
            at = self.clock.now()
            done: list[_Ready] = []
            for r in mine:
                row = rows.get(r.call_id)
                if row is None:
                    continue
                await write_results(s, row, contacts.get(r.contact_id or ""), r.assistant,
                                    r.findings, at, region, definitions)
                done.append(r)
            await s.commit()
        for r in done:
            log.info("call_analyzed", call_id=r.call_id, method=r.findings.method,
                     extracted=len(r.findings.values))
        return len(done)

    async def run(self, stop: asyncio.Event) -> None:
        tick = self.settings.intelligence_tick_seconds
        with IdleWait(self.db, KIND, base=tick, cap=self.settings.idle_max_seconds) as idle:
            while not stop.is_set():
                idle.arm()
                busy = 0
                try:
                    busy = await self.tick()
                except Exception:
                    log.exception("analysis_pass_failed")
                # A full batch: on at once; a partial one: a short pause, so that the next
                # claim takes a batch rather than the one call that ended meanwhile; none:
                # the back-off of wakeup.IdleWait.
                if not busy:
                    await idle.idle(stop, lambda: jobs.due_in(self.db, KIND, self.clock))
                    continue
                idle.busy()
                if busy < self.capacity:
                    await idle.sleep(stop, tick / 4)

    async def handle(self, call_id: str) -> bool:
        """Analyse one claimed call. True when this worker committed the results."""
        try:
            return await self._handle(call_id)
        except Exception as exc:
            log.exception("analysis_failed", call_id=call_id)
            await self._retry_or_fail(call_id, f"{type(exc).__name__}: {exc}")
            return False

    async def _retry_or_fail(self, call_id: str, error: str) -> None:
        async with self.db.session(write=False) as s:
            job = await s.get(CallJob, (call_id, KIND))
        attempts = job.attempts if job else MAX_ATTEMPTS
        now = self.clock.now()
        if attempts >= MAX_ATTEMPTS:
            async with self.db.session() as s:
                await jobs.fence(s, call_id, KIND, self.worker_id, now, status="failed",
                                 error=error[:2000])
                await s.commit()
            return
        delay = timedelta(seconds=30 * 2 ** (attempts - 1))
        await jobs.release(self.db, call_id, KIND, self.worker_id, now + delay, error)

    async def _handle(self, call_id: str) -> bool:
        now = self.clock.now()
        region = self.settings.default_region
        x = (await self._load([call_id])).get(call_id)
        if x is None:
            return False
        if x.config is not None:
            try:
                client = LlmClient(x.config, sleep=self.sleep,
                                   allowed_networks=allowed_networks(self.settings))
                findings = await llm_findings(client, x.call, x.assistant, now, region)
            except LlmError as exc:
                if x.job.attempts < MAX_LLM_ATTEMPTS:
                    delay = timedelta(seconds=30 * 2 ** (x.job.attempts - 1))
                    await jobs.release(self.db, call_id, KIND, self.worker_id, now + delay,
                                       str(exc))
                    return False
                findings = deterministic_findings(x.call, x.assistant, x.contact, now, region)
                findings.method, findings.error = "deterministic_fallback", str(exc)
        else:
            findings = deterministic_findings(x.call, x.assistant, x.contact, now, region)
        return await self._write_many(
            [_Ready(call_id, x.call.contact_id, x.assistant, findings)]) == 1
