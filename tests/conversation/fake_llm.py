"""A local OpenAI-compatible server for tests, driven through the real ``openai`` client.

``FakeLLM`` runs a small FastAPI app with uvicorn on a free port in a thread. Responses are
scripted: ``fake.queue`` holds specs used one per request (first in, first out); when it is
empty, ``fake.policy(body)`` decides (the scripted "assistant" of the e2e test). A spec is a
dict with one of:

* ``{"text": "..."}``: a chat answer (streamed as SSE when the request asks for a stream)
* ``{"tool": name, "args": {...}, "text": optional}``: a tool call
* ``{"json": {...}}`` or ``{"raw": "..."}``: the message content for structured output
* ``{"status": 429 | 500 | 400, "retry_after": "0"}``: an error response
* ``{"delay": seconds, ...}``: answer only after ``delay`` real seconds (the timeout path)

It also serves webhook tools: ``POST /tools/{name}`` answers from ``fake.tool_results``.
Every request body is kept in ``fake.requests`` / ``fake.tool_requests``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeLLM:
    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.policy: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.requests: list[dict[str, Any]] = []
        self.tool_requests: list[dict[str, Any]] = []
        self.tool_results: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.port = _free_port()
        self.app = self._build()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def tool_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/tools/{name}"

    def start(self) -> FakeLLM:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)

    def reset(self) -> None:
        with self.lock:
            self.queue.clear()
            self.requests.clear()
            self.tool_requests.clear()
            self.tool_results.clear()
            self.policy = None

    def push(self, *specs: dict[str, Any]) -> None:
        with self.lock:
            self.queue.extend(specs)

    def _next(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append(body)
            if self.queue:
                return self.queue.pop(0)
            policy = self.policy
        if policy is not None:
            return policy(body)
        return {"text": "OK."}

    # ------------------------------------------------------------ the app

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body = await request.json()
            spec = self._next(body)
            if spec.get("delay"):
                await asyncio.sleep(float(spec["delay"]))
            if spec.get("status"):
                headers = {}
                if spec.get("retry_after") is not None:
                    headers["retry-after"] = str(spec["retry_after"])
                return JSONResponse({"error": {"message": f"scripted {spec['status']}",
                                               "type": "scripted", "code": None}},
                                    status_code=int(spec["status"]), headers=headers)
            if body.get("stream"):
                return StreamingResponse(_sse(spec, body), media_type="text/event-stream")
            return JSONResponse(_completion(spec, body))

        @app.post("/tools/{name}")
        async def tool(name: str, request: Request) -> Response:
            body = await request.json()
            with self.lock:
                self.tool_requests.append({"name": name, **body,
                                           "http_headers": dict(request.headers)})
                spec = dict(self.tool_results.get(name) or {"result": "done"})
            if spec.get("delay"):
                await asyncio.sleep(float(spec.pop("delay")))
            status = int(spec.pop("status", 200))
            return JSONResponse(spec, status_code=status)

        return app


def _message(spec: dict[str, Any]) -> dict[str, Any]:
    if "tool" in spec:
        return {"role": "assistant", "content": spec.get("text"), "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": spec["tool"], "arguments": json.dumps(spec.get("args") or {})},
        }]}
    if "json" in spec:
        return {"role": "assistant", "content": json.dumps(spec["json"])}
    if "raw" in spec:
        return {"role": "assistant", "content": spec["raw"]}
    return {"role": "assistant", "content": spec.get("text", "")}


def _completion(spec: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": _message(spec),
                     "finish_reason": "tool_calls" if "tool" in spec else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
               "model": body.get("model", "fake"),
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n"


async def _sse(spec: dict[str, Any], body: dict[str, Any]):  # type: ignore[no-untyped-def]
    yield _chunk(body, {"role": "assistant", "content": ""})
    text = spec.get("text") or ""
    for piece in re.findall(r"\S+\s*", text):
        yield _chunk(body, {"content": piece})
    if "tool" in spec:
        args = json.dumps(spec.get("args") or {})
        half = len(args) // 2
        yield _chunk(body, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                            "function": {"name": spec["tool"],
                                                         "arguments": args[:half]}}]})
        yield _chunk(body, {"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]})
        yield _chunk(body, {}, "tool_calls")
    else:
        yield _chunk(body, {}, "stop")
    yield "data: [DONE]\n\n"


# ---------------------------------------------------------------- a scripted assistant


def field_list(system: str) -> list[tuple[str, str]]:
    """(key, description) pairs from the 'Information to collect' part of a system prompt."""
    part = system.split("Information to collect during the call:", 1)
    if len(part) < 2:
        return []
    out = []
    for line in part[1].splitlines():
        m = re.match(r"^- ([a-z0-9_]+): (.*)$", line.strip())
        if m:
            out.append((m.group(1), m.group(2)))
        elif out and line.strip() == "":
            break
    return out


def interviewer(body: dict[str, Any]) -> dict[str, Any]:
    """The e2e assistant: asks each field's question once, in order, then ends the call; as
    the analyst, reads the callee's answers from the transcript."""
    messages = body.get("messages") or []
    if body.get("response_format"):
        return {"json": analyst(messages)}
    system = messages[0]["content"] if messages else ""
    asked = {m["content"] for m in messages if m.get("role") == "assistant"}
    for _key, question in field_list(system):
        if question not in asked:
            return {"text": question}
    return {"tool": "end_call", "args": {"reason": "all questions asked"}}


def analyst(messages: list[dict[str, Any]]) -> dict[str, Any]:
    transcript = messages[-1]["content"] if messages else ""
    user = "\n".join(line[6:] for line in transcript.splitlines() if line.startswith("User: "))
    data: dict[str, Any] = {}
    if m := re.search(r"[\w.+-]+@[\w-]+\.[\w.]+\w", user):
        data["email"] = m.group()
    for level in ("high", "medium", "low", "none"):
        if re.search(rf"\b{level}\b", user, re.IGNORECASE):
            data["interest_level"] = level
            break
    if m := re.search(r"\b(monday|tuesday|wednesday|thursday|friday)\b works best", user,
                      re.IGNORECASE):
        data["callback_day"] = m.group(1).lower()
    if m := re.search(r"budget is around (\d+)", user):
        data["budget"] = int(m.group(1))
    if m := re.search(r"team of about (\d+)", user):
        data["team_size"] = int(m.group(1))
    if "so qualified" in user:
        data["lead_status"] = "qualified"
    elif "unqualified" in user:
        data["lead_status"] = "unqualified"
    return {"summary": "The fake analyst read the call.",
            "success_evaluation": {"success": "email" in data or "budget" in data,
                                   "reason": "scripted"},
            "extracted_data": data}
