"""The portal's shape (issue 8 section 6): each rule decided in one place.

- role checks are dependencies in ``portal/roles.py``; no route calls ``require_role``;
- tenants and users are built only by ``tenants/service.py`` (API, users CSV,
  CLI, demo);
- pages call services, never route functions with their parameter names
  (``pages/endpoint_call.py`` is gone); the report page reads its query string
  with the API's own parser.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

import callvault
from callvault.db.models import Tenant
from callvault.errors import ErrorId, InvalidInput
from callvault.portal.reports.query import ReportParams, parse_report_query

SRC = Path(callvault.__file__).parent


def _calls(name: str) -> list[str]:
    """``file:line`` of every call of ``name(...)`` (plain or attribute) in src."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called == name:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_role_checks_are_decided_in_roles_py_only() -> None:
    assert all(place.startswith("portal/roles.py:") for place in _calls("require_role"))


@pytest.mark.parametrize("model", ["Tenant", "User"])
def test_tenants_and_users_are_created_by_the_one_service(model: str) -> None:
    assert all(place.startswith("tenants/service.py:") for place in _calls(model)), _calls(model)


def test_pages_call_services_not_route_functions() -> None:
    assert not (SRC / "portal/pages/endpoint_call.py").exists()
    for path in sorted((SRC / "portal/pages").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "call_with_query" not in text, path.name
        assert "api.calls" not in text, path.name


def test_the_page_reads_the_report_query_as_the_api_does() -> None:
    tenant = Tenant(name="T", country_code="31")
    query = parse_report_query(
        tenant, {"from": "2026-11-01T00:00:00+01:00", "number": "020 111 2233", "label": ""}
    )
    assert query.filters.since == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert query.filters.number == "+31201112233" and query.filters.label is None
    with pytest.raises(InvalidInput) as bad:
        parse_report_query(tenant, {"direction": "sideways"})
    assert bad.value.error_id == ErrorId.INVALID_INPUT and str(bad.value).startswith("direction:")
    with pytest.raises(InvalidInput) as early:
        parse_report_query(tenant, {"from": "2026-11-02T00:00:00", "to": "2026-11-01T00:00:00"})
    assert str(early.value) == "from: must be before to"
    # the names on the wire are the API's (its OpenAPI lists the same)
    wire = {field.alias or name for name, field in ReportParams.model_fields.items()}
    assert wire == {"cursor", "from", "to", "user_id", "number", "direction", "label", "recorded"}
