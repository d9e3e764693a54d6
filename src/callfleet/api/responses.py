from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSON(JSONResponse):
    """orjson-encoded JSON; every route returns one of these (envelopes are plain dicts)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
