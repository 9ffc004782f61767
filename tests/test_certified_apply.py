"""Certified apply at the node layer: a block whose certificate verified is
applied with the bodies that came with it (``NodeBlocks``, ``plan_certified``)."""

from types import SimpleNamespace

from prometheus_client import generate_latest
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import ManualFinality, devnet_funding, sync_node, transfer
from timecoin.consensus.certificate import CommitCertificate
from timecoin.interfaces import IBlockApplyHost, IBlockHost, IJournal
from timecoin.ledger.checkpoint import CertifiedBodyError
from timecoin.ledger.tx import OutPoint, decode_tx
from timecoin.ledger.utxo import UtxoStatus
from timecoin.node.blocks import NodeBlocks
from timecoin.node.certified import InputsNotLoaded, plan_certified
from timecoin.storage.journal import JournalWriter

KEY0, OP0, AMOUNT0 = devnet_funding(0)
KEY1, OP1, AMOUNT1 = devnet_funding(1)
TO = devnet_funding(9)[0].key_hash
PROPOSER = b"p" * 32


def result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


class CertifiedNode:
    """A node whose finality the test decides, with its ``NodeBlocks`` host."""

    def __init__(self, testcase):
        self.clock = Clock()
        self.finality = ManualFinality(accepts_conflicts=True)
        self.node = sync_node(testcase, self.clock, self.finality)
        self.node.startService()
        testcase.addCleanup(self.node.stopService)
        node = self.node
        self.host = NodeBlocks(self.clock, node.chain, node.block_ledger, node.state,
                               node.journal, node.storage, node.finality, node.proofs,
                               node.mempool, apply_host=node)

    def submit(self, *txs):
        for tx in txs:
            if result(self.node.submit(tx)) != tx.txid:
                raise AssertionError(f"{tx.txid.hex()} was refused")

    def status(self, txid):
        return result(self.node.queries.transaction_status(txid))

    def check(self, block, bodies):
        """``check_block`` with bodies; inputs not in memory load (synchronous
        storage) and it is checked again."""
        try:
            self.host.check_block(block, lambda round_: PROPOSER, self.clock.seconds(),
                                  bodies=bodies)
        except InputsNotLoaded:
            self.host.check_block(block, lambda round_: PROPOSER, self.clock.seconds(),
                                  bodies=bodies)

    def commit(self, block, bodies):
        certificate = CommitCertificate(block.height, 0, block.hash, ())
        outcome = result(self.host.commit_block(block, certificate, bodies))
        if isinstance(outcome, Failure):
            outcome.raiseException()


