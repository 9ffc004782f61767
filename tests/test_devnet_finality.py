"""Snowball finality among 4 masternodes on 127.0.0.1, over real sockets."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.support import devnet_funding, start_devnet, start_node, transfer, wait_until
from timecoin.finality.snowball import SnowballFinality
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN
from timecoin.ledger.tx import TxRejected

DEST = PrivateKey.devnet(50)


class FourNodeTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = yield start_devnet(self, reactor, 4)

    def statuses(self, txid):
        return defer.gatherResults([n.wait_for_transaction(txid, 20) for n in self.nodes])

    @defer.inlineCallbacks
    def test_transactions_finalize_on_every_node(self):
        self.assertTrue(all(isinstance(n.finality, SnowballFinality) for n in self.nodes))
        self.assertEqual({n.masternodes_active() for n in self.nodes}, {4})
        txids = []
        for i in range(8):
            key, op, amount = devnet_funding(i)
            tx = transfer(key, [op], [(COIN, DEST.key_hash)], total=amount)
            txid = yield self.nodes[i % 4].submit(tx)
            txids.append(txid)
        for txid in txids:
            results = yield self.statuses(txid)
            self.assertEqual({r["status"] for r in results}, {"finalized"}, results)
        yield wait_until(reactor, lambda: len({n.state.set_hash() for n in self.nodes}) == 1)
        infos = {str(n.txoutset_info()) for n in self.nodes}
        self.assertEqual(len(infos), 1)

    @defer.inlineCallbacks
    def agreed(self, a, b, timeout=20):
        """The set of (status of a, status of b) over the nodes, once they agree."""
        deadline = reactor.seconds() + timeout
        while True:
            pairs = set()
            for node in self.nodes:
                x = yield node.transaction_status(a)
                y = yield node.transaction_status(b)
                pairs.add((x and x["status"], y and y["status"]))
            if len(pairs) == 1 or reactor.seconds() > deadline:
                return pairs
            yield task.deferLater(reactor, 0.1, lambda: None)

    @defer.inlineCallbacks
    def test_double_spend_race_ends_the_same_everywhere(self):
        both_stalled = []
        for i in range(10, 20):
            key, op, amount = devnet_funding(i)
            a = transfer(key, [op], [(COIN, DEST.key_hash)], total=amount)
            b = transfer(key, [op], [(2 * COIN, DEST.key_hash)], total=amount)
            sent = [self.nodes[1].submit(a), self.nodes[2].submit(b)]
            outcomes = yield defer.DeferredList(sent, consumeErrors=True)
            for ok, value in outcomes:
                if not ok:
                    value.trap(TxRejected)
            yield self.statuses(a.txid)
            yield self.statuses(b.txid)
            # Every node must end on the same decision.
            pairs = yield self.agreed(a.txid, b.txid)
            self.assertEqual(len(pairs), 1, f"nodes disagree: {pairs}")
            (pair,) = pairs
            reasons = [(n.mempool.rejection(a.txid), n.mempool.rejection(b.txid))
                       for n in self.nodes]
            if pair == ("pending", "pending"):
                # Snowball's liveness limit: an even split that lasts stalls the
                # conflict set (max_rounds) before beta rounds; both stay pending
                # and locked (safe). Rare, so it is bounded, not banned.
                both_stalled.append(i)
                continue
            self.assertIn(pair, {("finalized", "rejected"), ("rejected", "finalized"),
                                 ("finalized", None), (None, "finalized")},
                          f"{pair}: {reasons}")
        self.assertLessEqual(len(both_stalled), 2, f"races stalled on both sides: "
                                                    f"{both_stalled}")
        hashes = {n.state.set_hash() for n in self.nodes}
        self.assertEqual(len(hashes), 1)


class RestartTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_node_stopped_mid_load_catches_up_and_agrees(self):
        nodes = yield start_devnet(self, reactor, 4)
        sent = []

        @defer.inlineCallbacks
        def send(indices, via):
            for i in indices:
                key, op, amount = devnet_funding(i)
                tx = transfer(key, [op], [(COIN, DEST.key_hash)], total=amount)
                txid = yield via[i % len(via)].submit(tx)
                sent.append(txid)

        yield send(range(20, 26), nodes)
        for txid in sent:
            yield defer.gatherResults([n.wait_for_transaction(txid, 20) for n in nodes])
        away = nodes[3]
        datadir = away.datadir
        more = send(range(26, 40), nodes[:3])  # under way while the node stops
        yield away.stopService()
        yield more
        for txid in sent:
            results = yield defer.gatherResults(
                [n.wait_for_transaction(txid, 20) for n in nodes[:3]])
            self.assertEqual({r["status"] for r in results}, {"finalized"})
        peers = [f"127.0.0.1:{n.peer_network.listen_port()}" for n in nodes[:3]]
        back = yield start_node(self, reactor, datadir, peers=peers,
                                masternode_key=f"{datadir}/masternode.key")
        yield wait_until(reactor, lambda: back.peer_count() == 3)
        target = nodes[0].state.set_hash()
        yield wait_until(reactor, lambda: back.state.set_hash() == target, timeout=30)
        for txid in sent:
            status = yield back.transaction_status(txid)
            self.assertEqual(status["status"], "finalized", txid.hex())
        self.assertGreater(back.finality_sync.applied, 0)
        # and it takes part again: a new transaction finalizes on all four
        yield send([41], [back])
        results = yield defer.gatherResults(
            [n.wait_for_transaction(sent[-1], 20) for n in nodes[:3] + [back]])
        self.assertEqual({r["status"] for r in results}, {"finalized"})
