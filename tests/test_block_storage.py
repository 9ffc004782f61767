"""Blocks in SQLite (schema versions 4 and 5): a committed block is written in
one transaction with its reward's journal entry, its confirmations, the
registry's rows and the active set after it if it changed; replay reads the
blocks and sets back; a database of every older version migrates."""

import os
import sqlite3

from twisted.trial import unittest

from tests.support import StorageFileTestCase, downgrade_schema
from timecoin.ledger.block import Block, BlockHeader
from timecoin.ledger.emission import reward_transaction
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.merkle import merkle_root
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.storage import block_tables
from timecoin.storage.store import JournalRecord, schema_files

GENESIS = make_genesis(DEVNET, 3)


def block_one(meta):
    registry = MasternodeRegistry.from_genesis(GENESIS)
    recipients = [(e.reward_key_hash, e.weight) for e in registry.entries()]
    reward = reward_transaction(DEVNET, 1, 0, recipients)
    confirmed = tuple(tx.txid for tx in GENESIS.txs)
    header = BlockHeader(DEVNET.network_id, 1, GENESIS.hash, GENESIS.timestamp + 2, 0,
                         GENESIS.masternodes[0], merkle_root(confirmed + (reward.txid,)),
                         b"\x01" * 32, registry.masternode_set_hash(), 6_337_617)
    block = Block(header, confirmed, reward)
    block.check()
    record = JournalRecord(meta.last_seq + 1, reward.txid, reward.raw, b"", 10.0, None)
    row = (1, block.hash, header.encode(), block.encode(), b"certificate", 10.0)
    return block, record, row, registry


class BlockStorageTests(StorageFileTestCase, unittest.TestCase):
    genesis = GENESIS

    def test_a_block_is_stored_with_its_confirmations_and_read_back(self):
        storage, meta = self.open()
        block, record, row, registry = block_one(meta)
        storage._transaction(block_tables.write_block, storage._conn, row,
                             [(record.seq, record.txid, record.raw, record.spent,
                               record.finalized_at, record.finality_ms)],
                             block.all_txids, registry.rows())
        stored = block_tables.read_blocks(storage._conn)
        self.assertEqual(stored, [(1, block.encode(), b"certificate")])
        self.assertEqual(Block.decode(stored[0][1]), block)
        for txid in block.all_txids:
            self.assertEqual(block_tables.block_height_of(storage._conn, txid), 1)
        self.assertIsNone(block_tables.block_height_of(storage._conn, b"\x00" * 32))
        storage._close_now()
        storage, meta = self.open()
        self.assertEqual(meta.last_seq, record.seq)  # the reward is a journal entry
        self.assertEqual(block_tables.read_blocks(storage._conn, after_height=1), [])

    def test_the_journal_catch_up_serves_only_what_no_block_confirmed(self):
        storage, meta = self.open()
        block, record, row, registry = block_one(meta)
        loose = JournalRecord(record.seq + 1, b"\x07" * 32, b"raw-7", b"", 11.0, None)
        rows = [(r.seq, r.txid, r.raw, r.spent, r.finalized_at, r.finality_ms)
                for r in (record, loose)]
        storage._transaction(block_tables.write_block, storage._conn, row, rows,
                             block.all_txids, registry.rows())
        # The reward (block 1 confirms it) is left to block sync; the loose
        # entry above the last block is served.
        page = self.successResultOf(storage.journal_page(0, 10, loose.seq))
        self.assertEqual(page, [(loose.seq, b"raw-7")])

    def test_a_failed_block_write_leaves_nothing(self):
        storage, meta = self.open()
        block, record, row, registry = block_one(meta)
        clash = (0,) + row[1:]  # height 0 is the genesis': the insert fails
        rows = [(record.seq, record.txid, record.raw, record.spent, record.finalized_at,
                 record.finality_ms)]
        self.assertRaises(sqlite3.IntegrityError, storage._transaction,
                          block_tables.write_block, storage._conn, clash, rows,
                          block.all_txids, [])
        self.assertEqual(block_tables.read_blocks(storage._conn), [])
        self.assertIsNone(block_tables.block_height_of(storage._conn, record.txid))
        self.assertEqual(storage._read_meta().last_seq, meta.last_seq)
        self.assertEqual(storage._conn.execute("SELECT COUNT(*) FROM masternodes").fetchone()[0],
                         len(GENESIS.registrations))

    def test_migration_from_a_version_1_database(self):
        storage, _ = self.open()
        storage._close_now()
        downgrade_schema(self.path, 1)  # headers only, no masternodes table
        storage, meta = self.open()
        self.assertIn("database schema migrated to version 4", storage.notes)
        self.assertEqual(schema_files()[-1][0], 7)
        columns = {r[1] for r in storage._conn.execute("PRAGMA table_info(blocks)")}
        self.assertLessEqual({"body", "certificate", "committed_at"}, columns)
        block, record, row, registry = block_one(meta)
        storage._transaction(block_tables.write_block, storage._conn, row, [], block.txids,
                             None)
        self.assertEqual(len(block_tables.read_blocks(storage._conn)), 1)

    def test_the_set_after_a_block_that_changed_it_is_stored_with_the_block(self):
        storage, meta = self.open()
        block, record, row, registry = block_one(meta)
        after = {b"\x05" * 32: 10, b"\x07" * 32: 100}
        storage.save_block(row, [record], block.all_txids, registry.rows(), after)
        self.assertEqual(self.successResultOf(storage.load_block_sets()), [(1, after)])
        storage._close_now()
        storage, _ = self.open()  # durable: read back after a restart
        self.assertEqual(self.successResultOf(storage.load_block_sets()), [(1, after)])

    def test_a_block_that_kept_the_set_stores_none(self):
        storage, meta = self.open()
        block, record, row, registry = block_one(meta)
        storage.save_block(row, [record], block.all_txids, registry.rows())
        self.assertEqual(self.successResultOf(storage.load_block_sets()), [])

    def test_a_failed_block_write_stores_no_set(self):
        storage, meta = self.open()
        block, record, row, registry = block_one(meta)
        clash = (0,) + row[1:]
        self.failureResultOf(storage.save_block(clash, [record], block.all_txids, None,
                                                {b"\x05" * 32: 10}), sqlite3.IntegrityError)
        self.assertEqual(self.successResultOf(storage.load_block_sets()), [])

    def test_migration_to_block_sets_from_every_older_version(self):
        directory = os.path.dirname(self.path)
        for version in range(1, schema_files()[-1][0]):
            self.path = os.path.join(directory, f"from-{version}", "chain.sqlite3")
            os.makedirs(os.path.dirname(self.path))
            storage, _ = self.open()
            storage._close_now()
            downgrade_schema(self.path, version)
            storage, meta = self.open()
            latest = schema_files()[-1][0]
            self.assertIn(f"database schema migrated to version {latest}", storage.notes,
                          version)
            stored = storage._conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            self.assertEqual(int(stored), latest, version)
            columns = {r[1] for r in storage._conn.execute("PRAGMA table_info(masternodes)")}
            self.assertIn("missed_service", columns, version)
            self.assertEqual(self.successResultOf(storage.load_block_sets()), [], version)
            block, record, row, registry = block_one(meta)
            after = {b"\x05" * 32: 10}
            storage.save_block(row, [record], block.all_txids, registry.rows(), after)
            self.assertEqual(self.successResultOf(storage.load_block_sets()), [(1, after)],
                             version)
            storage._close_now()
