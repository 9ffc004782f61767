"""The masternode registry: pending changes, the active set at block boundaries,
the set hash, the genesis registrations and their storage (with the migration
from a version-1 database)."""


from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import StorageFileTestCase, downgrade_schema
from tests.test_registration import MASTERNODE, OWNER, registration
from timecoin.interfaces import IMasternodeRegistry
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET, MAINNET, TESTNET
from timecoin.ledger.registration import BRONZE, GOLD, Registration
from timecoin.ledger.registry import DEACTIVATION_BLOCKS, MasternodeRegistry
from timecoin.ledger.tx import OutPoint, TxRejected, sign_registration, sign_transfer
from timecoin.ledger.utxo import UtxoEntry
from timecoin.storage import masternode_tables
from timecoin.storage.store import JournalRecord, encode_undo, schema_files

GENESIS = make_genesis(DEVNET, 3)
NET = DEVNET.network_id


def spend(outpoint, key=OWNER, amount=BRONZE.collateral - 10_000):
    return sign_transfer(key, [outpoint], [(amount, key.key_hash)], NET)


class RegistryStateTests(unittest.TestCase):
    def setUp(self):
        self.registry = MasternodeRegistry.from_genesis(GENESIS)

    def test_provides_its_interface(self):
        verifyObject(IMasternodeRegistry, self.registry)

    def test_genesis_set_is_active_at_height_zero(self):
        keys = [PrivateKey.devnet(i).pubkey for i in range(3)]
        self.assertEqual(self.registry.active_set(), {k: BRONZE.weight for k in sorted(keys)})
        for entry in self.registry.entries():
            self.assertEqual(entry.registered_height, 0)
            self.assertEqual(GENESIS.txs[1].outputs[entry.collateral.vout].amount,
                             BRONZE.collateral)

    def test_registration_is_pending_until_a_block_confirms_it(self):
        tx = registration(GOLD)
        before = self.registry.masternode_set_hash()
        self.registry.check_registration(tx)
        self.assertTrue(self.registry.finalized(tx))
        entry = self.registry.get(MASTERNODE.pubkey)
        self.assertEqual((entry.tier, entry.registered_height, entry.collateral),
                         ("gold", None, OutPoint(tx.txid, 0)))
        self.assertNotIn(MASTERNODE.pubkey, self.registry.active_set())
        self.assertEqual(self.registry.masternode_set_hash(), before)
        changes = self.registry.apply_block(1, [tx])
        self.assertEqual(changes["joined"], [MASTERNODE.pubkey])
        self.assertEqual(self.registry.active_set()[MASTERNODE.pubkey], GOLD.weight)
        self.assertEqual(self.registry.get(MASTERNODE.pubkey).registered_height, 1)
        self.assertNotEqual(self.registry.masternode_set_hash(), before)

    def test_duplicate_masternode_key_is_refused_and_ignored(self):
        tx = registration()
        self.registry.finalized(tx)
        again = registration(extra_outputs=[(1, OWNER.key_hash)])
        e = self.assertRaises(TxRejected, self.registry.check_registration, again)
        self.assertEqual(e.code, "masternode-registered")
        self.assertFalse(self.registry.finalized(again))
        self.registry.apply_block(1, [tx, again])
        self.assertEqual(self.registry.get(MASTERNODE.pubkey).collateral, OutPoint(tx.txid, 0))
        genesis_key = PrivateKey.devnet(0)
        taken = sign_registration(OWNER, [OutPoint(b"\1" * 32, 0)],
                                  [(BRONZE.collateral, OWNER.key_hash)], NET,
                                  Registration(BRONZE.code, 0, genesis_key.pubkey,
                                               OWNER.key_hash), genesis_key)
        e = self.assertRaises(TxRejected, self.registry.check_registration, taken)
        self.assertEqual(e.code, "masternode-registered")

    def test_spending_the_collateral_deregisters_at_the_next_block(self):
        key = PrivateKey.devnet(1)
        entry = self.registry.get(key.pubkey)
        out = spend(entry.collateral, key)
        self.assertTrue(self.registry.finalized(out))
        self.assertTrue(self.registry.get(key.pubkey).leaving)
        self.assertIn(key.pubkey, self.registry.active_set())  # until a block confirms it
        changes = self.registry.apply_block(1, [out])
        self.assertEqual(changes["left"], [key.pubkey])
        self.assertIsNone(self.registry.get(key.pubkey))
        self.assertNotIn(key.pubkey, self.registry.active_set())
        # The key may register again afterwards, with new collateral.
        self.registry.check_registration(sign_registration(
            OWNER, [OutPoint(b"\2" * 32, 0)], [(BRONZE.collateral, OWNER.key_hash)], NET,
            Registration(BRONZE.code, 0, key.pubkey, OWNER.key_hash), key))

    def test_register_and_spend_in_one_block(self):
        tx = registration()
        out = spend(OutPoint(tx.txid, 0))
        changes = self.registry.apply_block(4, [tx, out])  # never seen finalizing here
        self.assertEqual((changes["joined"], changes["left"]),
                         ([MASTERNODE.pubkey], [MASTERNODE.pubkey]))
        self.assertIsNone(self.registry.get(MASTERNODE.pubkey))

    def test_deactivation_takes_weight_out_of_the_set(self):
        key = PrivateKey.devnet(2)
        changes = self.registry.apply_block(1, [], deactivations=[key.pubkey, rb"\9" * 32])
        self.assertEqual(changes["deactivated"], [key.pubkey])
        self.assertNotIn(key.pubkey, self.registry.active_set())
        self.assertIsNotNone(self.registry.get(key.pubkey))

    def test_a_deactivated_masternode_rejoins_after_the_period_and_survives_rows(self):
        key = PrivateKey.devnet(2)
        self.registry.apply_block(5, [], deactivations=[key.pubkey])
        self.assertEqual(self.registry.get(key.pubkey).deactivated_at, 5)
        restored = MasternodeRegistry.from_rows(self.registry.rows())
        self.assertEqual(restored.rows(), self.registry.rows())
        for registry in (self.registry, restored):
            for height in range(6, 5 + DEACTIVATION_BLOCKS):
                self.assertEqual(registry.apply_block(height, [])["rejoined"], [])
                self.assertNotIn(key.pubkey, registry.active_set())
            changes = registry.apply_block(5 + DEACTIVATION_BLOCKS, [])
            self.assertEqual(changes["rejoined"], [key.pubkey])
            self.assertIn(key.pubkey, registry.active_set())
            self.assertFalse(registry.get(key.pubkey).deactivated)

    def test_set_hash_is_canonical(self):
        a = MasternodeRegistry.from_genesis(GENESIS)
        b = MasternodeRegistry.from_rows(list(reversed(a.rows())))
        self.assertEqual(a.masternode_set_hash(), b.masternode_set_hash())
        self.assertEqual(a.rows(), b.rows())
        self.assertNotEqual(a.masternode_set_hash(),
                            MasternodeRegistry.from_genesis(make_genesis(DEVNET, 2))
                            .masternode_set_hash())

    def test_described_fields(self):
        self.registry.finalized(registration())
        described = {mn["pubkey"]: mn for mn in self.registry.describe(NET)}
        mn = described[MASTERNODE.pubkey.hex()]
        self.assertEqual(set(mn), {"pubkey", "address", "tier", "weight", "collateral",
                                   "reward_address", "registered_height", "active", "leaving",
                                   "missed_service"})
        self.assertEqual((mn["tier"], mn["weight"], mn["active"], mn["registered_height"]),
                         ("bronze", 10, False, None))


