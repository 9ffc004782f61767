"""SQLite storage on one dedicated writer thread.

Every statement runs on a single thread (a ``ThreadPool`` of one, reached with
``deferToThreadPool``), so writes are serialised without locks and reads see
them in order; the reactor thread never touches the database. The database is
in WAL mode with ``synchronous=FULL``: a committed journal entry survives a
crash of the process or of the machine.

Two kinds of write:

* the **finality journal** (:meth:`Storage.append_journal`): one row per
  finalized transaction with its undo data, committed in group commits; a
  transaction is reported finalized only after its row is committed;
* the **UTXO tables** (:meth:`Storage.apply_journal`): journal entries folded
  into ``utxos`` and the set's MuHash/count/total in one atomic batch every
  ``flush_interval_ms``, and at start-up for whatever a crash left unapplied.

Schemas are versioned SQL files in ``timecoin/storage/schema`` (``NNN_*.sql``;
a ``-- include: NAME`` line stands for the file ``NAME`` there, as version 1
includes the peer network's ``peer_tables.sql``). A database that is
damaged, of a newer schema, or of another network stops start-up with a clear
error and is never modified.
"""

import os
import sqlite3
import struct
from dataclasses import dataclass
from importlib import resources

import sqlite_utils
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from timecoin.interfaces import IStorage
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.tx import OutPoint, ledger_changes
from timecoin.ledger.utxo import utxo_element

_UNDO = struct.Struct("<Q20s")
_QUERY_CHUNK = 400


class StorageError(Exception):
    """The database cannot be used; the message says why and what to do."""


@dataclass
class ChainMeta:
    """What start-up reads back: the chain's identity and the UTXO set's summary."""

    genesis_hash: bytes
    applied_seq: int
    last_seq: int
    muhash: MuHash
    count: int
    total_amount: int
    replayed: int = 0


@dataclass(frozen=True)
class JournalRecord:
    """A finalized transaction as the journal stores it."""

    seq: int
    txid: bytes
    raw: bytes
    spent: bytes
    finalized_at: float
    finality_ms: float | None
    block_height: int | None = None


def encode_undo(entries):
    return b"".join(_UNDO.pack(e.amount, e.key_hash) for e in entries)


def _fold_muhash(muhash, changes):
    """``muhash`` with the spends and new outputs of journal ``changes`` folded in."""
    for txid, prevouts, undo, outputs in changes:
        for (prev_txid, vout), (amount, key_hash) in zip(prevouts, undo, strict=True):
            muhash.remove(utxo_element(OutPoint(prev_txid, vout), amount, key_hash))
        for vout, (amount, key_hash) in enumerate(outputs):
            muhash.add(utxo_element(OutPoint(txid, vout), amount, key_hash))
    return muhash


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


