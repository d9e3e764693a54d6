"""One client for OpenAI-compatible chat APIs (OpenAI, vLLM, Ollama, any gateway).

``resolve_config`` decides which endpoint a call uses (assistant > team > environment; with
none, callfleet stays on its deterministic path), and :class:`LlmClient` wraps the official
``openai`` ``AsyncOpenAI`` client with what a phone call needs: a bounded time per request,
bounded retries with exponential backoff on 429 and 5xx (and connection errors), streamed
chat completions with tool calls, and structured output (a JSON-schema response validated by
a pydantic model).

The SDK's own retries are switched off (``max_retries=0``) so that the retry policy, its
bounds and its sleeps are ours (and injectable in tests). API keys are never logged.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from callfleet.config import get_settings
from callfleet.secrets import secret_box

if TYPE_CHECKING:
    import openai

log = structlog.get_logger("callfleet.llm")

T = TypeVar("T", bound=BaseModel)


class LlmError(Exception):
    """The model could not answer (after retries, or a non-retryable error)."""


@dataclass(frozen=True)
class LlmConfig:
    base_url: str
    api_key: str | None
    model: str
    source: str  # assistant | team | env
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 3
    retry_base_seconds: float = 0.5

    def describe(self) -> dict[str, Any]:
        """For logs and call metadata: never the key."""
        return {"base_url": self.base_url, "model": self.model, "source": self.source}


@dataclass
class EnvLlm:
    """The operator's defaults (``CALLFLEET_LLM_*``) and the client's limits."""

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 3
    retry_base_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Any) -> EnvLlm:
        return cls(
            base_url=getattr(settings, "llm_base_url", None) or None,
            api_key=getattr(settings, "llm_api_key", None) or None,
            model=getattr(settings, "llm_model", None) or None,
            timeout_seconds=float(getattr(settings, "llm_timeout_seconds", 30.0)),
            max_retries=int(getattr(settings, "llm_max_retries", 3)),
            retry_base_seconds=float(getattr(settings, "llm_retry_base_seconds", 0.5)),
        )


_ENV: EnvLlm | None = None


def configure(settings: Any) -> None:
    """Set the process's environment-level LLM settings (the app and workers call this)."""
    global _ENV
    _ENV = EnvLlm.from_settings(settings)


def env_llm() -> EnvLlm:
    global _ENV
    if _ENV is None:
        _ENV = EnvLlm.from_settings(get_settings())
    return _ENV


def _reveal(stored: str | None) -> str | None:
    """A team's or assistant's key is stored encrypted (callfleet.secrets)."""
    if not stored:
        return None
    return secret_box().decrypt(stored)


def resolve_config(assistant: Any, team_settings: Mapping[str, Any] | None,
                   env: EnvLlm | None = None) -> LlmConfig | None:
    """The endpoint a call of ``assistant`` uses, or None for the deterministic path.

    The most specific level with a base URL wins: the assistant's ``llm_base_url``, else the
    team's ``settings.llm_base_url``, else ``CALLFLEET_LLM_BASE_URL``. The key always comes
    from the same level as the URL (an operator's key is never sent to a URL a team chose).
    Model names belong to an endpoint: with the assistant's own endpoint the assistant's
    ``model`` is used; with the team's or the environment's, that level's ``llm_model`` when
    set, else the assistant's ``model``.
    """
    env = env or env_llm()
    team = team_settings or {}
    own_model = (getattr(assistant, "model", None) or "").strip() or None
    common = {
        "temperature": getattr(assistant, "temperature", None),
        "max_tokens": getattr(assistant, "max_tokens", None),
        "timeout_seconds": env.timeout_seconds,
        "max_retries": env.max_retries,
        "retry_base_seconds": env.retry_base_seconds,
    }
    if assistant is not None and getattr(assistant, "llm_base_url", None):
        model = own_model or team.get("llm_model") or env.model
        if model:
            return LlmConfig(assistant.llm_base_url,
                             _reveal(getattr(assistant, "llm_api_key", None)),
                             model, "assistant", **common)
    if team.get("llm_base_url"):
        model = team.get("llm_model") or own_model or env.model
        if model:
            return LlmConfig(team["llm_base_url"], _reveal(team.get("llm_api_key")), model,
                             "team", **common)
    if env.base_url:
        model = env.model or own_model
        if model:
            return LlmConfig(env.base_url, env.api_key, model, "env", **common)
    return None


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""


@dataclass
class ChatResult:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    attempts: int = 1


_clients: dict[tuple[str, str, float], openai.AsyncOpenAI] = {}


