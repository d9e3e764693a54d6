"""CRM behaviour: companies, contacts and custom field definitions.

Services never commit; the route (or ``api.idempotency``) owns the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.calls.views import call_out
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.crm import fields as F
from callfleet.crm import store
from callfleet.crm.events import emit_contact_updated
from callfleet.crm.models import Company, Contact, CustomFieldDefinition
from callfleet.crm.views import company_out, contact_out, custom_field_out
from callfleet.db.base import iso, utcnow
from callfleet.db.session import Database
from callfleet.errors import ApiError, bad_request, conflict
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal, TeamScope

Definitions = dict[str, tuple[str, list[str] | None]]


# ---------------------------------------------------------------- helpers


MAX_SEARCH = 200  # characters of a `search` filter (SQLite refuses LIKE patterns over 50 kB)


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's wildcards escaped (use with ``escape='\\\\'``)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def field(name: str, fn: Any, *args: Any) -> Any:
    """Run a normaliser from ``fields``; its ValueError becomes a 400 naming the field."""
    try:
        return fn(*args)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}", name) from None


async def load_definitions(
    session: AsyncSession, team_id: str, entity_type: str
) -> Definitions:
    rows = await session.execute(
        TeamScope(team_id).select(CustomFieldDefinition.key, CustomFieldDefinition.type,
                                  CustomFieldDefinition.options)
        .where(CustomFieldDefinition.entity_type == entity_type)
    )
    return {k: (t, o) for k, t, o in rows}


async def _custom_fields(
    session: AsyncSession, team_id: str, entity: str, values: dict[str, Any] | None
) -> dict[str, Any]:
    if not values:
        return {}
    defs = await load_definitions(session, team_id, entity)
    return field("customFields", F.check_custom_fields, values, defs)  # type: ignore[no-any-return]


def _require(value: str | None, name: str, max_len: int) -> str:
    cleaned = field(name, F.clean_text, value, max_len)
    if not cleaned:
        raise bad_request(f"{name} is required", name)
    return cleaned  # type: ignore[no-any-return]


# ---------------------------------------------------------------- companies

COMPANY_TEXT = {
    "website": 500,
    "industry": 200,
    "company_size": 100,
    "address_line1": 300,
    "address_line2": 300,
    "city": 200,
    "state": 200,
    "postal_code": 40,
    "notes": 20_000,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _company_values(data: dict[str, Any], region: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, max_len in COMPANY_TEXT.items():
        if key in data:
            out[key] = field(_camel(key), F.clean_text, data[key], max_len)
    if "phone" in data:
        out["phone"] = field("phone", F.normalize_phone, data["phone"], region)
    if "country" in data:
        out["country"] = field("country", F.normalize_country, data["country"])
    return out


async def create_company(
    session: AsyncSession, p: Principal, data: dict[str, Any], region: str
) -> dict[str, Any]:
    name = _require(data.get("name"), "name", 300)
    values = _company_values(data, region)
    custom = await _custom_fields(session, p.team_id, "company", data.get("custom_fields"))
    company = Company(
        id=ids.new_id("comp"), team_id=p.team_id, name=name, name_lower=name.lower(),
        custom_fields=custom, **values,
    )
    session.add(company)
    await session.flush()
    return company_out(company, 0)


async def _contact_count(session: AsyncSession, c: Company) -> int:
    # Always with the team: (team_id, company_id, id) is the index by company (migration 0013).
    return int(
        await session.scalar(
            TeamScope(c.team_id).count(Contact).where(Contact.company_id == c.id))
        or 0
    )


async def get_company(session: AsyncSession, p: Principal, company_id: str) -> dict[str, Any]:
    c = await p.scope.get(session, Company, company_id)
    return company_out(c, await _contact_count(session, c))


async def list_companies(
    session: AsyncSession, p: Principal, *, search: str | None, industry: str | None,
    limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(Company)
    if search and search.strip():
        if len(search.strip()) > MAX_SEARCH:
            raise bad_request(f"search must be at most {MAX_SEARCH} characters", "search")
        pat = like_pattern(search.strip().lower())
        stmt = stmt.where(
            or_(
                Company.name_lower.like(pat, escape="\\"),
                func.lower(Company.website).like(pat, escape="\\"),
            )
        )
    if industry:
        stmt = stmt.where(func.lower(Company.industry) == industry.strip().lower())
    total = int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    count_col = p.scope.count(Contact).where(Contact.company_id == Company.id).scalar_subquery()
    rows = await session.execute(
        stmt.add_columns(count_col).order_by(Company.id.desc()).limit(limit).offset(offset)
    )
    return [company_out(c, n) for c, n in rows], total


async def update_company(
    session: AsyncSession, p: Principal, company_id: str, data: dict[str, Any], region: str
) -> dict[str, Any]:
    c = await p.scope.get(session, Company, company_id, for_update=True)
    if "name" in data:
        c.name = _require(data["name"], "name", 300)
        c.name_lower = c.name.lower()
    for key, value in _company_values(data, region).items():
        setattr(c, key, value)
    if "custom_fields" in data:
        c.custom_fields = _merge_custom(
            c.custom_fields,
            data["custom_fields"],
            await load_definitions(session, p.team_id, "company"),
        )
    c.updated_at = utcnow()
    await session.flush()
    return company_out(c, await _contact_count(session, c))


async def delete_company(
    session: AsyncSession, p: Principal, company_id: str, cascade: bool
) -> None:
    c = await p.scope.get(session, Company, company_id, for_update=True)
    used = await session.scalar(
        p.scope.count(Campaign).where(Campaign.company_id == c.id))
    if used:
        raise conflict(f"Company is used by {used} campaign(s); it cannot be deleted")
    n = await _contact_count(session, c)
    if n and not cascade:
        raise conflict(
            f"Company has {n} contacts; delete them first or pass cascade=true"
        )
    await session.execute(p.scope.delete(Contact).where(Contact.company_id == c.id))
    await session.delete(c)
    await session.flush()


def _merge_custom(
    current: dict[str, Any] | None, patch: dict[str, Any] | None, defs: Definitions
) -> dict[str, Any]:
    """PATCH semantics for customFields: keys merge; a key set to null is removed."""
    if patch is None:
        return {}
    merged = dict(current or {})
    removed = [k for k, v in patch.items() if v is None]
    checked = field("customFields", F.check_custom_fields,
                    {k: v for k, v in patch.items() if v is not None}, defs)
    merged.update(checked)
    for k in removed:
        merged.pop(k, None)
    return merged


# ---------------------------------------------------------------- contacts

CONTACT_TEXT = {
    "job_title": 300,
    "source": 200,
    "preferred_contact_method": 50,
    "notes": 20_000,
    "address_line1": 300,
    "city": 200,
    "state": 200,
    "postal_code": 40,
}
#: The consent record's columns: API key -> (column, max text length or None for a time).
CONSENT_FIELDS = {
    "kind": ("consent_kind", None),
    "source": ("consent_source", 200),
    "obtained_at": ("consent_at", None),
    "evidence": ("consent_evidence", 2000),
    "revoked_at": ("consent_revoked_at", None),
    "revocation_channel": ("consent_revocation_channel", 40),
}
CONSENT_COLUMNS = tuple(col for col, _ in CONSENT_FIELDS.values())


def consent_values(consent: dict[str, Any] | None) -> dict[str, Any]:
    """The consent columns for a ``consent`` object of a contact write: the keys it has are
    set (``null`` clears one); ``consent: null`` clears the whole record."""
    if consent is None:
        return dict.fromkeys(CONSENT_COLUMNS)
    out: dict[str, Any] = {}
    for key, (col, max_len) in CONSENT_FIELDS.items():
        if key not in consent:
            continue
        name = f"consent.{_camel(key)}"
        value = consent[key]
        if key == "kind":
            out[col] = field(name, F.normalize_consent_kind, value)
        elif max_len is None:
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise bad_request(f"{name} must be a date-time with a time zone", name)
            out[col] = value.astimezone(UTC) if value is not None else None
        else:
            out[col] = field(name, F.clean_text, value, max_len)
    return out


def contact_values(data: dict[str, Any], region: str) -> dict[str, Any]:
    """Normalised columns for the keys present in ``data`` (names, custom fields excepted)."""
    out: dict[str, Any] = {}
    for key, max_len in CONTACT_TEXT.items():
        if key in data:
            out[key] = field(_camel(key), F.clean_text, data[key], max_len)
    if "email" in data:
        out["email"] = field("email", F.normalize_email, data["email"])
    if "phone" in data:
        out["phone"] = field("phone", F.normalize_phone, data["phone"], region)
    if "phone_secondary" in data:
        out["phone_secondary"] = field(
            "phoneSecondary", F.normalize_phone, data["phone_secondary"], region
        )
    if "timezone" in data:
        out["timezone"] = field("timezone", F.normalize_timezone, data["timezone"])
    if "country" in data:
        out["country"] = field("country", F.normalize_country, data["country"])
    if "consent" in data:
        out.update(consent_values(data["consent"]))
    if "lead_status" in data:
        out["lead_status"] = field("leadStatus", F.normalize_lead_status, data["lead_status"])
    if "do_not_call" in data:
        if data["do_not_call"] is None:
            raise bad_request("doNotCall must be true or false", "doNotCall")
        out["do_not_call"] = bool(data["do_not_call"])
    if "tags" in data:
        out["tags"] = field("tags", F.normalize_tags, data["tags"])
    return out


def _company_id(company_id: str | None) -> str:
    """The ``companyId`` of a contact write, required and well-formed (else 400)."""
    if not company_id:
        raise bad_request("companyId is required", "companyId")
    if not ids.is_valid("comp", company_id):
        raise bad_request("companyId is not a valid company id", "companyId")
    return company_id


async def company_of_team(session: AsyncSession, p: Principal, company_id: str | None) -> str:
    """The ``companyId`` of a contact write: required, must exist and be the caller's."""
    company_id = _company_id(company_id)
    company = (await p.scope.get_many(session, Company, [company_id],
                                      forbidden_error="Forbidden: companyId belongs to "
                                                      "another team")).get(company_id)
    if company is None:
        raise ApiError(404, "Company not found", {"companyId": "Company not found"})
    return company_id


