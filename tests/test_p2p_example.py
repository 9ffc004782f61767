"""The library example, run in-process against a node on 127.0.0.1."""

import importlib.util
import io
import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.p2p_fakes import GENESIS, make_tx, node_address, start_node, wait_for

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
        yield wait_for(lambda: node.peer_count() == 1)
        txs = [make_tx(i) for i in range(3)]
        for tx in txs:
            node.broadcast_tx(tx)
        heard = yield watching
        self.assertEqual(heard, [tx.txid for tx in txs])
        self.assertEqual(out.getvalue().split(), [tx.txid.hex() for tx in txs])
        yield wait_for(lambda: node.peer_count() == 0)