class GenesisRegistrationTests(unittest.TestCase):
    def test_devnet_registers_the_first_n_dev_keys_with_collateral(self):
        for n in (1, 4, 10):
            genesis = make_genesis(DEVNET, n)
            self.assertEqual(genesis.masternodes,
                             tuple(PrivateKey.devnet(i).pubkey for i in range(n)))
            funding, collateral = genesis.txs
            for i, reg in enumerate(genesis.registrations):
                self.assertEqual(reg.collateral, OutPoint(collateral.txid, i))
                self.assertEqual(collateral.outputs[i].key_hash, PrivateKey.devnet(i).key_hash)
                self.assertEqual(collateral.outputs[i].amount, BRONZE.collateral)
            self.assertEqual(genesis.total_supply,
                             funding.output_total + n * BRONZE.collateral)

    def test_genesis_hash_covers_the_registrations(self):
        self.assertNotEqual(make_genesis(DEVNET, 2).hash, make_genesis(DEVNET, 3).hash)

    def test_testnet_and_mainnet(self):
        self.assertEqual(len(make_genesis(TESTNET).registrations), 3)
        self.assertEqual(make_genesis(MAINNET).registrations, ())


class RegistryStorageTests(StorageFileTestCase, unittest.TestCase):
    genesis = GENESIS

    def test_fresh_database_holds_the_genesis_registrations(self):
        _, meta = self.open()
        self.assertEqual(meta.masternodes, MasternodeRegistry.from_genesis(GENESIS).rows())

    def test_folded_journal_matches_the_registry(self):
        storage, meta = self.open()
        key = PrivateKey.devnet(1)
        funding = OutPoint(GENESIS.txs[0].txid, 5)
        reg = sign_registration(OWNER, [funding], [(BRONZE.collateral, OWNER.key_hash)], NET,
                                Registration(BRONZE.code, 0, MASTERNODE.pubkey,
                                             OWNER.key_hash), MASTERNODE)
        out = spend(MasternodeRegistry.from_genesis(GENESIS).get(key.pubkey).collateral, key)
        memory = MasternodeRegistry.from_genesis(GENESIS)
        spent = {reg: UtxoEntry(funding, GENESIS.txs[0].outputs[5].amount, OWNER.key_hash),
                 out: UtxoEntry(out.inputs[0].prevout, BRONZE.collateral, key.key_hash)}
        records = []
        for seq, tx in enumerate((reg, out), start=meta.last_seq + 1):
            memory.finalized(tx)
            records.append(JournalRecord(seq, tx.txid, tx.raw, encode_undo([spent[tx]]),
                                         1.0, 1.0))
        storage._append_now(records)
        storage.apply_journal_now(records[-1].seq)
        self.assertEqual(storage._conn.execute("SELECT COUNT(*) FROM masternodes").fetchone(),
                         (4,))
        self.assertEqual(masternode_tables.read_rows(storage._conn), memory.rows())
        # After a block the block layer replaces the rows.
        memory.apply_block(1, [reg, out])
        storage._transaction(masternode_tables.replace_rows, storage._conn, memory.rows())
        storage._close_now()
        _, meta = self.open()
        self.assertEqual(MasternodeRegistry.from_rows(meta.masternodes).active_set(),
                         memory.active_set())

    def test_migration_from_a_version_1_database(self):
        storage, _ = self.open()
        storage._close_now()
        downgrade_schema(self.path, 1)  # no masternodes table, nor the later ones
        storage, meta = self.open()
        self.assertIn("database schema migrated to version 2", storage.notes)
        self.assertIn("masternode table filled with the genesis registrations", storage.notes)
        self.assertEqual(meta.masternodes, MasternodeRegistry.from_genesis(GENESIS).rows())
        version = storage._conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        self.assertEqual(version, schema_files()[-1][0])
        storage._close_now()
        storage, meta = self.open()  # a second open changes nothing
        self.assertEqual(storage.notes, [])
        self.assertEqual(meta.masternodes, MasternodeRegistry.from_genesis(GENESIS).rows())
