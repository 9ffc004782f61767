"""Proofs from a node's chain: the hand-offs noted block by block
(:class:`ChainProofs`), and ``getfinalityproof``'s errors for a transaction
that is in no block (unknown, pending, rejected, finalized but not in a
block yet)."""

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.proof_support import SignedChain
from tests.support import ManualFinality, devnet_funding, sync_node, transfer
from timecoin.api.rpc import RpcError, RpcMethods
from timecoin.interfaces import IFinalityProofs
from timecoin.proofs.source import ChainProofs, ProofUnavailable
from timecoin.proofs.verify import verify_proof


def results(d):
    out = []
    d.addBoth(out.append)
    return out[0]


class ChainProofsTests(unittest.TestCase):
    def setUp(self):
        self.chain = SignedChain(masternodes=4)
        self.proofs = ChainProofs(self.chain.genesis)
        verifyObject(IFinalityProofs, self.proofs)
        genesis_set = dict(self.chain.in_force)
        grown = {**genesis_set, self.chain.add_key(5): 100}
        self.chain.add_block()  # 1: the genesis set signs, no change
        self.chain.add_block(new_set=grown)  # 2: a Silver masternode joins
        self.chain.add_block()  # 3: signed by the grown set
        self.chain.add_block(new_set=genesis_set)  # 4: it leaves again
        self.chain.add_block()  # 5

    def note_all(self, skip_set_at=()):
        before = self.chain.genesis.masternode_set_hash()
        for block, certificate, after in self.chain.records:
            changed = block.header.masternode_set_hash != before
            given = after if changed and block.height not in skip_set_at else None
            self.proofs.note_block(block, certificate, given)
            before = block.header.masternode_set_hash

    def proof_at(self, height, index=0):
        block, certificate, _ = self.chain.records[height - 1]
        return self.proofs.proof(block, certificate, block.all_txids[index])

    def test_every_block_gets_a_proof_with_the_handoffs_below_it(self):
        self.note_all()
        self.assertEqual(self.proofs.handoff_heights(), [2, 4])
        self.assertEqual(self.proofs.missing_sets(), [])
        for height, handoffs in ((1, []), (2, []), (3, [2]), (4, [2]), (5, [2, 4])):
            proof = self.proof_at(height, index=1)
            self.assertEqual([h.header.height for h in proof.handoffs], handoffs, height)
            checked = verify_proof(proof.encode(), self.chain.genesis, proof.txid)
            self.assertEqual(checked.height, height)
        # The same proofs as the builders give from the whole chain.
        self.assertEqual(self.proof_at(5), self.chain.proof(5))

    def test_a_change_without_its_set_stops_proofs_above_it(self):
        self.note_all(skip_set_at={4})
        self.assertEqual(self.proofs.missing_sets(), [4])
        self.assertEqual(self.proof_at(4).height, 4)  # below the gap: fine
        with self.assertRaises(ProofUnavailable) as caught:
            self.proof_at(5)
        self.assertEqual(caught.exception.reason, "missing-set")
        self.assertIn("after block 4", str(caught.exception))

    def test_refusals(self):
        block, certificate, after = self.chain.records[0]
        with self.assertRaises(ProofUnavailable) as caught:
            self.proofs.proof(block, certificate, block.txids[0])
        self.assertEqual(caught.exception.reason, "no-block")  # not noted yet
        self.proofs.note_block(block, certificate, None)
        with self.assertRaises(ProofUnavailable) as caught:
            self.proofs.proof(block, certificate, b"\x42" * 32)
        self.assertEqual(caught.exception.reason, "txid-not-in-block")
        two, two_certificate, grown = self.chain.records[1]
        with self.assertRaises(ValueError):  # a set that is not the header's
            self.proofs.note_block(two, two_certificate, after)
        with self.assertRaises(ValueError):  # not the next height
            self.proofs.note_block(self.chain.records[2][0], self.chain.records[2][1], None)
        self.proofs.note_block(two, two_certificate, grown)
        self.assertEqual(self.proofs.handoff_heights(), [2])


KEY0, OP0, AMOUNT0 = devnet_funding(0)
TO = devnet_funding(9)[0].key_hash


class ProofRpcErrorTests(unittest.TestCase):
    """A node without blocks: every transaction is in no block, each says why."""

    def setUp(self):
        self.finality = ManualFinality()
        self.node = sync_node(self, Clock(), self.finality)
        self.node.startService()
        self.addCleanup(self.node.stopService)
        self.rpc = RpcMethods(self.node)

    def error(self, txid):
        failure = results(self.rpc.call("getfinalityproof", [txid.hex()]))
        self.assertIsInstance(failure.value, RpcError, failure)
        self.assertEqual(failure.value.code, -5)
        return failure.value.message

    def test_unknown_pending_rejected_and_finalized_not_in_a_block(self):
        self.assertEqual(self.error(b"\xab" * 32), "transaction not found: " + "ab" * 32)
        tx = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        results(self.node.submit(tx))
        self.assertEqual(self.error(tx.txid), f"transaction {tx.txid.hex()} is pending: not "
                                              "final yet, so in no block")
        self.finality.decide(tx.txid, True)
        self.assertEqual(self.error(tx.txid), f"transaction {tx.txid.hex()} is finalized but "
                                              "not in a block yet: ask again after the next "
                                              "block")
        other = transfer(KEY0, [OP0], [(AMOUNT0 // 3, TO)], total=AMOUNT0)
        results(self.node.submit(other))  # spends a spent coin: refused at entry
        message = self.error(other.txid)
        self.assertTrue(message.startswith(f"transaction {other.txid.hex()} was rejected ("),
                        message)
        self.assertTrue(message.endswith("): it is in no block"), message)
