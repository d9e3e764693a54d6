from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, TeamOwned, UTCDateTime


class Assistant(TeamOwned, Base):
    __tablename__ = "assistants"
    id_prefix: ClassVar[str] = "asst"
    label: ClassVar[str] = "Assistant"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40), default="outbound")
    template_id: Mapped[str] = mapped_column(String(40), default="custom")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    first_message: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(60), default="openai")
    model: Mapped[str] = mapped_column(String(120), default="gpt-4o-mini")
    temperature: Mapped[float] = mapped_column(Float, default=0.7)
    max_tokens: Mapped[int] = mapped_column(Integer, default=300)
    voice_provider: Mapped[str | None] = mapped_column(String(60))
    voice_model: Mapped[str | None] = mapped_column(String(120))
    voice_id: Mapped[str | None] = mapped_column(String(120))
    transcriber_provider: Mapped[str | None] = mapped_column(String(60))
    transcriber_model: Mapped[str | None] = mapped_column(String(120))
    language: Mapped[str] = mapped_column(String(20), default="en")
    recording_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    inbound_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    outbound_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    voicemail_detection_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    voicemail_action: Mapped[str] = mapped_column(String(20), default="hangup")
    voicemail_message: Mapped[str | None] = mapped_column(Text)
    end_call: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    call_transfer: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    info_extraction: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    success_criteria: Mapped[str | None] = mapped_column(Text)
    # Per-assistant LLM endpoint (conversation.llm.resolve_config); the key is never returned.
    llm_base_url: Mapped[str | None] = mapped_column(String(500))
    llm_api_key: Mapped[str | None] = mapped_column(Text)  # encrypted
    # Custom webhook tools: [{name, description, url, parameters, timeout_seconds, headers}].
    tools: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, default=list)
    # Set when the assistant is deleted while campaigns or calls still refer to it: it is gone
    # from the API (404) but those keep their history (migration 0011).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_assistants_team_id_id", "team_id", "id"),)
