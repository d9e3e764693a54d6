"""Background loops of the conversation layer: LLM conversations of answered calls and the
post-call analysis of ended ones (``worker.run_background`` runs :func:`run_intelligence`).

Conversations (``kind = "conversation"`` jobs, queued by ``runtime.on_answered``):

* a worker claims the job (lease ``conversation_lease_seconds``), loads what the prompt needs
  in a short read, and runs the turns with no transaction open;
* after every exchange the messages are written (and the lease renewed) in a short
  transaction that first checks the worker still owns the job and the call is in progress;
* at the end one transaction writes the messages, transcript, outcome and tool results and
  marks the job done; then the carrier is asked to hang up.

Crash safety: a worker that dies leaves its job ``running`` with an expiring lease. Another
worker claims it and **resumes** the conversation from the stored messages (the callee is
still on the line; the scripted callee replays what it already said). After
``conversation_max_attempts`` claims the call is **ended cleanly** instead: a closing line,
outcome ``failed`` (retryable by the campaign's policy), ``ended_reason = "assistant_error"``.
If the call ended meanwhile (the carrier hung up), the job is closed and nothing is written.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import select, update

from callfleet import ids
from callfleet.calls.models import Call, CallEvent
from callfleet.config import Settings
from callfleet.conversation import jobs, llm, runtime, script
from callfleet.conversation.agent import AgentResult, Conversation
from callfleet.conversation.analysis.worker import AnalysisWorker
from callfleet.conversation.lines import ERROR_REPLY
from callfleet.conversation.llm import LlmClient
from callfleet.conversation.models import CallJob
from callfleet.conversation.personas import Callee
from callfleet.db.session import Database
from callfleet.outbound import allowed_networks, outbound_client
from callfleet.wakeup import IdleWait

log = structlog.get_logger("callfleet.conversation")

KIND = "conversation"


class _Lost(Exception):
    """The job is no longer ours, or the call is no longer in progress."""


def system_prompt(base: str, assistant: Any) -> str:
    """The rendered prompt plus what the model must know about its tools and fields."""
    parts = [base.strip()] if base and base.strip() else []
    fields = ((assistant.info_extraction or {}).get("fields") or [])
    if fields:
        parts.append("Information to collect during the call:\n" + "\n".join(
            f"- {f.get('key')}: {f.get('description') or f.get('key')}" for f in fields))
    end = assistant.end_call or {}
    if end.get("enabled"):
        parts.append("When the conversation is over, say goodbye and call the end_call tool.")
    return "\n\n".join(parts)


class ConversationWorker:
    def __init__(self, db: Database, clock: Any, carrier: Any, settings: Settings,
                 worker_id: str, *, http: httpx.AsyncClient | None = None,
                 sleep: Any = asyncio.sleep, capacity: int = 50) -> None:
        self.db = db
        self.clock = clock
        self.carrier = carrier
        self.settings = settings
        self.worker_id = worker_id
        self.http = http or outbound_client(settings)  # tool URLs are tenant-set
        self.sleep = sleep
        self.capacity = capacity
        self.inflight: set[asyncio.Task[None]] = set()

    def _lease_until(self) -> datetime:
        return self.clock.now() + self.clock.sim_delta(self.settings.conversation_lease_seconds)

    async def tick(self) -> int:
        """Claim due conversations and run them to the end (tests drive this)."""
        claimed = await jobs.claim(self.db, KIND, self.worker_id, self.clock.now(),
                                   self.clock.sim_delta(self.settings.conversation_lease_seconds),
                                   self.capacity)
        if claimed:
            await asyncio.gather(*(self.handle(cid) for cid in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to ``capacity`` conversations going at once. Between claims: a tick;
        when full, until one ends; when idle, the back-off of ``wakeup.IdleWait``."""
        tick = self.settings.intelligence_tick_seconds
        ended = asyncio.Event()

        def done(task: asyncio.Task[None]) -> None:
            self.inflight.discard(task)
            ended.set()

        with IdleWait(self.db, KIND, base=tick, cap=self.settings.idle_max_seconds) as idle:
            while not stop.is_set():
                idle.arm()
                ended.clear()
                room = self.capacity - len(self.inflight)
                claimed: list[str] = []
                try:
                    if room > 0:
                        claimed = await jobs.claim(
                            self.db, KIND, self.worker_id, self.clock.now(),
                            self.clock.sim_delta(self.settings.conversation_lease_seconds),
                            room)
                except Exception:
                    log.exception("conversation_claim_failed")
                for call_id in claimed:
                    task = asyncio.create_task(self.handle(call_id))
                    self.inflight.add(task)
                    task.add_done_callback(done)
                if claimed:
                    idle.busy()
                    await idle.sleep(stop, tick)
                elif room <= 0:
                    await idle.sleep(stop, self.settings.idle_max_seconds, also=ended)
                else:
                    await idle.idle(stop, lambda: jobs.due_in(self.db, KIND, self.clock))
        if self.inflight:
            await asyncio.gather(*self.inflight, return_exceptions=True)

    # ------------------------------------------------------------ one call

    async def handle(self, call_id: str) -> None:
        try:
            await self._handle(call_id)
        except _Lost:
            log.info("conversation_abandoned", call_id=call_id,
                     reason="lease lost or call no longer in progress")
        except Exception as exc:
            log.exception("conversation_failed", call_id=call_id)
            retry = self.clock.now() + self.clock.sim_delta(1.0)
            await jobs.release(self.db, call_id, KIND, self.worker_id, retry,
                               f"{type(exc).__name__}: {exc}")

    async def _handle(self, call_id: str) -> None:
        async with self.db.session(write=False) as s:
            job = await s.get(CallJob, (call_id, KIND))
            call = await s.get(Call, call_id)
            if job is None or call is None:
                return
            ctx = await runtime.call_context(s, call)
            assistant, contact = ctx.assistant, ctx.contact
            config = (await runtime.llm_for(s, call, assistant)) if assistant else None
        if call.status != "in_progress":
            await self._close(call_id, "the call ended before the conversation ran")
            return
        meta = dict(call.call_metadata or {})
        persona = meta.get("persona") or "interested"
        unknown = ctx.lines.unknown
        if unknown:
            log.warning("unknown_prompt_variables", call_id=call.id, variables=unknown)
        if job.attempts > self.settings.conversation_max_attempts:
            await self._end_failed(call, "conversation workers kept failing")
            return
        if config is None or assistant is None:
            # The LLM was unconfigured meanwhile: finish on the deterministic script.
            result = script.run_scripted(lines=ctx.lines, persona=persona, contact=contact,
                                         number=call.to_number)
            agent = AgentResult(result.messages, result.outcome, result.ended_reason,
                                result.duration_seconds)
            await self._finish(call, agent, unknown, None)
            return
        callee = Callee.for_call(persona, contact, call.to_number)
        conv = Conversation(
            client=LlmClient(config, sleep=self.sleep,
                             allowed_networks=allowed_networks(self.settings)),
            assistant=assistant,
            system_prompt=system_prompt(ctx.lines.system_prompt, assistant), lines=ctx.lines,
            callee=callee, http=self.http, max_turns=self.settings.conversation_max_turns,
            tool_timeout=self.settings.tool_timeout_seconds,
            call_info={"id": call.id, "team_id": call.team_id, "contact_id": call.contact_id,
                       "campaign_id": call.campaign_id, "to_number": call.to_number,
                       "from_number": call.from_number,
                       "contact_name": (contact or {}).get("first_name")},
            messages=list(call.messages or []),
        )

        async def persist(messages: list[dict[str, Any]]) -> None:
            async with self.db.session() as s:
                if not await jobs.renew(s, call_id, KIND, self.worker_id, self._lease_until()):
                    raise _Lost
                res = await s.execute(
                    update(Call).where(Call.id == call_id, Call.status == "in_progress")
                    .values(**Call.transcript_columns(list(messages)),
                            transcript=script.transcript(
                        [m for m in messages if m.get("role") in ("assistant", "user")])))
                if not res.rowcount:  # type: ignore[attr-defined]
                    raise _Lost
                await s.commit()

        conv.on_turn = persist
        result = await conv.run()
        await self._finish(call, result, unknown, config.describe())

    async def _close(self, call_id: str, why: str) -> None:
        async with self.db.session() as s:
            await jobs.fence(s, call_id, KIND, self.worker_id, self.clock.now(), error=why)
            await s.commit()

    async def _end_failed(self, call: Call, why: str) -> None:
        messages = list(call.messages or [])
        t = float(messages[-1].get("time") or 0.0) + 2.0 if messages else 0.0
        messages.append({"role": "assistant", "text": ERROR_REPLY, "time": round(t, 1)})
        agent = AgentResult(messages, "failed", "assistant_error",
                            t + script.seconds_to_say(ERROR_REPLY), error=why)
        await self._finish(call, agent, [], None)

    async def _finish(self, call: Call, result: AgentResult, unknown: list[str],
                      llm_info: dict[str, Any] | None) -> None:
        now = self.clock.now()
        async with self.db.session() as s:
            if not await jobs.fence(s, call.id, KIND, self.worker_id, now, error=result.error):
                raise _Lost
            stmt = select(Call).where(Call.id == call.id)
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update()
            row = await s.scalar(stmt)
            if row is None or row.status != "in_progress":
                await s.commit()  # the job is closed; the call ended without us
                return
            row.messages = result.messages
            row.transcript = script.transcript(
                [m for m in result.messages if m.get("role") in ("assistant", "user")])
            meta = dict(row.call_metadata or {})
            meta.update(conversation_outcome=result.outcome,
                        conversation_ended_reason=result.ended_reason,
                        conversation_seconds=result.duration_seconds)
            if llm_info:
                meta["llm"] = llm_info
            if unknown:
                meta["unknown_variables"] = unknown
            if result.tool_calls:
                meta["tool_calls"] = result.tool_calls
            if result.error:
                meta["conversation_error"] = result.error
            if result.transfer:
                meta["transfer"] = result.transfer
                s.add(CallEvent(id=ids.new_id("evt"), call_id=row.id, type="call.transferred",
                                at=now, data=result.transfer))
            row.call_metadata = meta
            carrier_id = row.carrier_call_id
            answered = row.answered_at or now
            await s.commit()
        if carrier_id:
            spoken = (answered - now).total_seconds() + result.duration_seconds
            await self.carrier.hangup(carrier_id, max(0.5, spoken))


async def run_intelligence(settings: Settings, db: Database, dialer: Any,
                           stop: asyncio.Event) -> None:
    """The conversation and analysis loops of one worker process."""
    llm.configure(settings)
    async with outbound_client(settings) as http:  # tool URLs are tenant-set
        conv = ConversationWorker(db, dialer.clock, dialer.carrier, settings,
                                  f"{dialer.worker_id}:conv", http=http)
        analysis = AnalysisWorker(db, dialer.clock, settings, f"{dialer.worker_id}:analysis")
        await asyncio.gather(conv.run(stop), analysis.run(stop))