class CertifiedApplyTests(unittest.TestCase):
    def setUp(self):
        self.a = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        change = self.a.outputs[1].amount
        # Spends a's change: the same block holds parent and child.
        self.child = transfer(KEY0, [OutPoint(self.a.txid, 1)], [(change // 2, TO)],
                              total=change)
        self.c = transfer(KEY1, [OP1], [(AMOUNT1 // 2, TO)], total=AMOUNT1)
        self.b = transfer(KEY0, [OP0], [(AMOUNT0 // 3, TO)], total=AMOUNT0)  # a's rival
        self.ahead = CertifiedNode(self)
        self.ahead.submit(self.a, self.c)
        self.ahead.finality.decide(self.a.txid, True)
        self.ahead.submit(self.child)
        self.ahead.finality.decide(self.child.txid, True)
        self.ahead.finality.decide(self.c.txid, True)
        self.block = self.ahead.host.build_block(0, PROPOSER, self.ahead.clock.seconds())
        self.assertEqual(self.block.txids, (self.a.txid, self.child.txid, self.c.txid))
        self.bodies = (self.a.raw, self.child.raw, self.c.raw)
        self.ahead.check(self.block, self.bodies)
        self.ahead.commit(self.block, self.bodies)

    def test_interfaces(self):
        verifyObject(IBlockHost, self.ahead.host)
        verifyObject(IBlockApplyHost, self.ahead.node)

    def test_the_bodies_of_a_committed_block_are_served(self):
        self.assertEqual(result(self.ahead.host.block_bodies(1)), self.bodies)
        self.assertIsNone(result(self.ahead.host.block_bodies(2)))

    def test_transactions_unknown_here_are_entered_and_confirmed(self):
        behind = CertifiedNode(self)
        behind.check(self.block, self.bodies)
        behind.commit(self.block, self.bodies)
        for tx in (self.a, self.child, self.c):
            status = behind.status(tx.txid)
            self.assertEqual((status["status"], status["block_height"]), ("confirmed", 1))
            self.assertIsNotNone(behind.node.journal.find(tx.txid))
        self.assertEqual(behind.node.state.set_hash(), self.ahead.node.state.set_hash())
        self.assertEqual(behind.node.chain.block_at(1).hash, self.block.hash)
        self.assertEqual(len(behind.node.block_ledger), 0)
        # Never polled: finality did not start them, and a copy is refused.
        self.assertEqual(behind.finality.started, {})
        failure = result(behind.node.submit(self.a))
        self.assertIsInstance(failure, Failure)
        self.assertEqual(failure.value.code, "already-known")

    def test_a_pending_transaction_is_decided_by_the_block_its_rival_rejected(self):
        behind = CertifiedNode(self)
        behind.submit(self.b, self.a)  # a is a contender of b, both pending
        behind.finality.conflicts = {self.a.txid: [self.b.txid], self.b.txid: [self.a.txid]}
        behind.check(self.block, self.bodies)
        behind.commit(self.block, self.bodies)
        self.assertEqual(behind.status(self.a.txid)["status"], "confirmed")
        lost = behind.status(self.b.txid)
        self.assertEqual((lost["status"], lost["reason"]),
                         ("rejected", "conflict: decided by block 1"))
        self.assertEqual(behind.node.state.get(OP0).status, UtxoStatus.CONFIRMED)
        self.assertEqual(behind.node.state.set_hash(), self.ahead.node.state.set_hash())

    def test_an_unknown_transaction_wins_over_a_rival_pending_here(self):
        behind = CertifiedNode(self)
        behind.submit(self.b)  # polled here; the block has a instead
        behind.finality.polled.add(self.b.txid)
        behind.check(self.block, self.bodies)
        behind.commit(self.block, self.bodies)
        self.assertEqual(behind.status(self.a.txid)["status"], "confirmed")
        self.assertEqual(behind.status(self.b.txid)["reason"], "conflict: decided by block 1")
        self.assertEqual(behind.node.state.set_hash(), self.ahead.node.state.set_hash())

    def test_bodies_out_of_order_are_refused(self):
        behind = CertifiedNode(self)
        with self.assertRaises(CertifiedBodyError):
            behind.check(self.block, (self.child.raw, self.a.raw, self.c.raw))
        with self.assertRaises(CertifiedBodyError):
            behind.check(self.block, self.bodies[:2])
        self.assertEqual(behind.node.chain.height(), 0)

    def test_a_conflict_with_a_finalized_transaction_is_a_safety_incident(self):
        behind = CertifiedNode(self)
        behind.submit(self.b)
        behind.finality.decide(self.b.txid, True)  # forced: honest stake cannot
        change = self.b.outputs[1].amount
        b_child = transfer(KEY0, [OutPoint(self.b.txid, 1)], [(change // 2, TO)], total=change)
        behind.submit(b_child)
        behind.finality.decide(b_child.txid, True)  # a finalized descendant
        b_grandchild_pending = transfer(KEY0, [OutPoint(b_child.txid, 1)],
                                        [(change // 8, TO)],
                                        total=b_child.outputs[1].amount)
        behind.submit(b_grandchild_pending)  # pending, spending the descendant
        node = behind.node
        self.assertEqual(behind.status(self.b.txid)["status"], "finalized")
        for _ in range(2):  # checked again: nothing happens until the commit
            behind.check(self.block, self.bodies)
        self.assertEqual(node.safety_incidents, 0)
        behind.commit(self.block, self.bodies)
        self.assertEqual(node.safety_incidents, 1)
        self.assertIn(f"block 1 confirms {self.a.txid.hex()}", node.safety_incident)
        self.assertIn(self.b.txid.hex(), node.safety_incident)
        health = node.queries.health()
        self.assertEqual(health["status"], "degraded")
        self.assertTrue(any("safety incident" in p for p in health["problems"]))
        text = generate_latest(node.metrics.registry).decode()
        self.assertIn("timecoin_safety_incidents_total 1.0", text)
        # The block wins: applied, the local transaction and its descendants unwound.
        self.assertEqual(node.chain.height(), 1)
        for tx in (self.a, self.child, self.c):
            self.assertEqual(behind.status(tx.txid)["status"], "confirmed")
        for tx in (self.b, b_child, b_grandchild_pending):
            status = behind.status(tx.txid)
            self.assertEqual(status["status"], "rejected")
            self.assertTrue(status["reason"].startswith(
                f"safety incident: block 1 confirms {self.a.txid.hex()}"), status["reason"])
            self.assertFalse(node.decision(tx.txid))
            self.assertIsNone(node.journal.find(tx.txid))
        self.assertEqual(len(node.block_ledger), 0)
        self.assertEqual(len(node.mempool), 0)
        self.assertEqual(node.state.set_hash(), self.ahead.node.state.set_hash())
        self.assertEqual(node.state.total_amount, self.ahead.node.state.total_amount)
        self.assertEqual(node.state.count, self.ahead.node.state.count)
        self.assertIsNone(node.state.get(OutPoint(self.b.txid, 0)))


class PlanTests(unittest.TestCase):
    """Bad bodies, checked without a block service."""

    def setUp(self):
        self.node = CertifiedNode(self).node

    def plan(self, *txs):
        block = SimpleNamespace(txids=tuple(tx.txid for tx in txs), height=1)
        bodies = tuple(tx.raw for tx in txs)
        args = (block, bodies, self.node.network.network_id, self.node.block_ledger,
                self.node.state)
        try:
            return plan_certified(*args)
        except InputsNotLoaded as e:
            self.node.state.load(result(self.node.storage.load_utxos(list(e.outpoints))))
            return plan_certified(*args, loaded=frozenset(e.outpoints))

    def test_a_valid_transfer_plans(self):
        tx = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        plan = self.plan(tx)
        self.assertEqual(list(plan.items), [tx.txid])
        self.assertEqual(plan.incidents, ())

    def test_a_bad_signature_is_refused(self):
        tx = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        raw = bytearray(tx.raw)
        offset = raw.index(tx.inputs[0].signature)
        raw[offset] ^= 1
        forged = decode_tx(bytes(raw))
        with self.assertRaises(CertifiedBodyError) as caught:
            self.plan(forged)
        self.assertIn("signature", str(caught.exception))

    def test_an_input_of_another_key_is_refused(self):
        tx = transfer(KEY1, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        with self.assertRaises(CertifiedBodyError):
            self.plan(tx)

    def test_a_missing_output_is_refused(self):
        tx = transfer(KEY0, [OutPoint(b"\x99" * 32, 0)], [(1000, TO)])
        with self.assertRaises(CertifiedBodyError) as caught:
            self.plan(tx)
        self.assertIn("not unspent here", str(caught.exception))

    def test_one_output_spent_twice_in_the_block_is_refused(self):
        a = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        b = transfer(KEY0, [OP0], [(AMOUNT0 // 3, TO)], total=AMOUNT0)
        with self.assertRaises(CertifiedBodyError) as caught:
            self.plan(a, b)
        self.assertIn("spent twice", str(caught.exception))

    def test_outputs_above_inputs_are_refused(self):
        tx = transfer(KEY0, [OP0], [(AMOUNT0 + 1, TO)])
        with self.assertRaises(CertifiedBodyError):
            self.plan(tx)


class StoredBodiesTests(unittest.TestCase):
    def test_bodies_no_longer_in_memory_are_read_from_storage(self):
        a = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        ahead = CertifiedNode(self)
        ahead.submit(a)
        ahead.finality.decide(a.txid, True)
        block = ahead.host.build_block(0, PROPOSER, ahead.clock.seconds())
        ahead.check(block, (a.raw,))
        ahead.commit(block, (a.raw,))
        result(ahead.node.journal.drain())
        stored = result(ahead.node.storage.block_transactions(1))
        self.assertEqual(stored[a.txid], a.raw)
        self.assertIn(block.reward_tx.txid, stored)
        # A host over a journal that remembers nothing reads them back.
        journal = JournalWriter(ahead.clock, ahead.node.storage, recent_max=0)
        verifyObject(IJournal, journal)
        self.assertIsNone(journal.find(a.txid))
        forgetful = NodeBlocks(ahead.clock, ahead.node.chain, ahead.node.block_ledger,
                               ahead.node.state, journal,
                               ahead.node.storage, ahead.finality, ahead.node.proofs,
                               ahead.node.mempool)
        self.assertEqual(result(forgetful.block_bodies(1)), (a.raw,))
