"""The node's finality rules: a polled coin is never freed by a lock timeout,
stalled transactions stay pending with a reason, final statuses never change."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import ManualFinality, devnet_funding, sync_node, transfer
from timecoin.ledger.utxo import UtxoStatus

KEY0, OP0, AMOUNT0 = devnet_funding(0)
TO = devnet_funding(9)[0].key_hash


def results(d):
    out = []
    d.addBoth(out.append)
    return out[0]


class LockExpiryTests(unittest.TestCase):
    """Lock expiry applies only to transactions finality can forget."""

    def setUp(self):
        self.clock = Clock()
        self.finality = ManualFinality(accepts_conflicts=True)
        self.node = sync_node(self, self.clock, self.finality,
                              {("state", "lock_timeout_s"): 20})
        self.node.startService()
        self.addCleanup(self.node.stopService)
        self.a = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
        self.b = transfer(KEY0, [OP0], [(AMOUNT0 // 3, TO)], total=AMOUNT0)

    def status(self, txid):
        return results(self.node.queries.transaction_status(txid))

    def test_never_polled_transaction_expires_frees_its_coin_and_is_not_rejected(self):
        events = []
        self.node.events.add_listener(lambda *event: events.append(event))
        self.assertEqual(results(self.node.submit(self.a)), self.a.txid)
        self.clock.advance(25)
        self.assertEqual(self.node.state.get(OP0).status, UtxoStatus.UNSPENT)
        # Dropped, not decided: unknown here, with the reason; no decision published.
        self.assertIsNone(self.status(self.a.txid))
        self.assertTrue(self.node.queries.drop_reason(self.a.txid).startswith("lock-expired"))
        self.assertIsNone(results(self.node.queries.wait_for_transaction(self.a.txid, 10)))
        self.assertEqual(events, [])
        # The network may still finalize it: it enters again (e.g. from catch-up).
        self.assertEqual(results(self.node.submit(self.a)), self.a.txid)
        self.finality.decide(self.a.txid, True)
        self.assertEqual(self.status(self.a.txid)["status"], "finalized")

    def test_eviction_never_frees_a_polled_coin(self):
        self.node.mempool.max_count = 1
        results(self.node.submit(self.a))
        self.finality.polled.add(self.a.txid)
        key1, op1, amount1 = devnet_funding(1)
        rich = transfer(key1, [op1], [(amount1 // 4, TO)], fee=50_000, total=amount1)
        refused = results(self.node.submit(rich))
        self.assertEqual(refused.value.code, "mempool-full")
        self.assertIn(self.a.txid, self.node.mempool)
        self.assertEqual(self.node.state.get(OP0).lock_txid, self.a.txid)
        # Not polled yet: a higher fee rate may evict it, and it is only dropped.
        self.finality.polled.discard(self.a.txid)
        self.assertEqual(results(self.node.submit(rich)), rich.txid)
        self.assertNotIn(self.a.txid, self.node.mempool)
        self.assertEqual(self.node.state.get(OP0).status, UtxoStatus.UNSPENT)
        self.assertTrue(self.node.queries.drop_reason(self.a.txid).startswith("evicted"))

    def test_polled_transaction_keeps_its_locks_past_expiry(self):
        results(self.node.submit(self.a))
        self.finality.polled.add(self.a.txid)
        self.clock.advance(100)
        self.assertEqual(self.node.state.get(OP0).lock_txid, self.a.txid)
        self.assertIn(self.a.txid, self.node.mempool)
        self.assertEqual(self.status(self.a.txid)["status"], "pending")
        # A later spend of the coin joins the set as a contender.
        self.assertEqual(results(self.node.submit(self.b)), self.b.txid)
        self.assertTrue(self.node.mempool.is_contender(self.b.txid))
        self.finality.polled.add(self.b.txid)
        self.clock.advance(100)
        self.assertIn(self.b.txid, self.node.mempool)
        self.finality.decide(self.b.txid, True)
        self.finality.decide(self.a.txid, False, "conflict")
        self.assertEqual(self.status(self.b.txid)["status"], "finalized")
        self.assertIsNone(self.status(self.b.txid)["reason"])
        self.assertEqual(self.status(self.a.txid)["status"], "rejected")

    def test_stalled_transaction_is_pending_with_a_reason(self):
        results(self.node.submit(self.a))
        self.finality.polled.add(self.a.txid)
        self.finality.stalled_reasons[self.a.txid] = "stalled: its conflict set is undecided"
        status = self.status(self.a.txid)
        self.assertEqual(status["status"], "pending")
        self.assertEqual(status["reason"], "stalled: its conflict set is undecided")
        self.assertEqual(self.finality.in_flight(), 0)

    def test_final_status_never_changes(self):
        results(self.node.submit(self.a))
        self.finality.decide(self.a.txid, True)
        events = []
        self.node.events.add_listener(lambda *event: events.append(event))
        self.node._drop(self.a.txid, "rejected", "conflict: a late report")
        self.assertEqual(events, [])
        self.assertEqual(self.status(self.a.txid)["status"], "finalized")
        wait = results(self.node.queries.wait_for_transaction(self.a.txid, 10))
        self.assertEqual(wait["status"], "finalized")
        self.assertIn("reason", wait)