def _sdk_client(config: LlmConfig) -> openai.AsyncOpenAI:
    # The SDK is imported on first use: it is ~0.4 s of every process's start-up, and most
    # deployments run the deterministic path without it.
    import openai

    key = (config.base_url, config.api_key or "", config.timeout_seconds)
    client = _clients.get(key)
    if client is None:
        if len(_clients) > 64:  # many endpoints (per-assistant URLs): keep the cache bounded
            _clients.clear()
        client = openai.AsyncOpenAI(
            base_url=config.base_url, api_key=config.api_key or "not-needed",
            timeout=config.timeout_seconds, max_retries=0,
        )
        _clients[key] = client
    return client


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LlmClient:
    """Calls to one endpoint with the call-safe policy (timeout, bounded retries)."""

    def __init__(self, config: LlmConfig, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.sleep = sleep
        self.sdk = _sdk_client(config)

    async def _retrying(self, what: str, fn: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
        import openai  # loaded by _sdk_client already

        retryable = (openai.RateLimitError, openai.InternalServerError,
                     openai.APIConnectionError, openai.APITimeoutError, asyncio.TimeoutError,
                     TimeoutError)
        attempts = 0
        while True:
            attempts += 1
            try:
                result = await asyncio.wait_for(fn(), self.config.timeout_seconds)
                return result, attempts
            except retryable as exc:
                if attempts > self.config.max_retries:
                    log.warning("llm_gave_up", what=what, attempts=attempts,
                                status=_status(exc), error=type(exc).__name__,
                                **self.config.describe())
                    raise LlmError(f"{what} failed after {attempts} attempts: "
                                   f"{type(exc).__name__}") from exc
                delay = self.config.retry_base_seconds * 2 ** (attempts - 1)
                delay *= 1 + random.random() * 0.25  # jitter
                hinted = _retry_after(exc)
                if hinted is not None:
                    delay = max(delay, min(hinted, 30.0))
                log.info("llm_retry", what=what, attempt=attempts, status=_status(exc),
                         delay=round(delay, 3), **self.config.describe())
                await self.sleep(delay)
            except openai.APIStatusError as exc:  # 400, 401, 403, 404, 422: retrying won't help
                log.warning("llm_error", what=what, status=exc.status_code,
                            **self.config.describe())
                raise LlmError(f"{what} was refused with HTTP {exc.status_code}") from exc
            except openai.OpenAIError as exc:
                raise LlmError(f"{what} failed: {type(exc).__name__}") from exc

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.config.model}
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            params["max_tokens"] = self.config.max_tokens
        return params

    async def chat(self, messages: list[dict[str, Any]], *,
                   tools: list[dict[str, Any]] | None = None, stream: bool = True) -> ChatResult:
        """One assistant turn: its text and the tools it calls (streamed by default, so a
        voice pipeline could start speaking early; here the pieces are joined)."""

        async def once() -> ChatResult:
            params = self._params()
            if tools:
                params["tools"] = tools
            if not stream:
                resp = await self.sdk.chat.completions.create(messages=messages, **params)
                msg = resp.choices[0].message
                calls = [ToolCall(tc.id, tc.function.name, _args(tc.function.arguments),
                                  tc.function.arguments or "")
                         for tc in (msg.tool_calls or []) if getattr(tc, "function", None)]
                return ChatResult(msg.content or "", calls)
            text: list[str] = []
            partial: dict[int, dict[str, str]] = {}
            response = await self.sdk.chat.completions.create(messages=messages, stream=True,
                                                              **params)
            async for chunk in response:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta is None:
                    continue
                if delta.content:
                    text.append(delta.content)
                for tc in delta.tool_calls or []:
                    slot = partial.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function is not None:
                        if tc.function.name:
                            slot["name"] += tc.function.name
                        if tc.function.arguments:
                            slot["args"] += tc.function.arguments
            calls = [ToolCall(s["id"] or f"call_{i}", s["name"], _args(s["args"]), s["args"])
                     for i, s in sorted(partial.items()) if s["name"]]
            return ChatResult("".join(text), calls)

        result, attempts = await self._retrying("chat", once)
        result.attempts = attempts
        return result  # type: ignore[no-any-return]

    async def structured(self, messages: list[dict[str, Any]], schema_name: str,
                         model: type[T]) -> T:
        """A JSON object matching ``model``'s JSON schema, validated by pydantic. An answer
        that is not valid JSON for the schema counts as a failed attempt (retried once)."""
        schema = model.model_json_schema()

        async def once() -> T:
            params = self._params()
            resp = await self.sdk.chat.completions.create(
                messages=messages,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": schema_name, "schema": schema}},
                **params,
            )
            content = resp.choices[0].message.content or ""
            try:
                return model.model_validate_json(_strip_fences(content))
            except ValidationError as exc:
                raise _BadJson(str(exc)[:300]) from exc

        tries = 0
        while True:
            tries += 1
            try:
                result, _ = await self._retrying("structured", once)
                return result  # type: ignore[no-any-return]
            except _BadJson as exc:
                if tries >= 2:
                    raise LlmError(f"the model's JSON did not match the schema: {exc}") from exc


class _BadJson(Exception):
    pass


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`")
        if text.lower().startswith("json"):
            text = text[4:]
    return text.strip()


def _args(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}
