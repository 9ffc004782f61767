"""The ledger side of blocks: the Merkle tree of txids, the emission schedule,
the reward split and transaction, the header encoding, and the supply invariant."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial import unittest

from timecoin.ledger.block import Block, BlockError, BlockHeader
from timecoin.ledger.emission import (
    ERA_S,
    YEAR_S,
    YEARLY_EMISSION,
    base_reward,
    block_reward,
    check_reward,
    reward_transaction,
    split_by_weight,
    total_emission,
)
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.merkle import leaf_hash, merkle_path, merkle_root, verify_path
from timecoin.ledger.networks import DEVNET, MAINNET, MAX_SUPPLY, NETWORKS, TESTNET
from timecoin.ledger.tx import KIND_BLOCK_REWARD, TxRejected, check_structure, sign_transfer
from timecoin.ledger.utxo import UtxoSet

txid_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)


def _h(data):
    return hashlib.blake2b(data, digest_size=32).digest()


def reference_root(txids):
    """RFC 6962's recursive definition, written independently."""
    if not txids:
        return _h(b"")
    if len(txids) == 1:
        return _h(b"\x00" + txids[0])
    k = 1
    while k * 2 < len(txids):
        k *= 2
    return _h(b"\x01" + reference_root(txids[:k]) + reference_root(txids[k:]))


class MerkleTests(unittest.TestCase):
    @given(txid_lists)
    def test_root_is_rfc6962(self, txids):
        self.assertEqual(merkle_root(txids), reference_root(txids))

    def test_empty_and_single(self):
        self.assertEqual(merkle_root([]), _h(b""))
        t = bytes(range(32))
        self.assertEqual(merkle_root([t]), leaf_hash(t))
        self.assertEqual(merkle_path([t], 0), [])
        self.assertTrue(verify_path(t, 0, 1, [], merkle_root([t])))

    @given(txid_lists, st.data())
    def test_every_path_verifies_and_only_at_its_position(self, txids, data):
        root = merkle_root(txids)
        index = data.draw(st.integers(0, len(txids) - 1))
        path = merkle_path(txids, index)
        self.assertTrue(verify_path(txids[index], index, len(txids), path, root))
        other = data.draw(st.integers(0, len(txids) - 1))
        if txids[other] != txids[index]:
            self.assertFalse(verify_path(txids[other], index, len(txids), path, root))
        if len(txids) > 1:
            wrong = (index + 1) % len(txids)
            if merkle_path(txids, wrong) != path or txids[wrong] != txids[index]:
                self.assertFalse(verify_path(txids[index], wrong, len(txids), path, root))
            self.assertFalse(verify_path(txids[index], index, 1, path, root))

    def test_no_duplication_collision(self):
        # Bitcoin's tree gives [a, b, c] and [a, b, c, c] one root; this one does not.
        a, b, c = (bytes([i]) * 32 for i in range(3))
        self.assertNotEqual(merkle_root([a, b, c]), merkle_root([a, b, c, c]))

    def test_tampered_path_fails(self):
        txids = [bytes([i]) * 32 for i in range(7)]
        path = merkle_path(txids, 5)
        path[0] = bytes(32)
        self.assertFalse(verify_path(txids[5], 5, 7, path, merkle_root(txids)))
        self.assertRaises(IndexError, merkle_path, txids, 7)


