"""Storage on files the tests damage: first starts cut short, full and
read-only disks, random byte flips, and the checks that find them."""

import os
import random
import shutil
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from tests.support import SyncStorage, devnet_funding, make_datadir, transfer
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.utxo import UtxoEntry
from timecoin.storage.background import StorageCheck
from timecoin.storage.check_db import check_database
from timecoin.storage.migrations import schema_files, statements
from timecoin.storage.store import JournalRecord, StorageError, encode_undo

GENESIS = make_genesis(DEVNET)
#: The funded dev keys' outputs and the genesis masternode's collateral.
GENESIS_OUTPUTS = sum(len(tx.outputs) for tx in GENESIS.txs)


def result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


class PageLimitedStorage(SyncStorage):
    """A disk that holds only ``pages`` database pages (``max_page_count``)."""

    pages = None

    def _connect(self):
        conn = super()._connect()
        if self.pages is not None:
            conn.execute(f"PRAGMA max_page_count = {self.pages}")
        return conn


class ReadOnlyStorage(SyncStorage):
    """A database SQLite can read but not write (as on a read-only or
    immutable file, which file modes cannot simulate for root)."""

    def _connect(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)


def assert_consistent(testcase, storage, meta, txids=()):
    """What the node would serve agrees with what it stores."""
    digest, count, total = result(storage.compute_set_summary())
    testcase.assertEqual((digest, count, total),
                         (meta.muhash.hexdigest(), meta.count, meta.total_amount))
    # listunspent reads through the key-hash index: every output is found there.
    key_hashes = [bytes(k) for (k,) in storage._conn.execute(
        "SELECT DISTINCT key_hash FROM utxos")]
    listed = [row for k in key_hashes for row in result(storage.utxos_for(k))]
    testcase.assertEqual((len(listed), sum(a for _, a in listed)), (count, total))
    for txid in txids:
        testcase.assertIsNotNone(result(storage.get_transaction(txid)), txid.hex())


class FirstStartTests(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(make_datadir(self), "chain.sqlite3")

    def open(self, cls=SyncStorage, **kw):
        storage = cls(None, self.path, **kw)
        self.addCleanup(storage._close_now)
        return storage, storage.open_now(GENESIS)

    def test_zero_length_file_is_a_new_database(self):
        open(self.path, "wb").close()
        storage, meta = self.open()
        self.assertEqual(meta.genesis_hash, GENESIS.hash)
        assert_consistent(self, storage, meta)

    def test_nearly_full_first_start_leaves_a_datadir_the_next_start_accepts(self):
        failures = 0
        for pages in range(1, 40, 3):
            if os.path.exists(self.path):
                os.unlink(self.path)
            limited = PageLimitedStorage(None, self.path)
            limited.pages = pages
            try:
                limited.open_now(GENESIS)
            except StorageError as e:
                failures += 1
                self.assertNotIn("\n", str(e))
                self.assertIn("full", str(e))
            finally:
                limited._close_now()
            storage, meta = self.open()
            self.assertEqual(meta.genesis_hash, GENESIS.hash, pages)
            self.assertEqual(meta.count, GENESIS_OUTPUTS)
            assert_consistent(self, storage, meta)
            storage._close_now()
        self.assertGreater(failures, 3)  # the limits did cut first starts short

    def test_schema_without_genesis_is_completed(self):
        # What a first start that committed the schema and not the genesis left.
        conn = sqlite3.connect(self.path, isolation_level=None)
        for number, sql in schema_files():
            for statement in statements(sql):
                conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (number,))
        conn.close()
        storage, meta = self.open()
        self.assertEqual(meta.genesis_hash, GENESIS.hash)
        self.assertIn("database initialization was cut short; completed it", storage.notes)
        assert_consistent(self, storage, meta)

    def test_missing_meta_fact_is_one_line_not_a_key_error(self):
        self.open()[0]._close_now()
        conn = sqlite3.connect(self.path)
        conn.execute("DELETE FROM meta WHERE key = 'utxo_total'")
        conn.commit()
        conn.close()
        e = self.assertRaises(StorageError, SyncStorage(None, self.path).open_now, GENESIS)
        self.assertIn("meta has no utxo_total", str(e))
        self.assertNotIn("\n", str(e))

    def test_read_only_database_refuses_start_with_one_line(self):
        self.open()[0]._close_now()
        e = self.assertRaises(StorageError, ReadOnlyStorage(None, self.path).open_now, GENESIS)
        self.assertIn("cannot be written", str(e))
        self.assertIn("readonly", str(e))
        self.assertNotIn("\n", str(e))


class FullDiskTests(unittest.TestCase):
    def test_disk_full_reports_the_real_error(self):
        path = os.path.join(make_datadir(self), "chain.sqlite3")
        storage = SyncStorage(None, path)
        self.addCleanup(storage._close_now)
        meta = storage.open_now(GENESIS)
        pages = storage._conn.execute("PRAGMA page_count").fetchone()[0]
        storage._conn.execute(f"PRAGMA max_page_count = {pages}")
        key, op, amount = devnet_funding(0)
        tx = transfer(key, [op], [(COIN, key.key_hash)], total=amount)
        big = JournalRecord(meta.last_seq + 1, tx.txid, tx.raw + b"\0" * 200_000,
                            encode_undo([UtxoEntry(op, amount, key.key_hash)]), 1.0, 1.0)
        failure = result(storage.append_journal([big]))
        failure.trap(sqlite3.OperationalError)
        self.assertIn("full", failure.getErrorMessage())
        self.assertNotIn("rollback", failure.getErrorMessage())
        self.assertFalse(storage._conn.in_transaction)


