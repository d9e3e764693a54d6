"""The LLM conversation of one answered call: the model as the assistant, the simulated
carrier's scripted callee (``personas.Callee``) as the person on the line.

``Conversation.run`` runs turns until the call ends: the model calls ``end_call`` or
``transfer_call``, an end-call trigger phrase is said by either side, the callee opts out or
says goodbye, or ``max_turns`` is reached. It does no database work; ``on_turn`` is called
with the messages after every exchange so the caller can persist them (and a conversation
can resume from them after a crash). It never raises for a model or tool failure: the call
then ends with ``ended_reason = "assistant_error"`` and outcome ``failed`` (retryable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from callfleet.conversation import tools as T
from callfleet.conversation.lines import ERROR_REPLY, OPT_OUT_REPLY, Lines
from callfleet.conversation.llm import LlmClient, LlmError
from callfleet.conversation.personas import Callee
from callfleet.conversation.policy import detects_opt_out
from callfleet.conversation.script import seconds_to_say

log = structlog.get_logger("callfleet.conversation")

MAX_TOOL_ROUNDS = 3


@dataclass
class AgentResult:
    messages: list[dict[str, Any]]
    outcome: str  # answered | opted_out | failed
    ended_reason: str
    duration_seconds: float
    transfer: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Conversation:
    client: LlmClient
    assistant: Any
    system_prompt: str
    lines: Lines
    callee: Callee
    call_info: dict[str, Any]
    http: httpx.AsyncClient
    max_turns: int = 12
    tool_timeout: float = 5.0
    on_turn: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    t: float = 0.0

    # ------------------------------------------------------------ helpers

    def say(self, role: str, text: str, **extra: Any) -> None:
        self.messages.append({"role": role, "text": text, "time": round(self.t, 1), **extra})
        if role in ("assistant", "user"):
            self.t += seconds_to_say(text)

    def _trigger(self, text: str) -> str | None:
        low = text.lower().replace("’", "'")
        for phrase in self.lines.trigger_phrases:
            if phrase.lower() in low:
                return phrase
        return None

    def _closing(self) -> str:
        return self.lines.closing

    def _llm_messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        for m in self.messages:
            role = m.get("role")
            if role in ("assistant", "user", "system"):
                out.append({"role": role, "content": m.get("text") or ""})
        return out

    def _result(self, outcome: str, reason: str, **kw: Any) -> AgentResult:
        return AgentResult(self.messages, outcome, reason, round(self.t, 1),
                           tool_calls=self.tool_calls, **kw)

    def _last_assistant(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "assistant":
                return str(m.get("text") or "")
        return ""

    # ------------------------------------------------------------ the loop

    async def run(self) -> AgentResult:
        try:
            return await self._run()
        except LlmError as exc:
            log.warning("conversation_llm_failed", call_id=self.call_info.get("id"),
                        error=str(exc))
            self.say("assistant", ERROR_REPLY)
            return self._result("failed", "assistant_error", error=str(exc))

    async def _run(self) -> AgentResult:
        if self.messages:  # resumed: the callee catches up, the clock continues
            self.callee.replay(self.messages)
            last = self.messages[-1]
            self.t = float(last.get("time") or 0.0) + seconds_to_say(str(last.get("text")))
        else:
            if self.lines.first_message:
                self.say("assistant", self.lines.first_message)
            else:
                ended = await self._model_turn()
                if ended is not None:
                    return ended
        turns = sum(1 for m in self.messages if m.get("role") == "user")
        while turns < self.max_turns:
            if self.messages and self.messages[-1].get("role") == "user":
                # Resumed right after the callee spoke: the model answers first.
                ended = await self._model_turn()
                if ended is not None:
                    return ended
                continue
            reply = self.callee.reply(self._last_assistant())
            self.say("user", reply)
            turns += 1
            if detects_opt_out(reply):
                self.say("assistant", OPT_OUT_REPLY)
                return self._result("opted_out", "customer_opted_out")
            if self._trigger(reply):
                self.say("assistant", self._closing())
                return self._result("answered", "assistant_ended_call")
            if self.callee.said_goodbye:
                self.say("assistant", self._closing())
                return self._result("answered", "customer_ended_call")
            if self.on_turn is not None:
                await self.on_turn(self.messages)
            ended = await self._model_turn()
            if ended is not None:
                return ended
        self.say("assistant", self._closing())
        return self._result("answered", "max_turns")

    async def _model_turn(self) -> AgentResult | None:
        """The model speaks (possibly after tool calls). An AgentResult when the call ends."""
        for _ in range(MAX_TOOL_ROUNDS):
            result = await self.client.chat(self._llm_messages(),
                                            tools=T.specs(self.assistant) or None)
            text = (result.text or "").strip()
            if not result.tool_calls:
                if not text:
                    text = "Sorry, could you say that again?"
                self.say("assistant", text)
                if self._trigger(text):
                    closing = self._closing()
                    if closing.lower() not in text.lower():
                        self.say("assistant", closing)
                    return self._result("answered", "assistant_ended_call")
                return None
            if text:
                self.say("assistant", text)
            for call in result.tool_calls:
                ended = await self._tool(call.name, call.arguments, text)
                if ended is not None:
                    return ended
        self.say("assistant", "Let me get back to you on that.")
        return None

    async def _tool(self, name: str, args: dict[str, Any], said: str) -> AgentResult | None:
        record: dict[str, Any] = {"name": name, "arguments": args, "time": round(self.t, 1)}
        self.tool_calls.append(record)
        if name == T.END_CALL and T.end_call_enabled(self.assistant):
            record["result"] = "ended"
            closing = self._closing()
            if closing.lower() not in said.lower():
                self.say("assistant", closing)
            return self._result("answered", "assistant_ended_call")
        if name == T.TRANSFER_CALL and T.departments(self.assistant):
            dept = T.find_department(self.assistant, args.get("department"))
            if dept is None:
                record["result"] = "error: unknown department"
                self.say("system", f"Tool {name} failed: unknown department "
                                   f"{args.get('department')!r}", tool=name)
                return None
            mode = dept.get("mode") or "cold"
            transfer = {"department": dept["name"], "mode": mode,
                        "phone_number": dept.get("phone_number"),
                        "result": "completed", "at_seconds": round(self.t, 1)}
            self.say("assistant", self.lines.announcement(dept["name"]))
            if mode == "warm":
                brief = self.lines.brief(dept["name"]) or (
                    f"I have {self.call_info.get('contact_name') or 'a caller'} on the line "
                    f"about {args.get('reason') or 'their enquiry'}.")
                # The simulated carrier connects the department deterministically: the brief
                # is spoken to the department before the caller is connected.
                self.say("system", f"Warm transfer brief to {dept['name']}: {brief}",
                         tool=name)
                transfer["brief"] = brief
            record["result"] = "completed"
            return self._result("answered", "assistant_forwarded_call", transfer=transfer)
        tool = next((t for t in T.custom_tools(self.assistant) if t["name"] == name), None)
        if tool is None:
            record["result"] = "error: unknown tool"
            self.say("system", f"Tool {name} failed: there is no such tool", tool=name)
            return None
        message = self.lines.tool_message(name)
        if message:
            self.say("assistant", message)
        ok, text = await T.run_webhook(tool, args, self.call_info, self.http, self.tool_timeout)
        record["ok"] = ok
        record["result"] = text
        self.say("system", f"Tool {name} returned: {text}" if ok else f"Tool {name} {text}",
                 tool=name)
        return None