@implementer(IStorage)
class Storage:
    """The node's database (see the module docstring)."""

    log = Logger()

    def __init__(self, reactor, path):
        self._reactor = reactor
        self.path = path
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="timecoin-db")
        self._conn = None
        self._running = False
        #: What opening the database did, for the node to log at start.
        self.notes = []

    # -- thread plumbing -----------------------------------------------------

    def start(self):
        if not self._running:
            self._pool.start()
            self._running = True

    def _run(self, fn, *args):
        self.start()
        return deferToThreadPool(self._reactor, self._pool, fn, *args)

    def run_db(self, fn):
        """Run ``fn(connection)`` on the writer thread."""
        return self._run(lambda: fn(self._conn))

    def close(self):
        if not self._running:
            return self._close_now()

        def stopped(result):
            self._pool.stop()
            self._running = False
            return result

        return self._run(self._close_now).addBoth(stopped)

    def close_now(self):
        """Stop the writer thread and close, from the calling thread (before the
        reactor runs, when start-up is abandoned)."""
        if self._running:
            self._pool.stop()
            self._running = False
        self._close_now()

    def _close_now(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- opening -------------------------------------------------------------

    def open(self, genesis):
        return self._run(self.open_now, genesis)

    def open_now(self, genesis):
        """Open the database on the calling thread (before the reactor runs, or
        on the writer thread through :meth:`open`)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StorageError(f"data directory {directory} does not exist")
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise StorageError(f"data directory {directory} is not readable and writable")
        fresh = not os.path.exists(self.path)
        if not fresh and not os.path.isfile(self.path):
            raise StorageError(f"database path {self.path} exists but is not a file")
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn = conn
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            db = sqlite_utils.Database(conn)
            if db.journal_mode != "wal":
                db.enable_wal()
            conn.execute("PRAGMA synchronous=FULL")
            version = self._migrate(db, fresh)
            if version == 1 and fresh:
                self._write_genesis(genesis)
            meta = self._read_meta()
        except sqlite3.DatabaseError as e:
            self._close_now()
            raise StorageError(
                f"database {self.path} is damaged or not a timecoin database ({e}); "
                "it was left untouched: restore it from a backup or move it aside"
            ) from None
        if meta.genesis_hash != genesis.hash:
            self._close_now()
            raise StorageError(
                f"database {self.path} belongs to another network or genesis "
                f"({meta.genesis_hash.hex()[:16]}…, expected {genesis.hash.hex()[:16]}…)"
            )
        if meta.last_seq > meta.applied_seq:
            meta.replayed = 0 if fresh else meta.last_seq - meta.applied_seq
            self.apply_journal_now(meta.last_seq)
            meta = self._read_meta(replayed=meta.replayed)
        return meta

    def _migrate(self, db, fresh):
        known = schema_files()
        latest = known[-1][0]
        tables = set(db.table_names())
        if "meta" in tables:
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        elif tables:
            raise sqlite3.DatabaseError("it has tables but no timecoin schema version")
        else:
            version = 0
        if version > latest:
            raise StorageError(
                f"database {self.path} has schema version {version}, newer than this "
                f"timecoin supports ({latest}); upgrade timecoin"
            )
        for number, sql in known:
            if number > version:
                self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n"
                    f"INSERT OR REPLACE INTO meta VALUES ('schema_version', {number});\nCOMMIT;"
                )
                # Reported by the node once logging runs (this may run before).
                self.notes.append(f"database schema migrated to version {number}")
        return latest

    def _write_genesis(self, genesis):
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        c.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("genesis_hash", genesis.hash), ("applied_seq", 0),
            ("muhash", MuHash().serialize()), ("utxo_count", 0), ("utxo_total", 0),
        ])
        c.execute("INSERT INTO blocks VALUES (0, ?, ?)", (genesis.hash, genesis.header))
        c.executemany(
            "INSERT INTO transactions (seq, txid, raw, spent, finalized_at, finality_ms,"
            " block_height) VALUES (?, ?, ?, x'', ?, NULL, 0)",
            [(i + 1, tx.txid, tx.raw, genesis.timestamp) for i, tx in enumerate(genesis.txs)],
        )
        c.execute("COMMIT")

    def _read_meta(self, replayed=0):
        rows = dict(self._conn.execute("SELECT key, value FROM meta"))
        last = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM transactions").fetchone()[0]
        return ChainMeta(
            genesis_hash=bytes(rows["genesis_hash"]), applied_seq=int(rows["applied_seq"]),
            last_seq=last, muhash=MuHash.deserialize(rows["muhash"]),
            count=int(rows["utxo_count"]), total_amount=int(rows["utxo_total"]),
            replayed=replayed,
        )

    # -- the journal ---------------------------------------------------------

    def append_journal(self, records):
        return self._run(self._append_now, list(records))

    def _append_now(self, records):
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                "INSERT INTO transactions (seq, txid, raw, spent, finalized_at, finality_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.seq, r.txid, r.raw, r.spent, r.finalized_at, r.finality_ms) for r in records],
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return len(records)

    def apply_journal(self, up_to_seq, summary=None):
        return self._run(self.apply_journal_now, up_to_seq, summary)

    def apply_journal_now(self, up_to_seq, summary=None):
        """Fold journal entries ``(applied_seq, up_to_seq]`` into the UTXO tables.

        ``summary`` is the set's ``(MuHash, count, total)`` after entry
        ``up_to_seq`` as the state machine computed it when it finalized that
        entry; with it the fold skips recomputing the set hash element by
        element. It is used only if the count and total it gives equal the
        ones the entries add up to; otherwise (and without it, as when
        replaying at start-up) the hash is recomputed from the entries.
        """
        c = self._conn
        meta = self._read_meta()
        if up_to_seq <= meta.applied_seq:
            return meta.applied_seq
        rows = c.execute(
            "SELECT seq, raw, spent FROM transactions WHERE seq > ? AND seq <= ? ORDER BY seq",
            (meta.applied_seq, up_to_seq),
        ).fetchall()
        count, total = meta.count, meta.total_amount
        created, deleted, changes = {}, [], []
        for _, raw, spent in rows:
            txid, prevouts, outputs = ledger_changes(raw)
            undo = list(_UNDO.iter_unpack(spent))
            if len(undo) != len(prevouts):
                raise ValueError(f"journal entry {txid.hex()} has undo data of the wrong size")
            for key, (amount, _) in zip(prevouts, undo, strict=True):
                count -= 1
                total -= amount
                if created.pop(key, None) is None:
                    deleted.append(key)
            for vout, (amount, key_hash) in enumerate(outputs):
                count += 1
                total += amount
                created[(txid, vout)] = (txid, vout, amount, key_hash)
            changes.append((txid, prevouts, undo, outputs))
        last = rows[-1][0] if rows else up_to_seq
        if summary is not None and summary[1:] == (count, total) and last == up_to_seq:
            muhash = summary[0]
        else:
            muhash = _fold_muhash(meta.muhash, changes)
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany("DELETE FROM utxos WHERE txid = ? AND vout = ?", deleted)
            c.executemany(
                "INSERT INTO utxos (txid, vout, amount, key_hash) VALUES (?, ?, ?, ?)",
                created.values(),
            )
            c.executemany("UPDATE meta SET value = ? WHERE key = ?", [
                (last, "applied_seq"), (muhash.serialize(), "muhash"),
                (count, "utxo_count"), (total, "utxo_total"),
            ])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return last

    # -- reads ---------------------------------------------------------------

    def load_utxos(self, outpoints):
        return self._run(self._load_now, list(outpoints))

    def _load_now(self, outpoints):
        found = []
        for start in range(0, len(outpoints), _QUERY_CHUNK):
            chunk = outpoints[start:start + _QUERY_CHUNK]
            values = ",".join("(?, ?)" for _ in chunk)
            params = [p for op in chunk for p in (op.txid, op.vout)]
            for txid, vout, amount, key_hash in self._conn.execute(
                "SELECT txid, vout, amount, key_hash FROM utxos WHERE (txid, vout) IN "
                f"(VALUES {values})", params,
            ):
                found.append((OutPoint(bytes(txid), vout), amount, bytes(key_hash)))
        return found

    def get_transaction(self, txid):
        return self._run(self._get_tx_now, txid)

    def _get_tx_now(self, txid):
        row = self._conn.execute(
            "SELECT seq, txid, raw, spent, finalized_at, finality_ms, block_height"
            " FROM transactions WHERE txid = ?", (txid,),
        ).fetchone()
        if row is None:
            return None
        return JournalRecord(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), *row[4:])

    def journal_page(self, after_seq, limit, up_to_seq):
        """``[(seq, raw)]`` of journal entries in ``(after_seq, up_to_seq]``, at most ``limit``."""
        return self._run(self._journal_page_now, after_seq, limit, up_to_seq)

    def _journal_page_now(self, after_seq, limit, up_to_seq):
        return [(seq, bytes(raw)) for seq, raw in self._conn.execute(
            "SELECT seq, raw FROM transactions WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after_seq, up_to_seq, limit))]

    def utxos_for(self, key_hash):
        return self._run(self._utxos_for_now, key_hash)

    def _utxos_for_now(self, key_hash):
        return [
            (OutPoint(bytes(txid), vout), amount)
            for txid, vout, amount in self._conn.execute(
                "SELECT txid, vout, amount FROM utxos WHERE key_hash = ?", (key_hash,))
        ]

    def compute_set_summary(self):
        """Recompute the set's hash, count and total from the table, from scratch."""
        return self._run(self._summary_now)

    def _summary_now(self, batch=10_000):
        muhash, count, total = MuHash(), 0, 0
        cursor = self._conn.execute("SELECT txid, vout, amount, key_hash FROM utxos")
        while rows := cursor.fetchmany(batch):
            for txid, vout, amount, key_hash in rows:
                muhash.add(utxo_element(OutPoint(bytes(txid), vout), amount, bytes(key_hash)))
                count += 1
                total += amount
        return muhash.hexdigest(), count, total

    def read_meta(self):
        return self._run(self._read_meta)