def build_database(testcase, path, spends=12):
    """A database with the genesis and ``spends`` finalized, applied transfers;
    the txids of everything in its journal."""
    storage = SyncStorage(None, path)
    meta = storage.open_now(GENESIS)
    seq = meta.last_seq
    txids = [tx.txid for tx in GENESIS.txs]
    records = []
    for i in range(spends):
        key, op, amount = devnet_funding(i)
        tx = transfer(key, [op], [(COIN, key.key_hash), (COIN, devnet_funding(i + 1)[0]
                                                         .key_hash)], total=amount)
        seq += 1
        records.append(JournalRecord(seq, tx.txid, tx.raw,
                                     encode_undo([UtxoEntry(op, amount, key.key_hash)]), 1.0, 1.0))
        txids.append(tx.txid)
    result(storage.append_journal(records))
    result(storage.apply_journal(seq))
    storage._close_now()
    return txids


class ByteFlipTests(unittest.TestCase):
    """Each of 20 seeded 16-byte flips ends in a refusal (one line) or a
    consistent node, never a silently inconsistent one."""

    def test_twenty_random_flips(self):
        directory = make_datadir(self)
        pristine = os.path.join(directory, "pristine.sqlite3")
        txids = build_database(self, pristine)
        size = os.path.getsize(pristine)
        outcomes = {"refused": 0, "consistent": 0}
        for seed in range(20):
            rng = random.Random(seed)
            path = os.path.join(directory, f"flip{seed}.sqlite3")
            shutil.copyfile(pristine, path)
            offset = rng.randrange(size - 16)
            with open(path, "r+b") as f:
                f.seek(offset)
                f.write(bytes(rng.randrange(256) for _ in range(16)))
            storage = SyncStorage(None, path)
            try:
                meta = storage.open_now(GENESIS)
            except StorageError as e:
                self.assertNotIn("\n", str(e))
                outcomes["refused"] += 1
                continue
            try:
                assert_consistent(self, storage, meta, txids)
            finally:
                storage._close_now()
            outcomes["consistent"] += 1
        self.assertEqual(sum(outcomes.values()), 20)
        self.assertGreater(outcomes["refused"], 0, outcomes)

    def test_damage_quick_check_misses_is_found(self):
        path = os.path.join(make_datadir(self), "chain.sqlite3")
        txids = build_database(self, path)
        damages = [
            "UPDATE utxos SET amount = amount + 1 WHERE vout = 1",
            "DELETE FROM utxos WHERE vout = 1",
            "UPDATE utxos SET key_hash = x'00' WHERE vout = 1",
            "UPDATE transactions SET raw = raw || x'00' WHERE seq = 3",
            "DELETE FROM transactions WHERE seq = 4",
        ]
        for sql in damages:
            damaged = path + ".damaged"
            shutil.copyfile(path, damaged)
            conn = sqlite3.connect(damaged)
            self.assertEqual(conn.execute("PRAGMA quick_check").fetchone()[0], "ok")
            conn.execute(sql)
            conn.commit()
            self.assertEqual(conn.execute("PRAGMA quick_check").fetchone()[0], "ok")
            conn.close()
            storage = SyncStorage(None, damaged)
            self.addCleanup(storage._close_now)
            e = self.assertRaises(StorageError, storage.open_now, GENESIS)
            self.assertIn("is damaged", str(e), sql)
            report = check_database(damaged, GENESIS.hash)
            self.assertTrue(any(r.problem for r in report), sql)
            os.unlink(damaged)
        self.assertTrue(all(r.problem is None for r in check_database(path, GENESIS.hash)))
        self.assertEqual(len(txids), len(GENESIS.txs) + 12)


class BackgroundCheckTests(unittest.TestCase):
    """A set too large to check during open is checked on a thread of its own."""

    timeout = 30

    def setUp(self):
        self.path = os.path.join(make_datadir(self), "chain.sqlite3")
        build_database(self, self.path)

    @defer.inlineCallbacks
    def run_check(self):
        from twisted.internet import reactor

        storage = SyncStorage(None, self.path, inline_check_max=0)
        self.addCleanup(storage._close_now)
        meta = storage.open_now(GENESIS)
        self.assertFalse(meta.checked)
        check = StorageCheck(reactor, self.path, needed=True, expected=meta.count)
        self.assertEqual(check.state, "verifying")
        damage = []
        check.start(damage.append)
        yield check._running
        yield check.stop()
        return check, damage

    @defer.inlineCallbacks
    def test_clean_database_passes(self):
        check, damage = yield self.run_check()
        self.assertEqual((check.state, damage, check.problem), ("ok", [], None))

    @defer.inlineCallbacks
    def test_damage_is_reported_in_one_line(self):
        conn = sqlite3.connect(self.path)
        conn.execute("UPDATE utxos SET amount = amount + 7 WHERE vout = 1")
        conn.commit()
        conn.close()
        check, damage = yield self.run_check()
        self.assertEqual(check.state, "damaged")
        self.assertEqual(damage, [check.problem])
        self.assertIn("is damaged", check.problem)
        self.assertNotIn("\n", check.problem)
