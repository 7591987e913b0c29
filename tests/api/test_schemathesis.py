"""Property-based API fuzzing from /openapi.json (schemathesis, in-process ASGI).

Every operation gets a bounded number of generated requests with the
operator's token; none may answer with a server error.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import World
from tests.peers import require_module

MAX_EXAMPLES = 25


def test_no_operation_answers_with_a_server_error(world: World) -> None:
    schemathesis = require_module("schemathesis", "property-based API fuzzing")
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    headers = world.auth("operator")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = operation.as_strategy()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, data=st.data())
        def run(case: Any, data: st.DataObject) -> None:
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}"
                )

        run()
    assert operations >= 40
    assert not failures, "\n".join(failures[:20])
