"""Wire forms of CRM rows (SPEC 3): what the API returns and events carry."""

from __future__ import annotations

from typing import Any

from callfleet.crm.models import Company, Contact, CustomFieldDefinition
from callfleet.db.base import iso


def company_out(c: Company, contact_count: int) -> dict[str, Any]:
    return {
        "id": c.id,
        "team_id": c.team_id,
        "name": c.name,
        "website": c.website,
        "industry": c.industry,
        "company_size": c.company_size,
        "phone": c.phone,
        "address_line1": c.address_line1,
        "address_line2": c.address_line2,
        "city": c.city,
        "state": c.state,
        "postal_code": c.postal_code,
        "country": c.country,
        "notes": c.notes,
        "custom_fields": c.custom_fields or {},
        "contact_count": contact_count,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def contact_out(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "team_id": c.team_id,
        "company_id": c.company_id,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email": c.email,
        "phone": c.phone,
        "phone_secondary": c.phone_secondary,
        "job_title": c.job_title,
        "lead_status": c.lead_status,
        "source": c.source,
        "timezone": c.timezone,
        "preferred_contact_method": c.preferred_contact_method,
        "do_not_call": bool(c.do_not_call),
        "notes": c.notes,
        "custom_fields": c.custom_fields or {},
        "tags": c.tags or [],
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
    }


def custom_field_out(d: CustomFieldDefinition) -> dict[str, Any]:
    return {
        "id": d.id,
        "team_id": d.team_id,
        "key": d.key,
        "name": d.name,
        "type": d.type,
        "options": d.options,
        "entity_type": d.entity_type,
        "description": d.description,
        "required": bool(d.required),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }
