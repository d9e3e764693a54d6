"""Reading forms and query strings, and showing the API's errors beside the fields.

Form fields carry the API's request names (``firstName``, ``leadStatus``), so an error the
service raises for a field (its ``details``) lands beside that field unchanged.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, QueryParams

from callfleet.api.errors import validation_details
from callfleet.errors import ApiError

M = TypeVar("M", bound=BaseModel)
MAX_QUERY_VALUE = 500
_CUSTOM_KEY = re.compile(r"^customFields ([A-Za-z0-9_]+) ")


def text_values(form: FormData | QueryParams, names: tuple[str, ...] | None = None,
                ) -> dict[str, str]:
    """The form's text fields (files ignored), each cut to a sane length."""
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and (names is None or key in names) and key not in out:
            out[key] = value[:100_000]
    return out


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower().replace("address_line_", "address_line")


def field_errors(exc: ApiError) -> dict[str, str]:
    """The error messages by form field; ``_form`` holds one for the whole form."""
    errors: dict[str, str] = {}
    for name, message in (exc.details or {}).items():
        key = name.removeprefix("settings.")
        m = _CUSTOM_KEY.match(message) if name == "customFields" else None
        if m:
            key = f"custom.{m[1]}"
            message = message[len(m[0]):]
        errors[key] = _sentence(key, message)
    if not errors:
        errors["_form"] = exc.error
    return errors


def _sentence(field: str, message: str) -> str:
    """The API writes "firstName is required"; beside the field "Is required" reads better."""
    bare = field.removeprefix("custom.")
    for prefix in (field + " ", bare + " ", "customFields "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    return message[:1].upper() + message[1:]


def int_param(raw: str | None, default: int, *, minimum: int = 0, maximum: int = 10**9) -> int:
    """A paging number from the query string; nonsense falls back to the default (a page
    address typed by hand never errors)."""
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        return default
    return min(max(value, minimum), maximum)


def query_text(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = value.replace("\x00", "").strip()[:MAX_QUERY_VALUE]
    return value or None


def checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1", "yes")


def custom_form_values(custom: dict[str, Any] | None) -> dict[str, Any]:
    """``custom.KEY`` form values of a record's custom fields (scalars only: a nested value
    set through the API is shown, not edited)."""
    out: dict[str, Any] = {}
    for key, value in (custom or {}).items():
        if isinstance(value, bool):
            out[f"custom.{key}"] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[f"custom.{key}"] = value
    return out


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values (a create form's blank fields are simply not given)."""
    return {k: v for k, v in data.items() if v not in (None, "", [], {})}


def parse_body(model: type[M], data: dict[str, Any]) -> M:
    """Validate form values with the API's own request model (camelCase names): the same
    types, ranges and limits as the API; a bad value is a 400 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(list(exc.errors()))
        raise ApiError(400, "Some values are not valid", details) from None


def form_lists(form: FormData, *names: str) -> dict[str, list[str]]:
    """Fields sent several times (checkbox groups), as lists."""
    return {n: [v for v in form.getlist(n) if isinstance(v, str)][:1000] for n in names}


def non_blank(values: dict[str, str]) -> dict[str, str]:
    return {k: v.strip() for k, v in values.items() if v.strip()}


@cache
def time_zones() -> list[str]:
    """IANA zone names for a time zone field's suggestions."""
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z and "Etc/" not in z)