async def _flush_contact(session: AsyncSession, p: Principal, company_id: str) -> None:
    """Flush a contact write; a foreign-key failure because its company was deleted since
    ``company_of_team`` checked it is the 404 that check would give now."""
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        await company_of_team(session, p, company_id)
        raise


def refresh_search_columns(c: Contact) -> None:
    """The derived search columns of a contact changed in place (the ORM write paths)."""
    c.email_lower = c.email.lower() if c.email else None
    c.search_text = F.search_text(c.first_name, c.last_name, c.email, c.phone, c.phone_secondary)


# team id -> (custom_fields_version, contact definitions) as last read by this process.
_CONTACT_DEFS: dict[str, tuple[int, Definitions]] = {}
_CONTACT_DEFS_CAP = 10_000


async def _contact_definitions(db: Database, team_id: str, *, fresh: bool) -> tuple[int, Definitions]:
    """The team's contact custom field definitions and the version they are at least as new
    as: the version is read first, so a change committed between the two reads can only
    make the definitions newer than the version says (the insert's check then fails and they
    are read again), never older."""
    hit = None if fresh else _CONTACT_DEFS.get(team_id)
    if hit is None:
        async with db.session(write=False) as s:
            version = await s.scalar(
                select(Team.custom_fields_version).where(Team.id == team_id))
            hit = (int(version or 0), await load_definitions(s, team_id, "contact"))
        if len(_CONTACT_DEFS) >= _CONTACT_DEFS_CAP:
            _CONTACT_DEFS.clear()
        _CONTACT_DEFS[team_id] = hit
    return hit


async def _definitions_changed(session: AsyncSession, team_id: str) -> None:
    """Every change to a team's custom field definitions bumps its version (same
    transaction), which tells every process's remembered copy that it is stale."""
    await session.execute(
        update(Team).where(Team.id == team_id)
        .values(custom_fields_version=Team.custom_fields_version + 1))
    _CONTACT_DEFS.pop(team_id, None)


async def create_contact(
    db: Database, p: Principal, data: dict[str, Any], region: str,
    session: AsyncSession | None = None,
) -> dict[str, Any]:
    """One ``INSERT … SELECT`` on the driver connection (in ``session``'s transaction, or in
    autocommit without one): it inserts only if the company is the caller's and, when the
    request has custom fields, only if the definitions they were checked against are still
    current. Nothing inserted: find out which did not hold (404 / 403), or re-read the
    definitions and try again. docs/decisions/0013-contact-write-path.md"""
    first = _require(data.get("first_name"), "firstName", 200)
    last = _require(data.get("last_name"), "lastName", 200)
    values = contact_values(data, region)
    values["first_name"], values["last_name"] = first, last
    company_id = _company_id(data.get("company_id"))
    custom = data.get("custom_fields")
    for attempt in range(5):
        version = None
        if custom:
            version, defs = await _contact_definitions(db, p.team_id, fresh=attempt > 0)
            try:
                values["custom_fields"] = F.check_custom_fields(custom, defs)
            except ValueError as exc:
                if attempt == 0:
                    continue  # maybe refused by a stale copy: check again with fresh ones
                raise bad_request(f"customFields {exc}", "customFields") from None
        row = store.new_row(p.team_id, company_id, values, utcnow())
        async with db.driver_connection(session) as conn:
            if await store.rows_for(db.dialect, conn).insert_checked(row, version):
                return contact_out(SimpleNamespace(**row))
        async with db.session(write=False) as s:
            await company_of_team(s, p, company_id)  # raises 404 / 403
    raise conflict("The team's custom field definitions keep changing; retry the request")


