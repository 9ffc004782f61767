"""Blocks decide stalled conflict sets (the node layer, ``NodeBlocks``)."""

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import ManualFinality, devnet_funding, sync_node, transfer
from timecoin.consensus.certificate import CommitCertificate
from timecoin.interfaces import IBlockHost, IFinality
from timecoin.ledger.checkpoint import MissingTransactions
from timecoin.ledger.utxo import UtxoStatus
from timecoin.node.blocks import NodeBlocks, stalled_choice

KEY0, OP0, AMOUNT0 = devnet_funding(0)
KEY1, OP1, AMOUNT1 = devnet_funding(1)
TO = devnet_funding(9)[0].key_hash
PROPOSER = b"p" * 32


def result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


class StalledNode:
    """A node whose finality is decided by the test, holding the conflict set
    ``a``/``b`` (both spend OP0) and the unrelated ``c`` (finalized)."""

    def __init__(self, testcase):
        self.clock = Clock()
        self.finality = ManualFinality(accepts_conflicts=True)
        self.node = sync_node(testcase, self.clock, self.finality)
        self.node.startService()
        testcase.addCleanup(self.node.stopService)
        node = self.node
        self.host = NodeBlocks(self.clock, node.chain, node.block_ledger, node.state,
                               node.journal, node.storage, node.finality, node.proofs,
                               node.mempool)

    def submit(self, *txs):
        for tx in txs:
            if result(self.node.submit(tx)) != tx.txid:
                raise AssertionError(f"{tx.txid.hex()} was refused")

    def status(self, txid):
        return result(self.node.queries.transaction_status(txid))

    def stall(self, a, b):
        self.finality.stalled_reasons[a.txid] = "stalled: test"
        self.finality.conflicts[a.txid] = [b.txid]
        self.finality.conflicts[b.txid] = [a.txid]


