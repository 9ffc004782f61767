"""The versioned schema files in ``timecoin/storage/schema`` and their statements.

Schemas are numbered SQL files (``NNN_*.sql``); a ``-- include: NAME`` line
stands for the file ``NAME`` there, as version 1 includes the peer network's
``peer_tables.sql``.
"""

import sqlite3
from importlib import resources

_INCLUDE = "-- include: "


def _with_includes(sql, directory):
    """``sql`` with each ``-- include: NAME`` line replaced by the file ``NAME``."""
    return "".join(
        directory.joinpath(line[len(_INCLUDE):].strip()).read_text()
        if line.startswith(_INCLUDE) else line
        for line in sql.splitlines(keepends=True))


def schema_files():
    """``(version, sql)`` for each numbered schema file, in order, includes expanded."""
    directory = resources.files("timecoin.storage").joinpath("schema")
    files = []
    for item in directory.iterdir():
        name = item.name
        if name.endswith(".sql") and name[:3].isdigit():
            files.append((int(name[:3]), _with_includes(item.read_text(), directory)))
    return sorted(files)


def statements(sql):
    """The SQL statements of a script, one by one (to run them inside a
    transaction: ``executescript`` commits first)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    rest = [line for line in buffer.splitlines() if line.strip() and not
            line.strip().startswith("--")]
    if rest:
        raise ValueError(f"schema file ends inside a statement: {rest[0]!r}")
