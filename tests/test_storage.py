"""Storage: schema, journal, batched application, replay, and refusal of bad databases."""

import os
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from tests.support import SyncStorage, devnet_funding, make_datadir, transfer
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import DEVNET, TESTNET
from timecoin.ledger.utxo import UtxoEntry
from timecoin.p2p.host import SynchronousDatabase
from timecoin.storage.peer_tables import PEER_TABLES
from timecoin.storage.store import JournalRecord, Storage, StorageError, encode_undo, schema_files

GENESIS = make_genesis(DEVNET)
#: The funded dev keys' outputs and the genesis masternode's collateral.
GENESIS_OUTPUTS = sum(len(tx.outputs) for tx in GENESIS.txs)


def record(seq, tx, spent_entries):
    return JournalRecord(seq, tx.txid, tx.raw, encode_undo(spent_entries), 1.0, 2.0)


class StorageTests(unittest.TestCase):
    def setUp(self):
        self.dir = make_datadir(self)
        self.path = os.path.join(self.dir, "chain.sqlite3")

    def open(self):
        storage = SyncStorage(None, self.path)
        meta = storage.open_now(GENESIS)
        self.addCleanup(storage._close_now)
        return storage, meta

    def result(self, d):
        out = []
        d.addBoth(out.append)
        return out[0]

    def test_fresh_database_holds_the_genesis(self):
        storage, meta = self.open()
        self.assertEqual(meta.genesis_hash, GENESIS.hash)
        self.assertEqual(meta.count, GENESIS_OUTPUTS)
        self.assertEqual(meta.total_amount, GENESIS.total_supply)
        self.assertEqual(meta.applied_seq, meta.last_seq)
        conn = sqlite3.connect(self.path)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        self.assertEqual(int(version[0]), schema_files()[-1][0])
        digest, count, total = self.result(storage.compute_set_summary())
        self.assertEqual((digest, count, total),
                         (meta.muhash.hexdigest(), meta.count, meta.total_amount))

    def spend(self, index=0):
        key, op, amount = devnet_funding(index)
        tx = transfer(key, [op], [(amount - 5000, key.key_hash)], fee=5000)
        entry = UtxoEntry(op, amount, key.key_hash)
        return tx, entry

    def test_journal_then_apply_in_one_batch(self):
        storage, meta = self.open()
        first, entry = self.spend(0)
        # a chain within one batch: the second spends the first's output
        key = devnet_funding(0)[0]
        second = transfer(key, [first.outpoints()[0]], [(1000, key.key_hash)],
                          total=first.outputs[0].amount)
        second_undo = UtxoEntry(first.outpoints()[0], first.outputs[0].amount, key.key_hash)
        seq = meta.last_seq
        self.result(storage.append_journal([record(seq + 1, first, [entry]),
                                            record(seq + 2, second, [second_undo])]))
        self.assertEqual(self.result(storage.apply_journal(seq + 2)), seq + 2)
        rows = self.result(storage.load_utxos([entry.outpoint, first.outpoints()[0],
                                               second.outpoints()[0]]))
        self.assertEqual([r[0] for r in rows], [second.outpoints()[0]])
        digest, count, total = self.result(storage.compute_set_summary())
        after = self.result(storage.read_meta())
        self.assertEqual((digest, count, total),
                         (after.muhash.hexdigest(), after.count, after.total_amount))
        self.assertEqual(total, GENESIS.total_supply - 5000 - (
            first.outputs[0].amount - second.output_total))

    def test_unapplied_journal_is_replayed_at_open(self):
        storage, meta = self.open()
        tx, entry = self.spend(1)
        self.result(storage.append_journal([record(meta.last_seq + 1, tx, [entry])]))
        storage._close_now()  # a crash: the UTXO tables were never written
        again, meta2 = self.open()
        self.assertEqual(meta2.replayed, 1)
        self.assertEqual(meta2.applied_seq, meta.last_seq + 1)
        self.assertEqual(meta2.count, meta.count)
        self.assertNotEqual(meta2.muhash.hexdigest(), meta.muhash.hexdigest())
        stored = self.result(again.get_transaction(tx.txid))
        self.assertEqual(stored.raw, tx.raw)
        self.assertEqual(stored.finality_ms, 2.0)

    def test_duplicate_journal_entry_is_refused_atomically(self):
        storage, meta = self.open()
        tx, entry = self.spend(2)
        self.result(storage.append_journal([record(meta.last_seq + 1, tx, [entry])]))
        other, other_entry = self.spend(3)
        failure = self.result(storage.append_journal([
            record(meta.last_seq + 2, other, [other_entry]),
            record(meta.last_seq + 3, tx, [entry]),
        ]))
        failure.trap(sqlite3.IntegrityError)
        self.assertIsNone(self.result(storage.get_transaction(other.txid)))

    def test_damaged_database_is_refused_and_left_untouched(self):
        with open(self.path, "wb") as f:
            f.write(b"this is not a database" * 200)
        before = open(self.path, "rb").read()
        storage = Storage(None, self.path)
        e = self.assertRaises(StorageError, storage.open_now, GENESIS)
        self.assertIn("damaged", str(e))
        self.assertEqual(open(self.path, "rb").read(), before)

    def test_truncated_database_is_refused(self):
        self.open()[0]._close_now()
        size = os.path.getsize(self.path)
        with open(self.path, "r+b") as f:
            f.truncate(size // 2)
        storage = Storage(None, self.path)
        self.assertRaises(StorageError, storage.open_now, GENESIS)

    def test_other_genesis_is_refused(self):
        self.open()[0]._close_now()
        e = self.assertRaises(StorageError, Storage(None, self.path).open_now,
                              make_genesis(TESTNET))
        self.assertIn("another network", str(e))

    def test_peer_tables_are_the_same_in_both_databases(self):
        self.open()
        node_db = sqlite3.connect(self.path)
        self.addCleanup(node_db.close)
        peer_db = SynchronousDatabase()
        self.addCleanup(peer_db.close)

        def peer_tables(conn):
            objects = conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('peers', 'bans')"
                " ORDER BY name").fetchall()
            columns = {table: conn.execute(f"PRAGMA table_info({table})").fetchall()
                       for table in ("peers", "bans")}
            return objects, columns

        objects, columns = peer_tables(node_db)
        self.assertEqual([name for _, name, _ in objects],
                         ["bans", "peers", "sqlite_autoindex_bans_1", "sqlite_autoindex_peers_1"])
        self.assertEqual([c[1] for c in columns["bans"]],
                         ["address", "until", "offences", "reason"])
        self.assertEqual((objects, columns), peer_tables(peer_db.conn))

    def test_schema_includes_are_expanded(self):
        [(version, sql)] = [f for f in schema_files() if f[0] == 1]
        self.assertNotIn("-- include:", sql)
        self.assertIn(PEER_TABLES, sql)

    def test_newer_schema_is_refused(self):
        storage, _ = self.open()
        storage._conn.execute("UPDATE meta SET value = 999 WHERE key = 'schema_version'")
        storage._close_now()
        e = self.assertRaises(StorageError, Storage(None, self.path).open_now, GENESIS)
        self.assertIn("newer", str(e))

    def test_missing_directory(self):
        storage = Storage(None, os.path.join(self.dir, "nope", "chain.sqlite3"))
        self.assertRaises(StorageError, storage.open_now, GENESIS)


class ThreadedStorageTests(unittest.TestCase):
    """The real writer thread, driven by the trial reactor."""

    @defer.inlineCallbacks
    def test_open_write_read_close_on_the_writer_thread(self):
        from twisted.internet import reactor

        path = os.path.join(make_datadir(self), "chain.sqlite3")
        storage = Storage(reactor, path)
        meta = yield storage.open(GENESIS)
        key, op, amount = devnet_funding(4)
        tx = transfer(key, [op], [(amount - 5000, key.key_hash)], fee=5000)
        yield storage.append_journal([record(meta.last_seq + 1, tx,
                                             [UtxoEntry(op, amount, key.key_hash)])])
        applied = yield storage.apply_journal(meta.last_seq + 1)
        self.assertEqual(applied, meta.last_seq + 1)
        rows = yield storage.utxos_for(key.key_hash)
        self.assertEqual(rows, [(tx.outpoints()[0], amount - 5000)])
        threads = yield storage.run_db(lambda conn: __import__("threading").current_thread().name)
        self.assertIn("timecoin-db", threads)
        yield storage.close()
        self.assertFalse(storage._running)
