"""Blocks among 4 real ``twistd`` masternode processes on 127.0.0.1, configured
as ``timecoin devnet --nodes 4`` configures them."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.devnet_processes import ProcessDevnet
from tests.support import make_datadir
from timecoin.ledger.networks import DEVNET


class DevnetBlockTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.devnet = ProcessDevnet(reactor, make_datadir(self), 4)
        self.addCleanup(self.devnet.stop)
        yield self.devnet.start()

    def heights(self):
        return defer.gatherResults([n.rpc.call("getblockcount") for n in self.devnet.nodes])

    @defer.inlineCallbacks
    def test_the_height_grows_every_interval_with_equal_blocks_on_every_node(self):
        interval = DEVNET.block_interval_s
        first = yield self.heights()
        started = reactor.seconds()
        samples = []
        while reactor.seconds() - started < 8 * interval:
            yield task.deferLater(reactor, 0.5, lambda: None)
            samples.append((reactor.seconds(), (yield self.heights())))
        elapsed = samples[-1][0] - started
        grown = min(samples[-1][1]) - max(first)
        # About one block per interval (a round's messages take milliseconds).
        self.assertGreaterEqual(grown, elapsed / interval - 3, samples)
        self.assertLessEqual(grown, elapsed / interval + 2, samples)
        top = min(samples[-1][1])
        for height in range(max(1, top - 4), top + 1):
            headers = yield defer.gatherResults(
                [n.rpc.call("getblockheader", height) for n in self.devnet.nodes])
            self.assertEqual(len({h["hash"] for h in headers}), 1, headers)
            self.assertEqual(len({h["utxo_set_hash"] for h in headers}), 1)
            # More than 2/3 of the 4 equal masternodes signed it.
            self.assertGreaterEqual(min(len(h["commit"]) for h in headers), 3)
        blocks = yield defer.gatherResults(
            [n.rpc.call("getblock", top) for n in self.devnet.nodes])
        self.assertEqual(len({tuple(b["txids"]) for b in blocks}), 1)
        reward = yield self.devnet.nodes[0].rpc.call("gettransaction", blocks[0]["reward_txid"])
        self.assertEqual((reward["status"], reward["block_height"]), ("confirmed", top))
