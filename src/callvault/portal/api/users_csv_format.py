"""The users CSV: its columns, reading it line by line, and writing it (issue 15 part 3).

One user per line, under a header line that names the columns (any order,
case-insensitive; ``e-mail``, ``team`` and ``recording mode`` are read as
``email``, ``teams`` and ``recording_mode``)::

    name,extension,numbers,aors,email,role,teams,recording_mode
    Anna de Vries,101,+31201110001; +31201110002,anna@alpha.example,anna@alpha.nl,user,Sales,always

* ``name`` and ``extension`` are required; users are matched by extension.
  The other columns may be left out of the header: for an existing user an
  absent column keeps what is stored, for a new user it takes the default
  (no numbers, AORs, e-mail or teams; role ``user``; not on the recording list).
* Multi-valued cells (``numbers``, ``aors`` — the user's devices — and
  ``teams``) separate their values with ``;``. Not with spaces: a number may be
  written ``+31 20 111 0001`` and a team name may hold spaces.
* ``role``: ``admin``, ``listener`` or ``user`` (empty: ``user``).
* ``recording_mode``: one of the modes of Settings › Recording (SPEC section 3:
  ``never``, ``always``, ``always_pause``, ``on_demand_keep``,
  ``on_demand_user``, ``playback``), which puts the user on the recording
  list in that mode; empty: not on the recording list.
* Fields are separated by ``,`` (RFC 4180 quoting). A file whose header line
  holds ``;`` but no ``,`` (a spreadsheet's export in a Dutch or German
  locale) is read with ``;`` between fields.
* UTF-8, with or without a byte-order mark; empty lines are skipped.
* Free-text cells that a spreadsheet would run as a formula (starting with
  ``=``, ``+``, ``-``, ``@``) are written with a leading ``'``, which reading
  drops again, so a file round-trips.

This module only reads and writes the text; whether a line fits the tenant
(its domains and numbers, extensions in use) is checked by ``users_csv``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, get_args

from callvault.portal.api.recording_settings import ModeName
from callvault.tenants.numbers import normalise_aor, normalise_number

COLUMNS: Final[tuple[str, ...]] = (
    "name",
    "extension",
    "numbers",
    "aors",
    "email",
    "role",
    "teams",
    "recording_mode",
)
REQUIRED: Final[frozenset[str]] = frozenset({"name", "extension"})
_ALIASES: Final[dict[str, str]] = {
    "e_mail": "email",
    "mail": "email",
    "team": "teams",
    "recording": "recording_mode",
    "mode": "recording_mode",
    "number": "numbers",
    "aor": "aors",
    "devices": "aors",
}
ROLES: Final[tuple[str, ...]] = ("admin", "listener", "user")
MODES: Final[tuple[str, ...]] = get_args(ModeName)
SEPARATOR: Final[str] = ";"

# input limits (each with its own message)
MAX_BYTES: Final[int] = 2 * 1024 * 1024
MAX_USERS: Final[int] = 5000
MAX_CELL_CHARS: Final[int] = 2000
MAX_VALUES: Final[int] = 50  # numbers / AORs per user, as in the users API
MAX_NAME: Final[int] = 200
MAX_EMAIL: Final[int] = 320

_EXTENSION = re.compile(r"[0-9*#]{1,16}")
_EMAIL = re.compile(r"[^@\s<>\"(),;:]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMULA_START: Final[str] = "=+-@"


@dataclass(frozen=True)
class LineError:
    """Why one line of the file cannot be imported (line 1 is the header)."""

    line: int
    reason: str


@dataclass(frozen=True)
class UserLine:
    """One valid line; ``None`` for a column the file does not have (keep / default)."""

    line: int
    name: str
    extension: str
    numbers: tuple[str, ...] | None
    aors: tuple[str, ...] | None
    email: str | None  # "" clears
    role: str | None
    teams: tuple[str, ...] | None
    mode: str | None  # "" = not on the recording list


class CsvTooLarge(ValueError):
    """The file is larger than ``MAX_BYTES``."""


def _column(raw: str) -> str:
    key = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    return _ALIASES.get(key, key)


def _unescape(cell: str) -> str:
    """Drop the ``'`` written before a formula-like cell (see the module doc)."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


def _escape(cell: str) -> str:
    return "'" + cell if cell and cell[0] in _FORMULA_START else cell


def _values(cell: str) -> list[str]:
    return [v.strip() for v in cell.split(SEPARATOR) if v.strip()]


def _text(cell: str, what: str, limit: int) -> str:
    text = " ".join(_unescape(cell.strip()).split())
    if _CONTROL.search(cell.strip(" \t")):
        raise ValueError(f"{what}: holds a line break or control character")
    if len(text) > limit:
        raise ValueError(f"{what}: longer than {limit} characters")
    return text


def _numbers(cell: str) -> tuple[str, ...]:
    out = []
    for raw in _values(cell):
        try:
            out.append(normalise_number(raw))
        except ValueError as exc:
            raise ValueError(
                f"numbers: {exc}; separate several numbers with {SEPARATOR!r}"
            ) from exc
    return _unique(out, "numbers")


