"""Process logging: quiet at INFO, plain text or one JSON object per line (SPEC section 9).

``configure_logging`` is called once by the CLI (again by ``serve`` once the
settings are read). At INFO an operator sees callvault's own lines; the
libraries that talk a lot at INFO (Alembic's migration steps, uvicorn's
start-up) are held at WARNING unless the level is DEBUG. ``log_format =
"json"`` writes ``{"time", "level", "logger", "message"}`` (and
``"exception"`` with a traceback) per line, for log collectors.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

# loggers that narrate their normal work at INFO; an operator wants none of it
CHATTY = ("alembic", "uvicorn", "uvicorn.error", "multipart")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Set the root logger up: one handler on ``stream`` (stderr) in ``fmt``, at ``level``.

    Called again (``serve`` after reading its settings), it replaces its own
    handler. Like ``logging.basicConfig`` it leaves a root logger that someone
    else set up (an embedding program, pytest) alone, apart from the chatty ones.
    """
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "callvault", False)]:
        root.removeHandler(old)
    if root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.callvault = True  # type: ignore[attr-defined]  # ours, to replace later
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
