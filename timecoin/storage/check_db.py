"""``twistd timecoin --check-db``: every check of a node database, as a report.

Nothing is written: the database is only read (closing it may fold a WAL
back into the file, as any SQLite reader may). Each check is one line of the
report; the daemon exits 0 if all pass, 1 otherwise.
"""

import os
import sqlite3
from dataclasses import dataclass

from timecoin.storage import integrity


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: the check's name and its problem (None: it passed)."""

    name: str
    problem: str | None
    detail: str = ""

    def line(self):
        if self.problem is None:
            return f"ok    {self.name}" + (f": {self.detail}" if self.detail else "")
        return f"FAIL  {self.name}: {self.problem}"


def check_database(path, genesis_hash):
    """The :class:`CheckResult` of every check of the database at ``path``;
    a check that cannot run because an earlier one failed is not listed."""
    if not os.path.isfile(path):
        return [CheckResult("database file", f"{path} does not exist or is not a file")]
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        return [CheckResult("database file", str(e))]
    try:
        return list(_checks(conn, genesis_hash))
    finally:
        conn.close()


def _checks(conn, genesis_hash):
    def run(name, fn, detail=lambda _: ""):
        try:
            result = fn()
        except (integrity.DamageFound, sqlite3.Error) as e:
            return CheckResult(name, str(e).replace("\n", " "))
        return CheckResult(name, None, detail(result))

    first = run("integrity_check (pages, records, indexes)", lambda: integrity.integrity_check(
        conn, limit=20))
    yield first
    meta = run("meta facts", lambda: integrity.read_meta(conn))
    yield meta
    if meta.problem is not None:
        return
    stored = integrity.read_meta(conn)
    if stored["genesis_hash"] != genesis_hash:
        yield CheckResult("genesis", "the database belongs to another network or genesis")
        return
    yield CheckResult("genesis", None)
    yield run("utxos rows vs the stored set hash, count and total",
              lambda: integrity.check_utxo_set(conn),
              lambda r: f"{r[1]} outputs, {r[2]} units, set hash {r[0][:16]}…")
    # A database installed from a snapshot holds no journal below it: its
    # records are checked, the tables are not its fold (the snapshot's set is,
    # checked against the certified header when it was installed).
    from_snapshot = conn.execute(
        "SELECT 1 FROM meta WHERE key = 'snapshot_base'").fetchone() is not None
    yield run("journal records" if from_snapshot else
              "journal records and journal vs the UTXO tables",
              lambda: integrity.check_journal(conn, fold=not from_snapshot),
              lambda n: f"{n} records, {n - stored['applied_seq']} not yet in the tables")