class EmissionTests(unittest.TestCase):
    def test_yearly_emission_is_the_same_on_every_network(self):
        for network in NETWORKS.values():
            per_year = base_reward(network) * (YEAR_S // network.block_interval_s)
            self.assertLessEqual(per_year, YEARLY_EMISSION)
            self.assertGreater(per_year, YEARLY_EMISSION * 0.9999)

    def test_reward_halves_each_era_and_the_genesis_creates_nothing(self):
        for network in (DEVNET, MAINNET):
            last_of_era0 = (ERA_S - 1) // network.block_interval_s
            self.assertEqual(block_reward(network, 0), 0)
            self.assertEqual(block_reward(network, 1), base_reward(network))
            self.assertEqual(block_reward(network, last_of_era0), base_reward(network))
            self.assertEqual(block_reward(network, last_of_era0 + 1), base_reward(network) // 2)

    def test_supply_stays_below_max_supply(self):
        for network in NETWORKS.values():
            genesis = make_genesis(network, 100) if network is DEVNET else make_genesis(network)
            emitted = total_emission(network)
            self.assertLess(emitted, 2 * 4 * YEARLY_EMISSION)
            self.assertGreater(emitted, 2 * 4 * YEARLY_EMISSION * 0.999)
            self.assertLessEqual(genesis.total_supply + emitted, MAX_SUPPLY)

    @given(st.integers(0, 10**15),
           st.lists(st.tuples(st.binary(min_size=20, max_size=20), st.integers(0, 1000)),
                    max_size=30))
    def test_split_sums_to_the_amount_in_proportion(self, amount, recipients):
        shares = split_by_weight(amount, recipients)
        weights = {}
        for key_hash, weight in recipients:
            weights[key_hash] = weights.get(key_hash, 0) + weight
        total = sum(weights.values())
        if total == 0 or amount == 0:
            self.assertEqual(shares, [])
            return
        self.assertEqual(sum(units for _, units in shares), amount)
        for key_hash, units in shares:
            exact = amount * weights[key_hash] / total
            self.assertLess(abs(units - exact), 1.0001)
        self.assertEqual(shares, split_by_weight(amount, list(reversed(recipients))))

    def test_reward_transaction_is_a_distinct_kind_never_submitted(self):
        recipients = [(PrivateKey.devnet(i).key_hash, 10) for i in range(3)]
        tx = reward_transaction(DEVNET, 5, 1_000, recipients)
        self.assertEqual(tx.kind, KIND_BLOCK_REWARD)
        self.assertEqual(tx.output_total, block_reward(DEVNET, 5) + 1_000)
        self.assertNotEqual(tx.txid, reward_transaction(DEVNET, 6, 1_000, recipients).txid)
        with self.assertRaises(TxRejected) as caught:
            check_structure(tx, DEVNET.network_id)
        self.assertEqual(caught.exception.code, "unsupported-kind")
        check_reward(tx, DEVNET, 5, 1_000, recipients)
        self.assertRaises(ValueError, check_reward, tx, DEVNET, 5, 999, recipients)
        self.assertRaises(ValueError, check_reward, None, DEVNET, 5, 1_000, recipients)
        self.assertIsNone(reward_transaction(DEVNET, 5, 0, []))


def header(**changes):
    fields = dict(network_id=2, height=3, prev_hash=b"\x01" * 32, time=1_767_225_606, round=1,
                  proposer=b"\x02" * 32, tx_root=merkle_root([]), utxo_set_hash=b"\x03" * 32,
                  masternode_set_hash=b"\x04" * 32, reward=6_337_617)
    fields.update(changes)
    return BlockHeader(**fields)


class BlockEncodingTests(unittest.TestCase):
    def test_header_round_trips_and_every_field_changes_the_hash(self):
        h = header(deactivated=(b"\x05" * 32,))
        self.assertEqual(BlockHeader.decode(h.encode()), h)
        for name, value in (("height", 4), ("prev_hash", b"\x09" * 32), ("time", 1),
                            ("round", 0), ("proposer", b"\x09" * 32), ("reward", 1),
                            ("tx_root", b"\x09" * 32), ("utxo_set_hash", b"\x09" * 32),
                            ("masternode_set_hash", b"\x09" * 32), ("deactivated", ())):
            self.assertNotEqual(header(**{name: value}).hash, h.hash, name)
        self.assertEqual(set(h.fields()) >= {"height", "hash", "prev_hash", "time", "round",
                                             "proposer", "tx_root", "utxo_set_hash",
                                             "masternode_set_hash", "reward"}, True)

    def test_block_round_trips_and_checks_its_root(self):
        recipients = [(PrivateKey.devnet(0).key_hash, 10)]
        reward = reward_transaction(DEVNET, 3, 500, recipients)
        txids = (b"\x07" * 32, b"\x08" * 32)
        block = Block(header(tx_root=merkle_root(txids + (reward.txid,))), txids, reward)
        block.check()
        again = Block.decode(block.encode())
        self.assertEqual(again, block)
        self.assertEqual(again.fields()["txids"][-1], reward.txid.hex())
        self.assertRaises(BlockError, Block(block.header, txids[:1], reward).check)
        self.assertRaises(BlockError, Block(block.header, txids + txids[:1], reward).check)
        self.assertRaises(BlockError, Block.decode, block.encode()[:-1])


class SupplyInvariantTests(unittest.TestCase):
    """genesis + rewards = UTXO total at every block, fees included."""

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.one_of(st.just("block"), st.integers(1, 5_000)), max_size=40))
    def test_genesis_plus_rewards_is_the_utxo_total(self, steps):
        genesis = make_genesis(TESTNET)
        state = UtxoSet(Clock())
        for seq, tx in enumerate(genesis.txs):
            state.finalize(tx, seq)
        seq = len(genesis.txs)
        keys = [PrivateKey(bytes([i]) * 32) for i in range(3)]
        recipients = [(k.key_hash, 10 * (i + 1)) for i, k in enumerate(keys)]
        owner = PrivateKey(hashlib.blake2b(b"timecoin testnet faucet " + bytes(4),
                                           digest_size=32).digest())
        coin = genesis.txs[0].outpoints()[0]
        amount = state.get(coin).amount
        height, rewards, fees = 0, 0, 0
        for step in steps:
            seq += 1
            if step == "block":
                height += 1
                reward = reward_transaction(TESTNET, height, fees, recipients)
                state.finalize(reward, seq)
                rewards += block_reward(TESTNET, height)
                fees = 0
                self.assertEqual(state.total_amount, genesis.total_supply + rewards)
                continue
            amount -= step
            tx = sign_transfer(owner, [coin], [(amount, owner.key_hash)], TESTNET.network_id)
            state.check_inputs(tx)
            state.lock(tx)
            state.finalize(tx, seq)
            coin, fees = tx.outpoints()[0], fees + step
            self.assertEqual(state.total_amount, genesis.total_supply + rewards - fees)