async def get_contact(session: AsyncSession, p: Principal, contact_id: str) -> dict[str, Any]:
    """The contact with its campaign enrollments and its 20 most recent calls."""
    c = await p.scope.get(session, Contact, contact_id)
    out = contact_out(c)
    rows = await session.execute(
        p.scope.select(Enrollment, Campaign.name, Campaign.status)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Enrollment.contact_id == c.id)
        .order_by(Enrollment.id))
    out["campaigns"] = [
        {"campaign_id": e.campaign_id, "campaign_name": name, "campaign_status": status,
         "enrollment_id": e.id, "status": e.status, "attempts": e.attempts,
         "last_outcome": e.last_outcome, "next_attempt_at": iso(e.next_attempt_at)}
        for e, name, status in rows
    ]
    calls = await session.scalars(
        p.scope.select(Call).where(Call.contact_id == c.id)
        .order_by(Call.id.desc()).limit(20))
    out["calls"] = [call_out(x) for x in calls]
    return out


async def update_contact(
    session: AsyncSession, p: Principal, contact_id: str, data: dict[str, Any], region: str
) -> dict[str, Any]:
    c = await p.scope.get(session, Contact, contact_id, for_update=True)
    if "first_name" in data:
        c.first_name = _require(data["first_name"], "firstName", 200)
    if "last_name" in data:
        c.last_name = _require(data["last_name"], "lastName", 200)
    if "company_id" in data:
        c.company_id = await company_of_team(session, p, data["company_id"])
    values = contact_values(data, region)
    for key, value in values.items():
        setattr(c, key, value)
    if "custom_fields" in data:
        c.custom_fields = _merge_custom(
            c.custom_fields, data["custom_fields"],
            await load_definitions(session, p.team_id, "contact"),
        )
    refresh_search_columns(c)
    c.updated_at = utcnow()
    await _flush_contact(session, p, c.company_id)
    emit_contact_updated(session, c, c.updated_at, list(data))
    return contact_out(c)


async def delete_contact(session: AsyncSession, p: Principal, contact_id: str) -> list[str]:
    """Delete the contact; its calls' recordings go with it: they are unlinked here and
    the ids of the calls whose recording the caller must delete from the store (after the
    commit) are returned."""
    c = await p.scope.get(session, Contact, contact_id, for_update=True)
    running = await session.scalar(
        p.scope.select(Campaign.id).join(Enrollment, Enrollment.campaign_id == Campaign.id)
        .where(Enrollment.contact_id == c.id, Campaign.status == "running").limit(1))
    if running:
        raise conflict(f"Contact is enrolled in running campaign {running}; pause or cancel "
                       "it, or remove the contact later")
    recorded = list(await session.scalars(
        p.scope.select(Call.id).where(Call.contact_id == c.id, Call.recording_url.is_not(None))))
    if recorded:
        await session.execute(p.scope.update(Call).where(Call.id.in_(recorded))
                              .values(recording_url=None))
    await session.delete(c)
    await session.flush()
    return recorded


# PostgreSQL's search index: a narrow side table kept in step with contacts by triggers
# (migration 0012), so the trigram recheck of a large match set reads small, cached pages.
_CONTACT_SEARCH = table("contact_search", column("contact_id"), column("team_id"),
                        column("search_text"))


def _search_term(query: str) -> str:
    query = query.strip()
    if len(query) > MAX_SEARCH:
        raise bad_request(f"search must be at most {MAX_SEARCH} characters", "search")
    return F.phone_query_digits(query) or query.lower()


