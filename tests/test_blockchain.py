"""The chain of committed blocks: heights, lookups by height and hash, the
registry driven by each block, and blocks that do not follow refused whole."""

from dataclasses import replace

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.test_registration import MASTERNODE, registration
from timecoin.interfaces import IBlockConsensus
from timecoin.ledger.block import Block, BlockError, BlockHeader
from timecoin.ledger.blockchain import BlockChain
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.merkle import merkle_root
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.registry import MasternodeRegistry

GENESIS = make_genesis(DEVNET, 3)


class FakeCertificate:
    """A certificate's shape (round, signatures) without the BFT layer."""

    def __init__(self, signatures):
        self.round = 0
        self.signatures = signatures


def next_block(chain, txs, set_hash=None, prev_hash=None, deactivated=()):
    if set_hash is None:
        trial = MasternodeRegistry.from_rows(chain.registry.rows())
        trial.apply_block(chain.height() + 1, txs, deactivated)
        set_hash = trial.masternode_set_hash()
    txids = tuple(tx.txid for tx in txs)
    header = BlockHeader(DEVNET.network_id, chain.height() + 1,
                         prev_hash or chain.best_block_hash(), GENESIS.timestamp + 2, 0,
                         GENESIS.masternodes[0], merkle_root(txids), b"\x00" * 32, set_hash,
                         0, tuple(deactivated))
    return Block(header, txids)


class BlockChainTests(unittest.TestCase):
    def setUp(self):
        self.chain = BlockChain(GENESIS)

    def test_provides_its_interface(self):
        verifyObject(IBlockConsensus, self.chain)

    def test_starts_at_the_genesis(self):
        self.assertEqual(self.chain.height(), 0)
        self.assertEqual(self.chain.best_block_hash(), GENESIS.hash)
        self.assertEqual(self.chain.get_block(0)["hash"], GENESIS.hash.hex())
        self.assertEqual(self.chain.get_block(GENESIS.hash.hex())["height"], 0)
        self.assertIsNone(self.chain.get_block(1))
        self.assertEqual(self.chain.get_block_header(0)["commit"], [])

    def test_a_block_confirms_a_registration_and_changes_the_active_set(self):
        reg = registration()
        self.chain.registry.finalized(reg)
        self.assertNotIn(MASTERNODE.pubkey, self.chain.registry.active_set())
        block = next_block(self.chain, [reg])
        signatures = ((GENESIS.masternodes[0], b"\x01" * 64),)
        changes = self.chain.append(block, FakeCertificate(signatures), [reg])
        self.assertEqual(changes["joined"], [MASTERNODE.pubkey])
        self.assertIn(MASTERNODE.pubkey, self.chain.registry.active_set())
        self.assertEqual(self.chain.height(), 1)
        self.assertEqual(self.chain.best_block_hash(), block.hash)
        self.assertEqual(self.chain.get_block(block.hash.hex())["txids"], [reg.txid.hex()])
        self.assertEqual(self.chain.get_block(block.hash), self.chain.get_block(1))
        header = self.chain.get_block_header(1)
        self.assertEqual(header["commit"], [{"pubkey": GENESIS.masternodes[0].hex(),
                                             "signature": "01" * 64}])
        self.assertNotIn("txids", header)

    def test_deactivation_leaves_the_active_set(self):
        victim = GENESIS.masternodes[2]
        self.chain.append(next_block(self.chain, [], deactivated=(victim,)),
                          FakeCertificate(()), [])
        self.assertNotIn(victim, self.chain.registry.active_set())

    def test_blocks_that_do_not_follow_are_refused_whole(self):
        reg = registration()
        self.chain.registry.finalized(reg)
        before = self.chain.registry.rows()
        cert = FakeCertificate(())
        self.assertRaises(BlockError, self.chain.append,
                          next_block(self.chain, [reg], prev_hash=b"\x09" * 32), cert, [reg])
        self.assertRaises(BlockError, self.chain.append,
                          next_block(self.chain, [reg], set_hash=b"\x09" * 32), cert, [reg])
        self.assertRaises(BlockError, self.chain.append, next_block(self.chain, [reg]), cert, [])
        block = next_block(self.chain, [reg])
        self.assertRaises(BlockError, self.chain.append,
                          Block(replace(block.header, height=2), block.txids), cert, [reg])
        self.assertEqual(self.chain.height(), 0)
        self.assertEqual(self.chain.registry.rows(), before)
