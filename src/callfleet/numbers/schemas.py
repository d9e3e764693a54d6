"""Request bodies (camelCase) and response shapes of the phone number endpoints.

Search results use camelCase keys inside ``numbers`` (``phoneNumber``, ``monthlyPrice``, ...)
exactly as SPEC 3 shows; every other response object is snake_case.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from callfleet.api.schemas import CamelIn

Provider = Literal["sim", "twilio", "telnyx"]
NumberType = Literal["local", "toll-free"]
SettableStatus = Literal["active", "suspended"]


class SearchFilters(CamelIn):
    country_code: str = Field(min_length=2, max_length=2, description="ISO-3166 alpha-2.")
    area_code: str | None = Field(default=None, max_length=6)
    number_type: NumberType = "local"
    limit: int = Field(default=20, ge=1, le=100)


class NumberSearchIn(CamelIn):
    filters: SearchFilters
    provider: Provider | None = Field(
        default=None, description="The carrier to search (default: CALLFLEET_CARRIER).")


class PurchaseIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    phone_number: str | None = Field(default=None, max_length=64)
    provider: Provider | None = Field(
        default=None, description="The carrier to buy from (default: CALLFLEET_CARRIER).")
    friendly_name: str | None = Field(default=None, max_length=200)


class ImportIn(CamelIn):
    """A number the team already owns at a carrier, brought into callfleet."""

    team_id: str | None = Field(default=None, max_length=64)
    phone_number: str | None = Field(default=None, max_length=64)
    provider: Provider | None = None
    provider_ref: str | None = Field(
        default=None, max_length=200,
        description="The carrier's id for the number, or the name of the stored credentials "
                    "to reach it with (never the secret itself).",
    )
    friendly_name: str | None = Field(default=None, max_length=200)


class PhoneNumberPatchIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    friendly_name: str | None = Field(default=None, max_length=200)
    status: SettableStatus | None = None
    company_id: str | None = Field(
        default=None, max_length=64,
        description="The company unknown inbound callers of this number are created in "
                    "(default: the team's 'Inbound callers' company).")


# ---- responses ----


class AvailableNumberOut(BaseModel):
    phoneNumber: str  # SPEC's camelCase keys
    monthlyPrice: float
    setupPrice: float
    features: list[str]


class NumberSearchOut(BaseModel):
    success: bool = True
    numbers: list[AvailableNumberOut]
    provider: str
    count: int


class PhoneNumberOut(BaseModel):
    id: str
    team_id: str
    phone_number: str
    provider: str
    provider_ref: str | None
    status: str
    assistant_id: str | None
    friendly_name: str | None
    country_code: str | None
    number_type: str
    monthly_price: float | None
    capabilities: list[str]
    company_id: str | None = None
    created_at: str
    updated_at: str


class PhoneNumberEnvelope(BaseModel):
    success: bool = True
    phone_number: PhoneNumberOut


class PhoneNumberList(BaseModel):
    success: bool = True
    phone_numbers: list[PhoneNumberOut]
    count: int
    limit: int
    offset: int


class AssistantNumbers(BaseModel):
    success: bool = True
    phone_numbers: list[PhoneNumberOut]
    count: int
