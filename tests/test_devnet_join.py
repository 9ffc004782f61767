"""Joining a running ``timecoin devnet --nodes 4`` by full replay: a fifth node
started with ``--peer``, ``--sync full`` and an empty data directory (real
twistd processes on 127.0.0.1) syncs every block from the genesis and ends
with the same block hashes and UTXO set hash as the masternodes (joining by
snapshot: tests/test_devnet_snapshots.py)."""

import json

from twisted.internet import defer, reactor

from tests.devnet_processes import LocalNetworkTestCase, start_extra_node
from timecoin.testing.waiting import poll

#: Blocks the devnet runs before the fifth node starts.
HEAD_START = 10


class JoinTests(LocalNetworkTestCase):
    @defer.inlineCallbacks
    def test_a_node_with_an_empty_datadir_joins_with_equal_blocks_and_set(self):
        network = yield self.start_devnet()
        rpc0 = self.rpc(network.nodes[0])
        yield poll(reactor, lambda: rpc0.call("getblockcount"), lambda h: h >= HEAD_START,
                   timeout=60, interval=0.5)
        joiner = yield start_extra_node(network, 4, peers=[0], extra_args=["--sync", "full"])
        rpcs = [self.rpc(n) for n in network.nodes]

        @defer.inlineCallbacks
        def chain_views():
            heights = yield defer.gatherResults([r.call("getblockcount") for r in rpcs])
            top = min(heights)
            headers = yield defer.gatherResults([r.call("getblockheader", top) for r in rpcs])
            return top, {(h["hash"], h.get("utxo_set_hash")) for h in headers}
        top, views = yield poll(reactor, chain_views,
                                lambda v: v[0] >= HEAD_START and len(v[1]) == 1,
                                timeout=90, interval=0.5)
        self.assertGreaterEqual(top, HEAD_START)
        self.assertEqual(len(views), 1, views)

        @defer.inlineCallbacks
        def set_summaries():
            infos = yield defer.gatherResults([r.call("gettxoutsetinfo") for r in rpcs])
            return {json.dumps(i, sort_keys=True) for i in infos}
        summaries = yield poll(reactor, set_summaries, lambda s: len(s) == 1,
                               timeout=30, interval=0.1)
        self.assertEqual(len(summaries), 1, summaries)
        self.assertIsNone(joiner.exit_code)
        first = yield rpcs[4].call("getblock", 1)
        self.assertEqual(first["hash"], (yield rpcs[0].call("getblock", 1))["hash"])
