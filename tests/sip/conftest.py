"""Run the SIP tests under uvloop, as production does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import uvloop

_HERE = Path(__file__).parent


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], object]] | None:
    if _HERE in Path(str(item.path)).parents:
        return {"uvloop": uvloop.new_event_loop}
    return None
