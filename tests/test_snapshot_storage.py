"""Snapshots in SQLite (schema version 6): the set after a block is cut from
the UTXO table corrected by the journal (entries folded in that the block does
not confirm undone, confirmed ones not folded yet applied), the newest two
are kept, and a fetched set is installed into a fresh database in one
transaction."""

import os

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import StorageFileTestCase, devnet_funding, downgrade_schema, transfer
from tests.test_block_storage import GENESIS, block_one
from timecoin.interfaces import ISnapshotStorage
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.snapshot import SnapshotAssembly, SnapshotManifest
from timecoin.ledger.tx import OutPoint
from timecoin.ledger.utxo import UtxoEntry, utxo_element
from timecoin.storage import snapshot_tables
from timecoin.storage.check_db import check_database
from timecoin.storage.records import encode_undo
from timecoin.storage.store import JournalRecord, schema_files


def outputs_of(txs):
    """The outputs of ``txs`` (none spent), sorted as a snapshot lists them."""
    return sorted((OutPoint(tx.txid, vout), out.amount, out.key_hash)
                  for tx in txs for vout, out in enumerate(tx.outputs))


def muhash_of(outputs):
    muhash = MuHash()
    for outpoint, amount, key_hash in outputs:
        muhash.add(utxo_element(outpoint, amount, key_hash))
    return muhash


class SnapshotStorageTests(StorageFileTestCase, unittest.TestCase):
    genesis = GENESIS

    def commit_block_one(self, storage, meta):
        block, record, row, registry = block_one(meta)
        self.successResultOf(storage.save_block(row, [record], block.all_txids,
                                                registry.rows()))
        return block

    def test_storage_provides_the_interface(self):
        storage, _ = self.open()
        verifyObject(ISnapshotStorage, storage)

    def test_the_set_after_block_one_is_cut_from_table_and_journal(self):
        storage, meta = self.open()
        block = self.commit_block_one(storage, meta)
        # A transfer finalized after block 1 and folded into the table: the
        # snapshot at 1 must not hold its outputs, and must hold what it spent.
        key, outpoint, amount = devnet_funding(0)
        tx = transfer(key, [outpoint], [(1000, b"\x07" * 20)], total=amount)
        spent = encode_undo([UtxoEntry(outpoint, amount, key.key_hash)])
        seq = meta.last_seq + 2
        self.successResultOf(storage.append_journal(
            [JournalRecord(seq, tx.txid, tx.raw, spent, 11.0, None)]))
        storage.apply_journal_now(seq - 1)  # block 1's reward is not folded in
        storage.apply_journal_now(seq)
        expected = outputs_of(list(GENESIS.txs) + [block.reward_tx])
        self.assertEqual(list(snapshot_tables.set_after_block(storage._conn, 1)), expected)
        # Folded only up to the genesis: block 1's reward is applied by the cut.
        manifest = self.successResultOf(storage.save_snapshot(
            GENESIS.network.network_id, 1, block.hash, 3))
        self.assertEqual(manifest.utxo_set_hash, muhash_of(expected).digest())
        self.assertEqual(manifest.output_count, len(expected))
        stored, masternodes = self.successResultOf(storage.snapshot_manifest())
        self.assertEqual(SnapshotManifest.decode(stored), manifest)
        self.assertEqual(masternodes, b"")
        assembly = SnapshotAssembly(manifest)
        for index in range(len(manifest.chunk_hashes)):
            assembly.add(index, self.successResultOf(storage.snapshot_chunk(1, index)))
        self.assertEqual(assembly.finish(), manifest.utxo_set_hash)
        self.assertIsNone(self.successResultOf(storage.snapshot_chunk(1, 99)))
        # A cut whose set is not the header's is refused and stores nothing.
        self.failureResultOf(storage.save_snapshot(GENESIS.network.network_id, 2, block.hash,
                                                   3, expected_set_hash=bytes(32)), ValueError)
        self.assertEqual(self.successResultOf(storage.snapshot_heights()), [1])
        self.assertIsNone(self.successResultOf(storage.snapshot_manifest(5)))

    def test_only_the_newest_two_snapshots_are_kept(self):
        storage, meta = self.open()
        block = self.commit_block_one(storage, meta)
        for height in (1, 2, 3):  # the same set, stored under three heights
            storage._transaction(snapshot_tables.write_snapshot, storage._conn,
                                 GENESIS.network.network_id, height, block.hash, 4)
        self.assertEqual(self.successResultOf(storage.snapshot_heights()), [3, 2])
        self.assertIsNone(self.successResultOf(storage.snapshot_chunk(1, 0)))
        self.assertIsNotNone(self.successResultOf(storage.snapshot_chunk(2, 0)))

    def test_a_snapshot_is_installed_into_a_fresh_database_atomically(self):
        storage, meta = self.open()
        block = self.commit_block_one(storage, meta)
        manifest = self.successResultOf(storage.save_snapshot(
            GENESIS.network.network_id, 1, block.hash, 4))
        outputs = list(snapshot_tables.set_after_block(storage._conn, 1))
        row = self.successResultOf(storage.run_db(lambda c: c.execute(
            "SELECT height, hash, header, body, certificate, committed_at FROM blocks "
            "WHERE height = 1").fetchone()))
        rows = self.successResultOf(storage.load_masternodes())
        storage._close_now()
        self.path = os.path.join(os.path.dirname(self.path), "fresh", "chain.sqlite3")
        os.makedirs(os.path.dirname(self.path))
        fresh, _ = self.open()
        self.assertEqual(self.successResultOf(fresh.snapshot_base()), 0)
        installed = snapshot_tables.InstalledSnapshot(
            manifest, outputs, muhash_of(outputs), tuple(row), rows, [(1, {b"\x05" * 32: 7})])
        self.successResultOf(fresh.install_snapshot(installed))
        self.assertEqual(self.successResultOf(fresh.snapshot_base()), 1)
        summary = self.successResultOf(fresh.compute_set_summary())
        self.assertEqual(summary[0], manifest.utxo_set_hash.hex())
        self.assertEqual(summary[1], len(outputs))
        self.assertEqual(self.successResultOf(fresh.load_block_sets()),
                         [(1, {b"\x05" * 32: 7})])
        # A second install is refused and changes nothing.
        self.failureResultOf(fresh.install_snapshot(installed), ValueError)
        fresh._close_now()
        # --check-db finds no damage: the journal is not the tables' fold there.
        results = check_database(self.path, GENESIS.hash)
        self.assertEqual([r.problem for r in results if r.problem is not None], [])
        reopened, meta = self.open()
        self.assertEqual(meta.snapshot_base, 1)
        self.assertEqual(meta.muhash.digest(), manifest.utxo_set_hash)
        self.assertEqual(meta.count, len(outputs))

    def test_migration_to_snapshots_from_every_older_version(self):
        directory = os.path.dirname(self.path)
        for version in range(1, schema_files()[-1][0]):
            self.path = os.path.join(directory, f"from-{version}", "chain.sqlite3")
            os.makedirs(os.path.dirname(self.path))
            storage, _ = self.open()
            storage._close_now()
            downgrade_schema(self.path, version)
            storage, meta = self.open()
            self.assertIn(f"database schema migrated to version {schema_files()[-1][0]}",
                          storage.notes, version)
            self.assertEqual(self.successResultOf(storage.snapshot_heights()), [], version)
            block = self.commit_block_one(storage, meta)
            self.successResultOf(storage.save_snapshot(GENESIS.network.network_id, 1,
                                                       block.hash, 8))
            self.assertEqual(self.successResultOf(storage.snapshot_heights()), [1], version)
            storage._close_now()
