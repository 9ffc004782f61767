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

Schemas are versioned SQL files (:mod:`timecoin.storage.migrations`). A new
database (no file, an empty file, or one whose first start was cut short) gets
every schema and the genesis in one transaction, so a failed first start leaves
nothing the next one cannot redo. At every open the database must take a write
(``BEGIN IMMEDIATE``), pass ``quick_check`` and, when the set is small enough
(``inline_check_max`` outputs), the checks of :mod:`timecoin.storage.integrity`;
a larger set is checked in the background (:mod:`timecoin.storage.background`).
A database that is damaged, of a newer schema, or of another network stops
start-up with one line and is never modified.
"""

import os
import sqlite3
import time

import sqlite_utils
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from timecoin.interfaces import ISnapshotStorage, IStorage
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.tx import OutPoint, decode_tx
from timecoin.ledger.utxo import utxo_element
from timecoin.storage import (
    block_tables,
    conflict_tables,
    integrity,
    masternode_tables,
    snapshot_tables,
)
from timecoin.storage.integrity import DamageFound
from timecoin.storage.migrations import (
    backup_before_migrating,
    backup_database,
    backup_name,
    schema_files,
    statements,
)
from timecoin.storage.records import (
    ChainMeta,
    JournalRecord,
    decode_undo,
    encode_undo,
    plan_fold,
)
from timecoin.storage.snapshot_store import SnapshotStorageMixin
from timecoin.storage.timings import CheckpointSchedule, StorageTimings

__all__ = ["ChainMeta", "JournalRecord", "Storage", "StorageError", "encode_undo",
           "schema_files"]

#: Sets of up to this many outputs are checked during open; larger ones in the background.
INLINE_CHECK_MAX = 100_000
_QUERY_CHUNK = 400
#: How many of the last finalized txids open reads back, so that a restarted
#: node answers "yes" for them without a storage read on the reactor thread.
RECENT_TXIDS_AT_OPEN = 200_000


class StorageError(Exception):
    """The database cannot be used; the message says why and what to do."""


@implementer(IStorage, ISnapshotStorage)
class Storage(SnapshotStorageMixin):
    """The node's database (see the module docstring)."""

    log = Logger()

    def __init__(self, reactor, path, inline_check_max=INLINE_CHECK_MAX,
                 checkpoint_schedule=None):
        self._reactor = reactor
        self.path = path
        #: Sets of up to this many outputs are checked in full during open.
        self.inline_check_max = inline_check_max
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="timecoin-db")
        self._conn = None
        self._conflict_rows = False  # True while conflict-set rows may exist
        self._running = False
        #: What opening the database did, for the node to log at start.
        self.notes = []
        #: Durations of operations and WAL checkpoints, recorded on the writer thread.
        self.timings = StorageTimings()
        #: When the writer thread checkpoints the WAL (SQLite's own checkpoints are off).
        self.checkpoints = checkpoint_schedule or CheckpointSchedule(time.monotonic())
        self._changes_seen = 0  # the connection's total_changes at the last checkpoint

    # -- thread plumbing -----------------------------------------------------

    def start(self):
        if not self._running:
            self._pool.start()
            self._running = True

    def _run(self, fn, *args, operation="other"):
        """``fn(*args)`` on the writer thread, timed there as ``operation`` (a
        name of :data:`~timecoin.storage.timings.OPERATIONS`); after one that
        wrote, the WAL is checkpointed if one is due."""
        self.start()
        return deferToThreadPool(self._reactor, self._pool, self._timed, operation, fn, args)

    def _timed(self, operation, fn, args):
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timings.record(operation, time.perf_counter() - started)
            if self._conn is not None and self._conn.total_changes != self._changes_seen:
                self._checkpoint_if_due()

    def _checkpoint_if_due(self):
        """A passive WAL checkpoint when :attr:`checkpoints` says one is due
        (SQLite's own, inside a commit, is off: this one is timed and counted).
        It never waits for readers, and its failure is logged, never raised:
        the commit before it stands."""
        now = time.monotonic()
        if self._conn is None or not self.checkpoints.due(now):
            return
        self._changes_seen = self._conn.total_changes
        started = time.perf_counter()
        try:
            _busy, wal_pages, copied = self._conn.execute(
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            self.checkpoints.ran(now, 0)  # not retried before the longest interval
            self.log.warn("WAL checkpoint failed: {error}", error=e)
            return
        self.timings.checkpointed(copied, wal_pages, time.perf_counter() - started)
        self.checkpoints.ran(now, wal_pages)

    def run_db(self, fn):
        """Run ``fn(connection)`` on the writer thread."""
        return self._run(lambda: fn(self._conn), operation="run_db")

    def close(self):
        if not self._running:
            return self._close_now()

        def stopped(result):
            self._pool.stop()
            self._running = False
            return result

        return self._run(self._close_now, operation="close").addBoth(stopped)

    def timing_snapshot(self):
        return self.timings.snapshot()

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
        return self._run(self.open_now, genesis, operation="open")

    def _connect(self):
        """A new connection to the database file."""
        return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)

    def open_now(self, genesis):
        """Open the database on the calling thread (before the reactor runs, or
        on the writer thread through :meth:`open`)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StorageError(f"data directory {directory} does not exist")
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise StorageError(f"data directory {directory} is not readable and writable")
        if os.path.exists(self.path):
            if not os.path.isfile(self.path):
                raise StorageError(f"database path {self.path} exists but is not a file")
            if not os.access(self.path, os.R_OK | os.W_OK):
                raise StorageError(f"database {self.path} cannot be written (read-only file); "
                                   "make it writable or move it aside")
        try:
            return self._open(genesis)
        except sqlite3.DatabaseError as e:
            self._close_now()
            detail = " ".join(str(e).split())  # SQLite's reports span lines
            raise StorageError(
                f"database {self.path} is damaged or not a timecoin database ({detail}); "
                "it was left untouched: restore it from a backup or move it aside"
            ) from None
        except (DamageFound, ValueError) as e:
            self._close_now()
            raise StorageError(
                f"database {self.path} is damaged: {e}; it was left untouched: restore it "
                "from a backup or move it aside (timecoin --check-db reports every check)"
            ) from None
        except BaseException:
            self._close_now()
            raise

    def _open(self, genesis):
        conn = self._conn = self._connect()
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(check)
        # No schema at all: no file, an empty one, or a first start cut short.
        fresh = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        self._probe_write()
        db = sqlite_utils.Database(conn)
        if db.journal_mode != "wal":
            db.enable_wal()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_if_due
        if fresh:
            self._initialize(genesis)
        else:
            self._migrate(db)
            if self._initialization_cut_short():
                self._transaction(self._write_genesis, genesis)
                self.notes.append("database initialization was cut short; completed it")
        meta = self._read_meta()
        if meta.genesis_hash != genesis.hash:
            raise StorageError(
                f"database {self.path} belongs to another network or genesis "
                f"({meta.genesis_hash.hex()[:16]}…, expected {genesis.hash.hex()[:16]}…)"
            )
        if masternode_tables.needs_genesis(self._conn):
            self._transaction(masternode_tables.write_genesis, self._conn, genesis)
            self.notes.append("masternode table filled with the genesis registrations")
        if meta.applied_seq > meta.last_seq:
            raise DamageFound(f"meta applied_seq {meta.applied_seq} is past the journal's "
                              f"end ({meta.last_seq})")
        if meta.last_seq > meta.applied_seq:
            replayed = meta.last_seq - meta.applied_seq
            self.apply_journal_now(meta.last_seq)
            meta = self._read_meta(replayed=replayed)
        if meta.count <= self.inline_check_max:
            self.check_now()
            meta.checked = True
        meta.masternodes = masternode_tables.read_rows(self._conn)
        meta.snapshot_base = snapshot_tables.snapshot_base(self._conn)
        meta.top_height = self._conn.execute(
            "SELECT COALESCE(MAX(height), 0) FROM blocks").fetchone()[0]
        meta.conflict_sets = self._read_conflict_sets()
        return meta

    def check_now(self, progress=None):
        """The start-up checks, on the calling thread: indexes against tables,
        the UTXO rows against the stored summary, every journal record."""
        integrity.integrity_check(self._conn)
        integrity.check_utxo_set(self._conn, progress)
        integrity.check_journal(self._conn)

    def _probe_write(self):
        """Take (and give back) a write lock and write once: a database that
        cannot be written stops start-up here, not at the first finality."""
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            version = c.execute("PRAGMA user_version").fetchone()[0]
            c.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.OperationalError as e:
            raise StorageError(f"database {self.path} cannot be written ({e}); "
                               "make it and its directory writable") from None
        finally:
            self._rollback()

    def _rollback(self):
        """Roll back the open transaction, if SQLite has not already (it does on
        a full disk); a failure to roll back is logged, never raised over the
        error that caused it."""
        c = self._conn
        if c is None or not c.in_transaction:
            return
        try:
            c.execute("ROLLBACK")
        except sqlite3.Error as e:
            self.log.warn("rollback failed: {error}", error=e)

    def _transaction(self, fn, *args):
        """``fn(*args)`` in one write transaction; the error that stops it is the
        one raised."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args)
            c.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return result

    def _initialize(self, genesis):
        """Every schema and the genesis, applied, in one transaction."""
        known = schema_files()

        def create():
            for _, sql in known:
                for statement in statements(sql):
                    self._conn.execute(statement)
            self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (known[-1][0],))
            self._write_genesis(genesis)

        self._transaction(create)
        self.notes.append(f"database created with schema version {known[-1][0]}")

    def _initialization_cut_short(self):
        """True for a database with the schema and nothing else (left by a
        first start that stopped between the two)."""
        c = self._conn
        has_genesis = c.execute("SELECT 1 FROM meta WHERE key = 'genesis_hash'").fetchone()
        if has_genesis:
            return False
        return not any(c.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                       for table in ("transactions", "utxos", "blocks"))

    def _migrate(self, db):
        known = schema_files()
        latest = known[-1][0]
        tables = set(db.table_names())
        if "meta" not in tables:
            raise sqlite3.DatabaseError("it has tables but no timecoin schema version")
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = row[0] if row else 0
        if isinstance(version, bool) or not isinstance(version, int):
            raise DamageFound(f"meta schema_version is not an integer ({version!r:.20})")
        if version > latest:
            raise StorageError(
                f"database {self.path} has schema version {version}, newer than this "
                f"timecoin supports ({latest}); upgrade timecoin"
            )
        if version < latest:
            saved = backup_before_migrating(self._conn, self.path, version, latest)
            self.notes.append(f"database backed up to {saved} before migrating "
                              f"from schema version {version}")
        for number, sql in known:
            if number > version:
                def migrate(sql=sql, number=number):
                    for statement in statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute("INSERT OR REPLACE INTO meta VALUES "
                                       "('schema_version', ?)", (number,))
                self._transaction(migrate)
                # Reported by the node once logging runs (this may run before).
                self.notes.append(f"database schema migrated to version {number}")
        return latest

    def _write_genesis(self, genesis):
        """The genesis rows and its outputs in the UTXO tables (inside a transaction)."""
        c = self._conn
        c.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("genesis_hash", genesis.hash), ("applied_seq", 0),
            ("muhash", MuHash().serialize()), ("utxo_count", 0), ("utxo_total", 0),
        ])
        c.execute("INSERT INTO blocks (height, hash, header) VALUES (0, ?, ?)",
                  (genesis.hash, genesis.header))
        c.executemany(
            "INSERT INTO transactions (seq, txid, raw, spent, finalized_at, finality_ms,"
            " block_height) VALUES (?, ?, ?, x'', ?, NULL, 0)",
            [(i + 1, tx.txid, tx.raw, genesis.timestamp) for i, tx in enumerate(genesis.txs)],
        )
        self._write_fold(self._plan_fold(len(genesis.txs)))
        masternode_tables.write_genesis(c, genesis)

    def _read_meta(self, replayed=0):
        meta = integrity.read_meta(self._conn)
        last = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM transactions").fetchone()[0]
        recent = self._conn.execute(
            "SELECT txid FROM transactions WHERE seq > ? ORDER BY seq",
            (max(0, last - RECENT_TXIDS_AT_OPEN),)).fetchall()
        return ChainMeta(
            genesis_hash=meta["genesis_hash"], applied_seq=meta["applied_seq"],
            last_seq=last, muhash=meta["muhash"], count=meta["utxo_count"],
            total_amount=meta["utxo_total"], replayed=replayed,
            recent_txids=tuple(bytes(row[0]) for row in recent),
        )

    # -- the journal ---------------------------------------------------------

    def append_journal(self, records, conflict_sets=None):
        if conflict_sets is None:
            return self._run(self._append_now, list(records), operation="journal_commit")
        return self._run(self._append_now, list(records), conflict_sets,
                         operation="journal_commit")

    def _append_now(self, records, conflict_sets=None):
        self._transaction(self._write_journal, records, conflict_sets)
        return len(records)

    def _write_journal(self, records, conflict_sets):
        # The sets first: a finalization in the same commit removes its set.
        if conflict_sets:
            conflict_tables.write(self._conn, conflict_sets)
            self._conflict_rows = True
        self._conn.executemany(
            "INSERT INTO transactions (seq, txid, raw, spent, finalized_at, finality_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(r.seq, r.txid, r.raw, r.spent, r.finalized_at, r.finality_ms) for r in records],
        )
        if records and self._conflict_rows:
            conflict_tables.delete_decided(self._conn, records)
            self._conflict_rows = conflict_tables.has_rows(self._conn)

    def _read_conflict_sets(self):
        """The stored conflict sets, their pending transactions and the UTXO rows
        those spend (the node re-enters them before it answers any query)."""
        sets, pending = conflict_tables.read(self._conn)
        self._conflict_rows = bool(sets)
        inputs = {i.prevout for _, raw in pending for i in decode_tx(raw).inputs}
        return conflict_tables.RestoredConflictSets(
            sets, pending, tuple(self._load_now(sorted(inputs))))

    def apply_journal(self, up_to_seq, summary=None):
        return self._run(self.apply_journal_now, up_to_seq, summary, operation="utxo_flush")

    def apply_journal_now(self, up_to_seq, summary=None):
        """Fold journal entries ``(applied_seq, up_to_seq]`` into the UTXO tables.

        ``summary`` is the set's ``(MuHash, count, total)`` after entry
        ``up_to_seq`` as the state machine computed it when it finalized that
        entry; with it the fold skips recomputing the set hash element by
        element. It is used only if the count and total it gives equal the
        ones the entries add up to; otherwise (and without it, as when
        replaying at start-up) the hash is recomputed from the entries.
        """
        plan = self._plan_fold(up_to_seq, summary)
        if plan is None:
            return self._read_meta().applied_seq
        self._transaction(self._write_fold, plan)
        return plan[2][0][0]  # the new applied_seq

    def _plan_fold(self, up_to_seq, summary=None):
        return plan_fold(self._conn, self._read_meta(), up_to_seq, summary)

    def _write_fold(self, plan):
        """Write a fold (inside a transaction)."""
        deleted, created, updates, registered, spent = plan
        c = self._conn
        c.executemany("DELETE FROM utxos WHERE txid = ? AND vout = ?", deleted)
        c.executemany("INSERT INTO utxos (txid, vout, amount, key_hash) VALUES (?, ?, ?, ?)",
                      created)
        c.executemany("UPDATE meta SET value = ? WHERE key = ?", updates)
        masternode_tables.write_fold(c, registered, spent)

    # -- reads ---------------------------------------------------------------

    def load_utxos(self, outpoints):
        return self._run(self._load_now, list(outpoints), operation="utxo_read")

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
        return self._run(self._get_tx_now, txid, operation="tx_read")

    def block_transactions(self, height):
        """Fire with ``{txid: raw}`` of the journal entries confirmed by block
        ``height`` (its reward transaction's included), in one read."""
        return self._run(lambda: {bytes(txid): bytes(raw) for txid, raw in self._conn.execute(
            "SELECT txid, raw FROM transactions WHERE block_height = ?", (height,))},
            operation="tx_read")

    def _get_tx_now(self, txid):
        row = self._conn.execute(
            "SELECT seq, txid, raw, spent, finalized_at, finality_ms, block_height"
            " FROM transactions WHERE txid = ?", (txid,),
        ).fetchone()
        if row is None:
            return None
        return JournalRecord(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), *row[4:])

    def journal_page(self, after_seq, limit, up_to_seq):
        """``[(seq, raw)]`` of journal entries in ``(after_seq, up_to_seq]`` that
        no block confirmed yet, at most ``limit``: below the last block, a
        node catches up by block sync (certified blocks with their bodies)."""
        return self._run(self._journal_page_now, after_seq, limit, up_to_seq,
                         operation="journal_read")

    def _journal_page_now(self, after_seq, limit, up_to_seq):
        return [(seq, bytes(raw)) for seq, raw in self._conn.execute(
            "SELECT seq, raw FROM transactions WHERE seq > ? AND seq <= ? "
            "AND block_height IS NULL ORDER BY seq LIMIT ?",
            (after_seq, up_to_seq, limit))]

    def utxos_for(self, key_hash):
        return self._run(self._utxos_for_now, key_hash, operation="address_read")

    def _utxos_for_now(self, key_hash):
        return [
            (OutPoint(bytes(txid), vout), amount)
            for txid, vout, amount in self._conn.execute(
                "SELECT txid, vout, amount FROM utxos WHERE key_hash = ?", (key_hash,))
        ]

    def compute_set_summary(self):
        """Recompute the set's hash, count and total from the table, from scratch."""
        return self._run(self._summary_now, operation="summary")

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
        return self._run(self._read_meta, operation="meta_read")

    # -- the masternode registry -----------------------------------------------

    def load_masternodes(self):
        """Fire with the registry's rows as of the applied journal entries."""
        return self._run(masternode_tables.read_rows, self._conn, operation="masternodes_read")

    def backup(self, directory=None):
        """Fire with ``(path, bytes)`` of an online copy of the database written
        into ``directory`` (default: ``backups`` beside the database)."""
        return self._run(self._backup_now, directory, operation="backup")

    def _backup_now(self, directory):
        destination = backup_name(self.path, "backup")
        if directory is not None:
            destination = os.path.join(directory, os.path.basename(destination))
        stem, n = destination[:-len(".sqlite3")], 1
        while os.path.exists(destination):  # two copies in the same millisecond
            n += 1
            destination = f"{stem}-{n}.sqlite3"
        return destination, backup_database(self._conn, destination)

    def save_masternodes(self, rows):
        """Replace the registry's rows (after a block changed it), atomically."""
        return self._run(self._transaction, masternode_tables.replace_rows, self._conn, rows,
                         operation="masternodes_save")

    # -- blocks ------------------------------------------------------------------

    def save_block(self, block_row, records, confirmed_txids, masternode_rows=None,
                   active_set=None):
        """Write a committed block with its journal entries, confirmations,
        registry rows and the active set after it if it changed, in one
        transaction (:func:`block_tables.write_block`)."""
        rows = [(r.seq, r.txid, r.raw, r.spent, r.finalized_at, r.finality_ms)
                for r in records]
        return self._run(self._transaction, block_tables.write_block, self._conn, block_row,
                         rows, list(confirmed_txids), masternode_rows,
                         None if active_set is None else dict(active_set),
                         operation="block_commit")

    def load_blocks(self, after_height=0):
        """Fire with ``[(height, body, certificate)]`` of the committed blocks."""
        return self._run(block_tables.read_blocks, self._conn, after_height,
                         operation="blocks_read")

    def load_block_sets(self):
        """Fire with ``[(height, {pubkey: weight})]``: the active set after each
        stored block that changed it."""
        return self._run(block_tables.read_block_sets, self._conn, operation="blocks_read")

    def load_unconfirmed(self):
        """Fire with ``[(seq, raw, [(amount, key_hash)])]`` of the journal
        entries no block confirmed yet, in order."""
        return self._run(lambda: [(seq, raw, decode_undo(spent)) for seq, raw, spent
                                  in block_tables.read_unconfirmed(self._conn)],
                         operation="blocks_read")
