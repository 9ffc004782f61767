"""BlockLedger: what the next block holds, and checking a proposed one."""

import dataclasses

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import devnet_funding, transfer
from timecoin.interfaces import IBlockLedger
from timecoin.ledger.block import Block, BlockError
from timecoin.ledger.blockchain import BlockChain
from timecoin.ledger.checkpoint import BlockLedger, MissingTransactions, Unconfirmed
from timecoin.ledger.emission import block_reward, reward_transaction
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.merkle import merkle_root
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.utxo import UtxoSet

NOW = 1_767_225_700


class Ledger:
    """A devnet genesis of 4 masternodes, a UTXO set and a block ledger over it."""

    def __init__(self):
        self.genesis = make_genesis(DEVNET, 4)
        self.state = UtxoSet(Clock())
        for seq, tx in enumerate(self.genesis.txs, 1):
            self.state.finalize(tx, seq)
        self.seq = len(self.genesis.txs)
        self.chain = BlockChain(self.genesis)
        self.ledger = BlockLedger(DEVNET, self.chain, self.state.muhash)
        self.keys = [PrivateKey.devnet(i).pubkey for i in range(4)]

    def finalize(self, index, amount=5_000_000):
        key, op, total = devnet_funding(index)
        tx = transfer(key, [op], [(amount, key.key_hash)], total=total)
        spent = [self.state.get(op)]
        self.state.check_inputs(tx)
        self.state.lock(tx)
        self.seq += 1
        self.state.finalize(tx, self.seq)
        self.ledger.add(self.seq, tx, [(e.amount, e.key_hash) for e in spent])
        return tx

    def proposer_of(self, round_):
        return self.keys[round_ % 4]

    def commit(self, block):
        self.chain.append(block, None, self.ledger.transactions(block))
        if block.reward_tx is not None:
            self.seq += 1
            self.state.finalize(block.reward_tx, self.seq)
        self.ledger.applied(block)


class BlockLedgerTests(unittest.TestCase):
    def setUp(self):
        self.l = Ledger()

    def test_provides_its_interface(self):
        verifyObject(IBlockLedger, self.l.ledger)

    def test_a_built_block_holds_what_finalized_in_order_and_checks(self):
        txs = [self.l.finalize(i) for i in (2, 0, 1)]
        block = self.l.ledger.build(0, self.l.keys[0], NOW)
        self.assertEqual(block.txids, tuple(tx.txid for tx in txs))
        self.assertEqual(block.header.height, 1)
        self.assertEqual(block.header.prev_hash, self.l.genesis.hash)
        fees = sum(10_000 for _ in txs)
        self.assertEqual(block.reward_tx.output_total, block_reward(DEVNET, 1) + fees)
        self.assertEqual(block.header.reward, block_reward(DEVNET, 1))
        self.assertEqual(block.header.masternode_set_hash,
                         self.l.chain.registry.masternode_set_hash())
        self.l.ledger.check(block, self.l.proposer_of, NOW)
        self.l.commit(block)
        # With nothing finalized after it, the block's set hash is the node's.
        self.assertEqual(block.header.utxo_set_hash.hex(), self.l.state.set_hash())
        self.assertEqual(self.l.ledger.checkpoint_hash(), block.header.utxo_set_hash)
        self.assertEqual(len(self.l.ledger), 0)

    def test_the_set_hash_is_at_the_block_not_at_what_finalized_since(self):
        self.l.finalize(0)
        block = self.l.ledger.build(0, self.l.keys[0], NOW)
        self.l.finalize(1)  # after the block was built: the next block's
        self.l.ledger.check(block, self.l.proposer_of, NOW)
        self.l.commit(block)
        self.assertNotEqual(block.header.utxo_set_hash.hex(), self.l.state.set_hash())
        following = self.l.ledger.build(0, self.l.keys[1], NOW + 2)
        self.assertEqual(len(following.txids), 1)
        self.l.commit(following)
        self.assertEqual(following.header.utxo_set_hash.hex(), self.l.state.set_hash())

    def test_every_wrong_field_is_refused(self):
        self.l.finalize(0)
        block = self.l.ledger.build(0, self.l.keys[0], NOW)
        header = block.header
        wrong = {
            "network_id": 0, "height": 2, "prev_hash": b"\1" * 32, "proposer": self.l.keys[1],
            "time": NOW + 3600, "utxo_set_hash": b"\2" * 32,
            "masternode_set_hash": b"\3" * 32, "reward": header.reward + 1,
            "deactivated": (self.l.keys[3],),
        }
        for field, value in wrong.items():
            changed = Block(dataclasses.replace(header, **{field: value}), block.txids,
                            block.reward_tx)
            with self.assertRaises(BlockError, msg=field):
                self.l.ledger.check(changed, self.l.proposer_of, NOW)
        # A reward of more than is due, or paid to someone else.
        recipients = [(e.reward_key_hash, e.weight) for e in self.l.chain.registry.entries()]
        for other in (reward_transaction(DEVNET, 1, 10_001, recipients),
                      reward_transaction(DEVNET, 1, 10_000, recipients[:1])):
            txids = block.txids + (other.txid,)
            changed = Block(dataclasses.replace(header, tx_root=merkle_root(txids)),
                            block.txids, other)
            with self.assertRaises(BlockError):
                self.l.ledger.check(changed, self.l.proposer_of, NOW)
        # A transaction left out: the root no longer matches.
        with self.assertRaises(BlockError):
            self.l.ledger.check(Block(header, (), block.reward_tx), self.l.proposer_of, NOW)

    def test_a_transaction_not_finalized_here_is_missing(self):
        self.l.finalize(0)
        other = Ledger()
        other.finalize(0)
        extra = other.finalize(1)
        block = other.ledger.build(0, other.keys[0], NOW)
        with self.assertRaises(MissingTransactions) as caught:
            self.l.ledger.check(block, self.l.proposer_of, NOW)
        self.assertEqual(caught.exception.txids, (extra.txid,))

    def test_restore_rebuilds_the_checkpoint_from_stored_entries(self):
        self.l.finalize(0)
        block = self.l.ledger.build(0, self.l.keys[0], NOW)
        self.l.commit(block)
        txs = [self.l.finalize(i) for i in (1, 2)]
        # A restart: the state's hash includes everything finalized; the
        # unconfirmed entries come back from storage.
        stored = [Unconfirmed(item.seq, item.tx, item.spent, item.fee)
                  for item in (self.l.ledger._pending[t.txid] for t in txs)]
        again = BlockLedger(DEVNET, self.l.chain, self.l.state.muhash)
        again.restore(stored)
        self.assertEqual(again.checkpoint_hash(), block.header.utxo_set_hash)
        self.assertEqual(again.build(0, self.l.keys[1], NOW + 2),
                         self.l.ledger.build(0, self.l.keys[1], NOW + 2))
