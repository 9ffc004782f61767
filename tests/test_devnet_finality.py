"""Snowball finality among 4 masternodes on 127.0.0.1, over real sockets.

The end-to-end layer: the same nodes as the daemon's, on TCP. The race,
restart and catch-up tests run on the simulator (tests/test_sim_cluster.py),
as does this one with the same assertions.
"""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support import devnet_funding, start_devnet, transfer
from timecoin.finality.snowball import SnowballFinality
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN
from timecoin.testing.waiting import wait_until

DEST = PrivateKey.devnet(50)


class FourNodeTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = yield start_devnet(self, reactor, 4)

    def statuses(self, txid):
        return defer.gatherResults([n.queries.wait_for_transaction(txid, 20) for n in self.nodes])

    @defer.inlineCallbacks
    def test_transactions_finalize_on_every_node(self):
        self.assertTrue(all(isinstance(n.finality, SnowballFinality) for n in self.nodes))
        self.assertEqual({n.queries.masternodes_active() for n in self.nodes}, {4})
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
        infos = {str(n.queries.txoutset_info()) for n in self.nodes}
        self.assertEqual(len(infos), 1)
