"""The versioned schema files in ``timecoin/storage/schema`` and their statements.

Schemas are numbered SQL files (``NNN_*.sql``); a ``-- include: NAME`` line
stands for the file ``NAME`` there, as version 1 includes the peer network's
``peer_tables.sql``.

Before a database is migrated it is backed up (SQLite's backup API) into the
``backups`` directory beside it, so a failed or regretted upgrade can be undone
by putting the copy back; the online ``backup`` RPC writes the same kind of copy.
"""

import contextlib
import os
import sqlite3
import time
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


#: Where backups go by default: this directory beside the database.
BACKUP_DIRECTORY = "backups"


def backup_database(conn, destination):
    """Copy the database of ``conn`` to the new file ``destination`` with
    SQLite's online backup API (a consistent snapshot, taken on the thread
    that owns ``conn``); mode 0600, written under a temporary name and renamed
    into place. Returns the size of the copy in bytes."""
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.exists(destination):
        raise FileExistsError(f"{destination} already exists")
    tmp = destination + ".partial"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        target = sqlite3.connect(tmp)
        try:
            conn.backup(target)
        finally:
            target.close()
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return os.path.getsize(destination)


def backup_name(db_path, label, now=None):
    """``<database name>-<label>-<UTC time>.sqlite3`` in the backups directory
    beside ``db_path``."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    base = os.path.splitext(os.path.basename(db_path))[0]
    return os.path.join(os.path.dirname(os.path.abspath(db_path)), BACKUP_DIRECTORY,
                        f"{base}-{label}-{stamp}.sqlite3")


def backup_before_migrating(conn, db_path, version, latest, now=None):
    """Back the database up before migrating it from schema ``version`` to
    ``latest`` (as magic-wormhole's mailbox server does): the copy is left at
    :func:`backup_name` with label ``schema-v<version>`` and its path returned;
    None when there is nothing to migrate."""
    if version >= latest:
        return None
    destination = backup_name(db_path, f"schema-v{version}", now)
    backup_database(conn, destination)
    return destination