def _aors(cell: str) -> tuple[str, ...]:
    out = []
    for raw in _values(cell):
        if any(c.isspace() for c in raw):
            raise ValueError(f"aors: {raw!r} holds a space; separate AORs with {SEPARATOR!r}")
        try:
            out.append(normalise_aor(raw))
        except ValueError as exc:
            raise ValueError(f"aors: {exc}") from exc
    return _unique(out, "aors")


def _unique(values: list[str], what: str) -> tuple[str, ...]:
    if len(values) > MAX_VALUES:
        raise ValueError(f"{what}: more than {MAX_VALUES} values")
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what}: {value} is given twice")
        seen.add(value)
    return tuple(values)


def _teams(cell: str) -> tuple[str, ...]:
    names = [_text(v, "teams", MAX_NAME) for v in _values(_unescape(cell.strip()))]
    return _unique([n for n in names if n], "teams")


def _line(number: int, cells: dict[str, str]) -> UserLine:
    """One data line's cells (by column) -> ``UserLine``; ValueError says why not."""
    for column, cell in cells.items():
        if len(cell) > MAX_CELL_CHARS:
            raise ValueError(f"{column}: longer than {MAX_CELL_CHARS} characters")
    name = _text(cells["name"], "name", MAX_NAME)
    if not name:
        raise ValueError("name: required")
    extension = cells["extension"].strip()
    if not extension:
        raise ValueError("extension: required (users are matched by extension)")
    if not _EXTENSION.fullmatch(extension):
        raise ValueError(f"extension: {extension!r} is not 1 to 16 of the keys 0-9, * and #")
    email: str | None = None
    if "email" in cells:
        email = _text(cells["email"], "email", MAX_EMAIL)
        if email and not _EMAIL.fullmatch(email):
            raise ValueError(f"email: {email!r} is not an e-mail address")
    role: str | None = None
    if "role" in cells:
        role = cells["role"].strip().lower() or "user"
        if role not in ROLES:
            raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    mode: str | None = None
    if "recording_mode" in cells:
        mode = cells["recording_mode"].strip().lower()
        if mode and mode not in MODES:
            raise ValueError(
                f"recording_mode: {mode!r} is not one of {', '.join(MODES)} "
                "(empty: not on the recording list)"
            )
    return UserLine(
        line=number,
        name=name,
        extension=extension,
        numbers=_numbers(cells["numbers"]) if "numbers" in cells else None,
        aors=_aors(cells["aors"]) if "aors" in cells else None,
        email=email,
        role=role,
        teams=_teams(cells["teams"]) if "teams" in cells else None,
        mode=mode,
    )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"line {line}: the file is not UTF-8 text") from exc


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    return ";" if ";" in header and "," not in header else ","


def read_users_csv(data: bytes) -> tuple[list[UserLine], list[LineError]]:
    """Every valid line and every invalid one (with its line number and reason).

    Raises ``CsvTooLarge`` over ``MAX_BYTES``. A bad header or an unreadable
    file is one error on its line, and nothing else is read.
    """
    if len(data) > MAX_BYTES:
        raise CsvTooLarge(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = _decode(data)
    except ValueError as exc:
        line = int(str(exc).split(":", 1)[0].removeprefix("line "))
        return [], [LineError(line, str(exc).split(": ", 1)[1])]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    lines: list[UserLine] = []
    errors: list[LineError] = []
    header: list[str] | None = None
    users = 0
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [_column(c) for c in row]
                problem = _header_problem(header)
                if problem:
                    return [], [LineError(number, problem)]
                continue
            users += 1
            if users > MAX_USERS:
                errors.append(
                    LineError(number, f"more than {MAX_USERS} users in one file; split it")
                )
                break
            if len(row) != len(header):
                errors.append(
                    LineError(number, f"{len(row)} cells where the header has {len(header)}")
                )
                continue
            try:
                lines.append(_line(number, dict(zip(header, row, strict=True))))
            except ValueError as exc:
                errors.append(LineError(number, str(exc)))
    except csv.Error as exc:
        errors.append(LineError(reader.line_num, f"not readable as CSV: {exc}"))
    if header is None:
        errors.append(LineError(1, f"the file is empty; the header line is {','.join(COLUMNS)}"))
    return lines, errors


def _header_problem(header: Sequence[str]) -> str | None:
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        return f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}"
    repeated = {c for c in header if header.count(c) > 1}
    if repeated:
        return f"the column {sorted(repeated)[0]!r} is given twice"
    missing = sorted(REQUIRED - set(header))
    if missing:
        return f"the header line lacks the column {missing[0]!r}"
    return None


@dataclass(frozen=True)
class UserRecord:
    """What the export writes for one user."""

    name: str
    extension: str
    numbers: Sequence[str]
    aors: Sequence[str]
    email: str | None
    role: str
    teams: Sequence[str]
    mode: str | None  # None: not on the recording list


def write_users_csv(users: Iterable[UserRecord]) -> str:
    """The file ``read_users_csv`` reads back to the same users (every column)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    joiner = f"{SEPARATOR} "
    for user in users:
        writer.writerow(
            (
                _escape(user.name),
                user.extension,
                joiner.join(user.numbers),
                joiner.join(user.aors),
                _escape(user.email or ""),
                user.role,
                joiner.join(_escape(t) for t in user.teams),
                user.mode or "",
            )
        )
    return out.getvalue()