def _search_clause(session: AsyncSession, p: Principal, term: str) -> ColumnElement[bool]:
    """Substring match over names, email and phone digits, served by the trigram index:
    FTS5 on SQLite, ``contact_search`` on PostgreSQL."""
    if session.bind.dialect.name == "sqlite":
        if len(term) < 3:
            return Contact.search_text.like(like_pattern(term), escape="\\")
        phrase = '"' + term.replace('"', '""') + '"'
        return literal_column("contacts.rowid").in_(
            select(literal_column("rowid"))
            .select_from(text("contacts_fts"))
            .where(text("contacts_fts MATCH :fts_q").bindparams(fts_q=phrase))
        )
    return Contact.id.in_(_search_ids(p, term))


def _search_ids(p: Principal, term: str) -> Select[Any]:
    """PostgreSQL: the ids of the team's contacts whose search text contains ``term``."""
    cs = _CONTACT_SEARCH.c
    return select(cs.contact_id.label("id")).where(
        p.scope.owns(_CONTACT_SEARCH.c), cs.search_text.like(like_pattern(term), escape="\\"))


async def list_contacts(
    session: AsyncSession, p: Principal, *, company_id: str | None, search: str | None,
    lead_status: str | None, do_not_call: bool | None, has_phone: bool | None,
    tag: str | None, limit: int, offset: int, campaign_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(Contact)
    if campaign_id:
        if not ids.is_valid("camp", campaign_id):
            raise bad_request("campaignId is not a valid campaign id", "campaignId")
        stmt = stmt.where(Contact.id.in_(
            p.scope.select(Enrollment.contact_id).where(Enrollment.campaign_id == campaign_id)))
    if company_id:
        if not ids.is_valid("comp", company_id):
            raise bad_request("companyId is not a valid company id", "companyId")
        stmt = stmt.where(Contact.company_id == company_id)
    term = _search_term(search) if search and search.strip() else None
    if term is not None:
        stmt = stmt.where(_search_clause(session, p, term))
    if lead_status:
        stmt = stmt.where(
            Contact.lead_status == field("leadStatus", F.normalize_lead_status, lead_status)
        )
    if do_not_call is not None:
        stmt = stmt.where(Contact.do_not_call.is_(do_not_call))
    if has_phone is not None:
        stmt = stmt.where(Contact.phone.is_not(None) if has_phone else Contact.phone.is_(None))
    if tag:
        stmt = stmt.where(_has_tag(session, tag.strip()))
    if term is not None:
        if session.bind.dialect.name == "postgresql" and not (
                campaign_id or company_id or lead_status or tag or do_not_call is not None
                or has_phone is not None):
            # The search alone: match and count in the side table, never reading contacts
            # rows but the page's.
            matched = _search_ids(p, term).cte("matched")
        else:
            matched = stmt.with_only_columns(Contact.id).order_by(None).cte("matched")
        return await _search_page(session, p, matched, limit, offset)
    total = int(
        await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0
    )
    if offset:
        # Deep pages: skip rows in an index-only scan of ids, then fetch only the page's
        # rows (an OFFSET over full rows reads and discards every skipped row).
        page = (stmt.with_only_columns(Contact.id).order_by(Contact.id.desc())
                .limit(limit).offset(offset).subquery())
        rows = await session.scalars(
            select(Contact).join(page, Contact.id == page.c.id).order_by(Contact.id.desc()))
    else:
        rows = await session.scalars(stmt.order_by(Contact.id.desc()).limit(limit))
    return [contact_out(c) for c in rows], total


async def _search_page(session: AsyncSession, p: Principal, matched: Any, limit: int,
                       offset: int) -> tuple[list[dict[str, Any]], int]:
    """A search's page and count in one statement: the matching ids are found once (a
    materialized CTE: the trigram / FTS match and its recheck of each candidate row are the
    expensive part), then counted and paged from that list, and only the page's rows are
    read. Two statements would each redo the match."""
    page = select(matched.c.id).order_by(matched.c.id.desc()).limit(limit).offset(offset)
    total_col = select(func.count()).select_from(matched).scalar_subquery().label("total")
    result = await session.execute(
        p.scope.select(Contact, total_col)
        .where(Contact.id.in_(page.scalar_subquery()))
        .order_by(Contact.id.desc()))
    rows = result.all()
    if rows:
        return [contact_out(c) for c, _ in rows], int(rows[0][1])
    if not offset:
        return [], 0
    total = int(await session.scalar(select(func.count()).select_from(matched)) or 0)
    return [], total


def _has_tag(session: AsyncSession, tag: str) -> ColumnElement[bool]:
    if session.bind.dialect.name == "postgresql":
        return Contact.tags.op("@>")(func.jsonb_build_array(tag))  # type: ignore[no-any-return]
    return text("EXISTS (SELECT 1 FROM json_each(contacts.tags) WHERE json_each.value = :tag)"
                ).bindparams(tag=tag)  # type: ignore[return-value]


# ---------------------------------------------------------------- custom field definitions


def _definition_values(data: dict[str, Any], current: CustomFieldDefinition | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if current is None or "type" in data:
        ftype = (data.get("type") or "").strip().lower()
        if ftype not in F.FIELD_TYPES:
            raise bad_request("type must be one of " + ", ".join(F.FIELD_TYPES), "type")
        out["type"] = ftype
    ftype = out.get("type", current.type if current else "text")
    if "options" in data or "type" in out:
        options = data.get("options", current.options if current else None)
        if ftype == "select":
            cleaned = [F.clean_text(o, 200) for o in (options or []) if isinstance(o, str)]
            opts = [o for o in cleaned if o]
            if not opts:
                raise bad_request("options must list the choices of a select field", "options")
            out["options"] = list(dict.fromkeys(opts))
        else:
            out["options"] = None
    if current is None or "name" in data:
        out["name"] = _require(data.get("name"), "name", 200)
    if "description" in data:
        out["description"] = field("description", F.clean_text, data["description"], 2000)
    if "required" in data and data["required"] is not None:
        out["required"] = bool(data["required"])
    return out


async def create_custom_field(
    session: AsyncSession, p: Principal, data: dict[str, Any]
) -> dict[str, Any]:
    key = (data.get("key") or "").strip()
    if not key:
        raise bad_request("key is required", "key")
    field("key", F.check_custom_key, key)
    entity = (data.get("entity_type") or "contact").strip().lower()
    if entity not in F.ENTITY_TYPES:
        raise bad_request("entityType must be contact or company", "entityType")
    values = _definition_values(data, None)
    exists = await session.scalar(
        p.scope.select(CustomFieldDefinition.id).where(
            CustomFieldDefinition.entity_type == entity,
            CustomFieldDefinition.key == key,
        )
    )
    if exists:
        raise conflict(f"A {entity} custom field with key {key!r} already exists")
    d = CustomFieldDefinition(
        id=ids.new_id("cf"), team_id=p.team_id, key=key, entity_type=entity, **values
    )
    session.add(d)
    await session.flush()
    await _definitions_changed(session, p.team_id)
    return custom_field_out(d)


async def get_custom_field(session: AsyncSession, p: Principal, cf_id: str) -> dict[str, Any]:
    d = await p.scope.get(session, CustomFieldDefinition, cf_id)
    return custom_field_out(d)


async def list_custom_fields(
    session: AsyncSession, p: Principal, entity_type: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(CustomFieldDefinition)
    if entity_type:
        if entity_type not in F.ENTITY_TYPES:
            raise bad_request("entityType must be contact or company", "entityType")
        stmt = stmt.where(CustomFieldDefinition.entity_type == entity_type)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(
        stmt.order_by(CustomFieldDefinition.id).limit(limit).offset(offset)
    )
    return [custom_field_out(d) for d in rows], total


async def update_custom_field(
    session: AsyncSession, p: Principal, cf_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    d = await p.scope.get(session, CustomFieldDefinition, cf_id, for_update=True)
    if "key" in data and data["key"] is not None and data["key"] != d.key:
        raise bad_request("key cannot change; create a new field instead", "key")
    for k, v in _definition_values(data, d).items():
        setattr(d, k, v)
    d.updated_at = utcnow()
    await session.flush()
    await _definitions_changed(session, p.team_id)
    return custom_field_out(d)


async def delete_custom_field(session: AsyncSession, p: Principal, cf_id: str) -> None:
    """Removes the definition only; values already stored on records are kept as free-form."""
    d = await p.scope.get(session, CustomFieldDefinition, cf_id, for_update=True)
    await session.delete(d)
    await session.flush()
    await _definitions_changed(session, p.team_id)