class StalledSetDecidedByBlockTests(unittest.TestCase):
    def setUp(self):
        self.a = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        self.b = transfer(KEY0, [OP0], [(AMOUNT0 // 3, TO)], total=AMOUNT0)
        self.c = transfer(KEY1, [OP1], [(AMOUNT1 // 2, TO)], total=AMOUNT1)
        self.proposer = self.make_node()

    def make_node(self):
        node = StalledNode(self)
        node.submit(self.a, self.b, self.c)
        node.finality.decide(self.c.txid, True)
        return node

    def test_interfaces(self):
        verifyObject(IBlockHost, self.proposer.host)
        verifyObject(IFinality, self.proposer.finality)

    def test_the_choice_is_by_confidence_then_a_hash_of_height_and_txid(self):
        x, y = b"x" * 32, b"y" * 32
        self.assertEqual(stalled_choice([(x, 1), (y, 3)], 5), y)
        self.assertEqual(stalled_choice([(x, 3), (y, 1)], 5), x)
        # Ties: not by txid alone; over heights both members win sometimes.
        winners = {stalled_choice([(x, 2), (y, 2)], h) for h in range(1, 40)}
        self.assertEqual(winners, {x, y})
        self.assertEqual(stalled_choice([(x, 2), (y, 2)], 7), stalled_choice([(y, 2), (x, 2)], 7))

    def test_no_stalled_set_no_member_in_the_block(self):
        block = self.proposer.host.build_block(0, PROPOSER, self.proposer.clock.seconds())
        self.assertEqual(block.txids, (self.c.txid,))

    def build_deciding_block(self):
        proposer = self.proposer
        proposer.stall(self.a, self.b)
        block = proposer.host.build_block(0, PROPOSER, proposer.clock.seconds())
        members = [(self.a.txid, 0), (self.b.txid, 0)]
        winner = stalled_choice(members, 1)
        self.assertEqual(block.txids, (self.c.txid, winner))
        return block, winner, self.b.txid if winner == self.a.txid else self.a.txid

    def commit(self, node, block):
        node.host.check_block(block, lambda round_: PROPOSER, node.clock.seconds())
        certificate = CommitCertificate(block.height, 0, block.hash, ())
        self.assertNotIsInstance(result(node.host.commit_block(block, certificate)), Failure)

    def test_a_committed_block_confirms_the_member_and_rejects_its_rivals(self):
        block, winner, loser = self.build_deciding_block()
        self.commit(self.proposer, block)
        self.assert_decided(self.proposer, winner, loser)

    def assert_decided(self, node, winner, loser):
        status = node.status(winner)
        self.assertEqual((status["status"], status["block_height"]), ("confirmed", 1))
        lost = node.status(loser)
        self.assertEqual(lost["status"], "rejected")
        self.assertEqual(lost["reason"], "conflict: decided by block 1")
        self.assertEqual(node.node.state.get(OP0).status, UtxoStatus.CONFIRMED)
        winner_tx = self.a if winner == self.a.txid else self.b
        self.assertIsNotNone(node.node.state.get(winner_tx.outpoints()[0]))
        self.assertNotIn(winner, node.node.block_ledger)
        self.assertEqual(node.node.chain.height(), 1)

    def test_a_validator_with_the_set_pending_accepts_and_follows(self):
        block, winner, loser = self.build_deciding_block()
        validator = self.make_node()  # the set is pending there, not stalled
        validator.finality.conflicts = {self.a.txid: [self.b.txid], self.b.txid: [self.a.txid]}
        self.commit(validator, block)
        self.assert_decided(validator, winner, loser)

    def test_a_validator_that_finalized_a_rival_never_accepts_it(self):
        block, winner, loser = self.build_deciding_block()
        validator = self.make_node()
        validator.finality.decide(loser, True)
        validator.finality.decide(winner, False, "conflict")
        with self.assertRaises(MissingTransactions) as caught:
            validator.host.check_block(block, lambda round_: PROPOSER,
                                       validator.clock.seconds())
        self.assertEqual(caught.exception.txids, (winner,))
        self.assertEqual(validator.status(loser)["status"], "finalized")

    def test_a_lagging_validator_waits_for_transactions_it_still_polls(self):
        # The proposer finalized a and c; the validator still polls both
        # (it was away): more than one pending member is not a bad block,
        # it waits until they finalize here, then accepts.
        self.proposer.finality.decide(self.a.txid, True)
        block = self.proposer.host.build_block(0, PROPOSER, self.proposer.clock.seconds())
        self.assertEqual(set(block.txids), {self.a.txid, self.c.txid})
        validator = StalledNode(self)
        validator.submit(self.a, self.c)
        with self.assertRaises(MissingTransactions):
            validator.host.check_block(block, lambda round_: PROPOSER,
                                       validator.clock.seconds())
        validator.finality.decide(self.c.txid, True)
        validator.finality.decide(self.a.txid, True)
        validator.host.check_block(block, lambda round_: PROPOSER, validator.clock.seconds())

    def test_a_validator_that_answered_yes_for_a_rival_waits_and_never_pins(self):
        block, winner, loser = self.build_deciding_block()
        validator = self.make_node()
        validator.finality.conflicts = {self.a.txid: [self.b.txid], self.b.txid: [self.a.txid]}
        validator.finality.voted_yes.add(loser)
        with self.assertRaises(MissingTransactions) as caught:
            validator.host.check_block(block, lambda round_: PROPOSER,
                                       validator.clock.seconds())
        self.assertEqual(caught.exception.txids, (winner,))
        self.assertEqual(validator.finality.block_votes, [])

    def test_a_validator_pins_the_member_it_votes_a_block_for(self):
        block, winner, loser = self.build_deciding_block()
        validator = self.make_node()
        validator.finality.conflicts = {self.a.txid: [self.b.txid], self.b.txid: [self.a.txid]}
        validator.host.check_block(block, lambda round_: PROPOSER, validator.clock.seconds())
        self.assertEqual(validator.finality.block_votes, [winner])

    def test_only_round_zero_proposals_decide_a_stalled_set(self):
        self.proposer.stall(self.a, self.b)
        block = self.proposer.host.build_block(1, PROPOSER, self.proposer.clock.seconds())
        self.assertEqual(block.txids, (self.c.txid,))
