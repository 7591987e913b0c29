"""Reading a page's query string with the model its API route reads.

A list's query parameters are one pydantic model (``reports.query.ReportParams``,
``api.audit_log.AuditParams``): the API route declares it with FastAPI's
``Query()``, the page hands its query string to ``parse_query``. So a page
filters exactly as the API does, and a bad value is the same 422, naming the
parameter by its name on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from callvault.errors import ErrorId, InvalidInput

M = TypeVar("M", bound=BaseModel)


def wire_names(model: type[BaseModel]) -> frozenset[str]:
    """The query string's names of ``model``'s fields (the alias where there is one)."""
    return frozenset((field.alias or name) for name, field in model.model_fields.items())


def parse_query(model: type[M], query: Mapping[str, str]) -> M:
    """``model`` from the parameters it names; empty values count as absent (an HTML
    form sends every field). 422 ``invalid-input`` naming the first bad one."""
    names = wire_names(model)
    given = {key: value for key, value in query.items() if key in names and value != ""}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise InvalidInput(f"{where}: {first.get('msg')}", error_id=ErrorId.INVALID_INPUT) from exc
