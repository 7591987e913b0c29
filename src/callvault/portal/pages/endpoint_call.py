"""Calling a JSON API endpoint function from a page, with query-string arguments.

A page that lists calls must filter exactly as the API does; rather than copy
the API's filter parameters, the page hands the query string to the
endpoint function itself. Each parameter is read under its query alias (for
example ``from``) and validated by the parameter's own annotation, as FastAPI
would; the principal, tenant and database session are passed in explicitly.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, get_args, get_origin

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from callvault.errors import InvalidInput


def _alias(name: str, hint: Any, default: Any) -> str:
    candidates: list[Any] = [default]
    if get_origin(hint) is typing.Annotated:
        candidates.extend(get_args(hint)[1:])
    for item in candidates:
        if isinstance(item, FieldInfo) and item.alias:
            return item.alias
    return name


def _default(param: inspect.Parameter) -> Any:
    default = param.default
    if isinstance(default, FieldInfo):
        return None if default.is_required() else default.get_default(call_default_factory=True)
    return None if default is inspect.Parameter.empty else default


def call_with_query(
    endpoint: Callable[..., Any], explicit: Mapping[str, Any], query: Mapping[str, str]
) -> Any:
    """``endpoint(**explicit, **<query arguments it understands>)``; 400 on a bad value."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    arguments: dict[str, Any] = dict(explicit)
    for name, param in inspect.signature(endpoint).parameters.items():
        if name in explicit:
            continue
        alias = _alias(name, hints.get(name), param.default)
        raw = query.get(alias)
        if raw is None or raw == "":
            arguments[name] = _default(param)
            continue
        try:
            arguments[name] = TypeAdapter(hints[name]).validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(f"{alias}: {first.get('msg')}", error_id="invalid-input") from exc
    return endpoint(**arguments)
