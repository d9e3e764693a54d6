"""Settings, read from ``CALLFLEET_*`` environment variables and an optional ``.env`` file."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLFLEET_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".callfleet"), description="Where the SQLite file lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/callfleet.db",
    )
    default_region: str = Field(default="US", description="Region for phones without +country.")
    rate_limit_per_minute: int = Field(
        default=1200, description="Requests per minute per API key (0 disables the limit)."
    )
    rate_limit_burst: int = Field(default=200, description="Requests a key may send at once.")
    auth_cache_seconds: float = Field(
        default=5.0, description="How long a process trusts a verified key before re-reading it."
    )
    max_page_size: int = 1000
    default_page_size: int = 50
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Body limit of every route that declares "
        "no other (api/limits.py), counted while the body streams in.")
    import_max_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1,
        description="Cap for a CSV or multipart contact import (spooled to disk, not memory).")
    dnc_import_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Cap for a do-not-call list import.")
    import_batch_size: int | None = Field(
        default=None, ge=1,
        description="Rows per import transaction (default: 5000 on SQLite, 2000 on PostgreSQL).",
    )
    import_max_errors: int = Field(default=1000, description="Row errors listed per import.")
    db_pool_size: int = 20
    carrier: str = Field(
        default="sim", description="The carrier a request uses when it names none: sim "
        "(default), twilio or telnyx (docs/carriers.md).")
    public_url: str | None = Field(
        default=None, description="The base URL at which carriers and people reach callfleet "
        "(callbacks, TwiML, media streams and the one-time sign-in links the CLI prints derive "
        "from it); https and required with a real carrier. Unset: sign-in links use "
        "http://127.0.0.1:8000.")
    twilio_account_sid: str | None = Field(default=None, description="Twilio account SID.")
    twilio_auth_token: str | None = Field(
        default=None, description="Twilio auth token (REST and callback signatures; never "
        "logged).")
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com", description="Twilio's REST API (a local fake in "
        "tests).")
    twilio_calls_per_second: float = Field(
        default=1.0, ge=0, description="Calls started per second per Twilio account "
        "(Twilio's default limit is 1; 0: no limit).")
    telnyx_api_key: str | None = Field(default=None, description="Telnyx API key (never "
                                       "logged).")
    telnyx_public_key: str | None = Field(
        default=None, description="Telnyx webhook verification key (base64 Ed25519).")
    telnyx_connection_id: str | None = Field(
        default=None, description="Telnyx Call Control application (connection) id.")
    telnyx_api_base_url: str = Field(
        default="https://api.telnyx.com/v2", description="Telnyx's REST API (a local fake "
        "in tests).")
    telnyx_calls_per_second: float = Field(
        default=1.0, ge=0, description="Calls started per second per Telnyx connection "
        "(0: no limit).")
    carrier_ring_timeout_seconds: int = Field(
        default=30, ge=15, le=120, description="How long a real carrier lets a call ring "
        "(at least 15 s, FCC).")
    carrier_max_call_seconds: int = Field(
        default=600, ge=30, le=14400, description="A real call's time limit when its "
        "assistant sets none.")
    carrier_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Real seconds one carrier API request may "
        "take (keep it below lease_seconds).")
    time_scale: float = Field(
        default=1.0, description="Simulated time runs this many times faster (sim carrier only)."
    )
    sim_mix: str = Field(
        default="answer=55,no_answer=18,busy=8,voicemail=12,decline=4,failed=3",
        description="Weights of the simulated callees' behaviours per attempt.",
    )
    sim_invalid_percent: float = Field(
        default=2.0, description="Share of destination numbers the simulated network rejects."
    )
    sim_audio: bool = Field(
        default=False, description="Simulated callees talk over the media stream (live voice; "
        "a number's own setting wins). Needs callfleet[voice,voice-gpl].")
    voice_url: str = Field(
        default="ws://127.0.0.1:8000", description="Where carriers reach the media WebSocket "
        "(ws:// or wss:// scheme and host of a voice process, or of a load balancer).")
    voice_max_calls: int = Field(
        default=8, ge=1, description="Voice calls one process runs at once (bench/voice.py).")
    recordings_s3_bucket: str | None = Field(
        default=None, description="Keep call recordings in this S3-compatible bucket instead "
        "of <data_dir>/recordings (needs callfleet[s3]).")
    recordings_s3_prefix: str = Field(default="recordings/", max_length=200)
    recordings_s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, R2, ...); default AWS.")
    recordings_s3_region: str | None = None
    recordings_s3_access_key_id: str | None = Field(default=None, repr=False)
    recordings_s3_secret_access_key: str | None = Field(default=None, repr=False)
    recording_retention_days: int = Field(
        default=0, ge=0, le=36500, description="Delete call recordings this many days after "
        "the call ended (0 = keep them); a team's recordingRetentionDays wins.")
    voice_slots: bool = Field(
        default=True, description="The dialer reserves a slot on a live voice process before "
        "it places a live voice call (a real carrier's, or the simulated network's in audio "
        "mode), and leaves the contact due when every process is full (docs/decisions/0040).")
    voice_drain_seconds: float = Field(
        default=900.0, description="On SIGTERM a voice process waits this long for its calls.")
    sim_instant: bool = Field(
        default=False, description="Simulated calls ring, answer and end at once (benchmarks)."
    )
    team_max_concurrent_calls: int = Field(
        default=100_000, description="Default team-wide cap on calls in progress."
    )
    team_calls_per_second: float = Field(
        default=0.0, description="Default cap on calls started per second per team (0: none)."
    )
    legal_hours_start: str = "08:00"
    legal_hours_end: str = "21:00"
    dialer_tick_seconds: float = Field(default=0.2, description="Real seconds between passes.")
    idle_max_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait of an idle background loop (dialer, "
        "webhooks, conversations, analysis) between passes; new work wakes it at once and "
        "work due at a known time is picked up on time (docs/decisions/0020).")
    dialer_batch: int = Field(default=200, description="Enrollments claimed per pass.")
    dialer_pace_seconds: float = Field(
        default=0.05, description="Real seconds to wait after a pass that did less than a "
        "quarter batch of work, so that passes under a steady trickle take bigger batches.")
    lease_seconds: float = Field(
        default=30.0, description="Real seconds a worker owns a call before others reconcile it."
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, description="Real seconds a webhook receiver has to answer one delivery."
    )
    webhook_max_in_flight: int = Field(
        default=256, ge=1, description="Deliveries a sender process has in flight at once.")
    webhook_endpoint_concurrency: int = Field(
        default=16, ge=1, description="Deliveries sent at once to one endpoint (and kept-alive "
        "connections to one origin).")
    webhook_retry_base_seconds: float = Field(
        default=10.0, description="First retry delay (simulated seconds; x3 per attempt)."
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, description="Cap on one retry delay (simulated seconds)."
    )
    webhook_retry_window_seconds: float = Field(
        default=86400.0, description="Retry a failing delivery for this long, then mark failed."
    )
    webhook_lease_seconds: float = Field(
        default=30.0, description="Real seconds a sender owns a delivery before others retry it."
    )
    webhook_tick_seconds: float = Field(default=0.2, description="Real seconds between passes.")
    webhook_batch: int = Field(default=500, description="Outbox events fanned out per pass.")
    webhook_retention_days: float = Field(
        default=7.0, description="Dispatched events and finished deliveries are kept this long."
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key(s), comma-separated (first encrypts), for secrets kept at rest "
        "(webhook signing secrets, LLM API keys); default: <data_dir>/secret.key, created on "
        "first use. Every process of a deployment needs the same key.",
    )
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API for conversations and analysis "
        "(unset: the deterministic script and extractor).")
    llm_api_key: str | None = Field(default=None, description="Key for llm_base_url (never "
                                    "logged).")
    llm_model: str | None = Field(default=None, description="Model at llm_base_url (else the "
                                  "assistant's model).")
    llm_timeout_seconds: float = Field(default=30.0, description="Time per model request.")
    llm_max_retries: int = Field(default=3, description="Retries on 429/5xx/timeouts.")
    llm_retry_base_seconds: float = Field(default=0.5, description="First retry delay "
                                          "(doubles each retry).")
    conversation_max_turns: int = Field(default=12, description="Callee turns per LLM call.")
    conversation_lease_seconds: float = Field(
        default=60.0, description="Real seconds a worker owns a conversation or analysis.")
    conversation_max_attempts: int = Field(
        default=3, description="Workers that may take over a conversation before it ends.")
    tool_timeout_seconds: float = Field(default=5.0, description="Custom webhook tool timeout.")
    intelligence_tick_seconds: float = Field(
        default=0.2, description="Real seconds between conversation/analysis passes.")
    outbound_allowed_networks: str = Field(
        default="", description="Comma-separated CIDRs that tenant-set URLs (webhooks, LLM "
        "endpoints, tools) may reach although they are private, loopback or otherwise refused "
        "(docs/security.md). Default: none.")
    log_level: str = "INFO"

    @field_validator("outbound_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not a network (CIDR such as "
                                     "10.0.0.0/8)") from None
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'callfleet.db').as_posix()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
