"""The library example, run in-process against a node on 127.0.0.1."""

import importlib.util
import io
import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.p2p_fakes import GENESIS, make_tx, node_address, start_node
from timecoin.testing.waiting import wait_until

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "watch_transactions.py")


def load_example():
    spec = importlib.util.spec_from_file_location("watch_transactions", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WatchTransactions(unittest.TestCase):
    @defer.inlineCallbacks
    def test_watcher_prints_announced_txids(self):
        node = yield start_node(self)
        out = io.StringIO()
        watching = load_example().main(
            reactor, ["--connect", node_address(node), "--genesis", GENESIS.hex(),
                      "--count", "3"], out=out)
        yield wait_until(reactor, lambda: node.peer_count() == 1)
        txs = [make_tx(i) for i in range(3)]
        for tx in txs:
            node.broadcast_tx(tx)
        heard = yield watching
        self.assertEqual(heard, [tx.txid for tx in txs])
        self.assertEqual(out.getvalue().split(), [tx.txid.hex() for tx in txs])
        yield wait_until(reactor, lambda: node.peer_count() == 0)


class WatchFinality(unittest.TestCase):
    @defer.inlineCallbacks
    def test_watcher_prints_finality_events_of_a_real_node(self):
        from tests import support

        node = yield support.start_node(self, reactor)
        yield node.peer_network.started
        out = io.StringIO()
        watching = load_example().main(
            reactor, ["--connect", f"127.0.0.1:{node.peer_network.listen_port()}",
                      "--genesis", node.genesis_hash.hex(), "--finality", "--count", "2"],
            out=out)
        yield wait_until(reactor, lambda: node.events.subscribers == 1)
        key, op, amount = support.devnet_funding(0)
        good = support.transfer(key, [op], [(1000, key.key_hash)], total=amount)
        yield node.submit(good)
        key2, op2, amount2 = support.devnet_funding(1)
        second = support.transfer(key2, [op2], [(1000, key.key_hash)],
                                  total=amount2)
        yield node.submit(second)
        heard = yield watching
        self.assertEqual(heard, [good.txid, second.txid])
        self.assertTrue(out.getvalue().startswith(f"finalized {good.txid.hex()} "))
