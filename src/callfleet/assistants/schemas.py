"""Request bodies (camelCase) and response shapes (snake_case) of the assistant endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from callfleet.api.schemas import CamelIn
from callfleet.numbers.schemas import PhoneNumberOut

TemplateId = Literal["outbound-setter", "inbound-support", "follow-up", "custom"]
AssistantType = Literal["outbound", "inbound", "both"]
VoicemailAction = Literal["leave_message", "hangup"]
TransferMode = Literal["cold", "warm"]
ExtractionType = Literal["text", "number", "date", "select", "boolean", "email", "phone"]
ExtractionTarget = Literal[
    "custom_fields", "email", "job_title", "lead_status", "timezone", "phone_secondary", "notes"
]


class EndCallIn(CamelIn):
    """Ending the call: when a trigger phrase is said, the assistant says the closing phrase
    and hangs up."""

    enabled: bool | None = None
    trigger_phrases: list[str] | None = Field(default=None, max_length=50)
    closing_phrase: str | None = Field(default=None, max_length=1000)


class DepartmentIn(CamelIn):
    name: str | None = Field(default=None, max_length=100)
    mode: TransferMode | None = None
    phone_number: str | None = Field(default=None, max_length=64)
    intro_message: str | None = Field(
        default=None, max_length=2000,
        description="Warm transfer: what the assistant tells the department first. Prompt "
                    "variables are rendered.")
    announcement: str | None = Field(
        default=None, max_length=1000,
        description="What the assistant says to the caller before transferring (default: "
                    "\"Let me transfer you to <name> now.\"). Prompt variables are rendered.")


class CallTransferIn(CamelIn):
    enabled: bool | None = None
    departments: list[DepartmentIn] | None = Field(default=None, max_length=20)


class ExtractionFieldIn(CamelIn):
    key: str | None = Field(default=None, max_length=64)
    type: ExtractionType | None = None
    description: str | None = Field(default=None, max_length=2000)
    question: str | None = Field(
        default=None, max_length=500,
        description="What the assistant asks to get this value when no LLM is configured "
                    "(default: a question derived from the key and type, e.g. \"Could you "
                    "tell me your email address?\"). Prompt variables are rendered.")
    options: list[str] | None = Field(default=None, max_length=100)
    target: ExtractionTarget | None = None


class InfoExtractionIn(CamelIn):
    enabled: bool | None = None
    fields: list[ExtractionFieldIn] | None = Field(default=None, max_length=50)


class ToolIn(CamelIn):
    """A custom webhook tool: the model may call it; callfleet POSTs the arguments to ``url``
    and gives the answer back to the model."""

    name: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, max_length=2000)
    parameters: dict[str, Any] | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=30)
    headers: dict[str, str] | None = Field(default=None, max_length=20)
    message: str | None = Field(
        default=None, max_length=500,
        description="What the assistant says while the tool runs (e.g. \"One moment while I "
                    "check.\"). Prompt variables are rendered.")


class AssistantIn(CamelIn):
    """Create and PATCH body. On PATCH only the keys sent change; ``endCall``, ``callTransfer``
    and ``infoExtraction`` merge key by key (a list sent replaces the stored list)."""

    team_id: str | None = Field(default=None, max_length=64)
    account_slug: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    template_id: TemplateId | None = None
    type: AssistantType | None = None
    system_prompt: str | None = Field(default=None, max_length=50_000)
    first_message: str | None = Field(default=None, max_length=5000)
    provider: str | None = Field(default=None, max_length=60)
    model: str | None = Field(default=None, max_length=120)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32000)
    voice_provider: str | None = Field(default=None, max_length=60)
    voice_model: str | None = Field(default=None, max_length=120)
    voice_id: str | None = Field(default=None, max_length=120)
    transcriber_provider: str | None = Field(default=None, max_length=60)
    transcriber_model: str | None = Field(default=None, max_length=120)
    language: str | None = Field(default=None, max_length=20)
    recording_enabled: bool | None = None
    inbound_enabled: bool | None = None
    outbound_enabled: bool | None = None
    voicemail_detection_enabled: bool | None = None
    voicemail_action: VoicemailAction | None = None
    voicemail_message: str | None = Field(default=None, max_length=5000)
    end_call: EndCallIn | None = None
    call_transfer: CallTransferIn | None = None
    info_extraction: InfoExtractionIn | None = None
    success_criteria: str | None = Field(default=None, max_length=5000)
    llm_base_url: str | None = Field(default=None, max_length=500)
    llm_api_key: str | None = Field(default=None, max_length=500)
    tools: list[ToolIn] | None = Field(default=None, max_length=20)


class PhoneNumberIdsIn(CamelIn):
    phone_number_ids: list[str] = Field(max_length=1000)


# ---- responses (documentation of what the serializers in service.py produce) ----


class EndCallOut(BaseModel):
    enabled: bool
    trigger_phrases: list[str]
    closing_phrase: str | None


class DepartmentOut(BaseModel):
    name: str
    mode: str
    phone_number: str
    intro_message: str | None
    announcement: str | None


class CallTransferOut(BaseModel):
    enabled: bool
    departments: list[DepartmentOut]


class ExtractionFieldOut(BaseModel):
    key: str
    type: str
    description: str | None
    question: str | None
    options: list[str] | None
    target: str


class InfoExtractionOut(BaseModel):
    enabled: bool
    fields: list[ExtractionFieldOut]


class ToolOut(BaseModel):
    name: str
    description: str | None
    url: str
    parameters: dict[str, Any]
    timeout_seconds: float | None
    message: str | None
    header_names: list[str]


class AssistantOut(BaseModel):
    id: str
    team_id: str
    name: str
    type: str
    template_id: str
    system_prompt: str
    first_message: str
    provider: str
    model: str
    temperature: float
    max_tokens: int
    voice_provider: str | None
    voice_model: str | None
    voice_id: str | None
    transcriber_provider: str | None
    transcriber_model: str | None
    language: str
    recording_enabled: bool
    inbound_enabled: bool
    outbound_enabled: bool
    voicemail_detection_enabled: bool
    voicemail_action: str
    voicemail_message: str | None
    end_call: EndCallOut
    call_transfer: CallTransferOut
    info_extraction: InfoExtractionOut
    success_criteria: str | None
    llm_base_url: str | None
    llm_api_key_set: bool
    tools: list[ToolOut]
    phone_number_ids: list[str]
    created_at: str
    updated_at: str


class AssistantEnvelope(BaseModel):
    success: bool = True
    assistant: AssistantOut


class AssistantList(BaseModel):
    success: bool = True
    assistants: list[AssistantOut]
    count: int
    limit: int
    offset: int


class OutboundAssistantOut(AssistantOut):
    phone_numbers: list[PhoneNumberOut]


class OutboundAssistantList(BaseModel):
    success: bool = True
    assistants: list[OutboundAssistantOut]
    count: int
