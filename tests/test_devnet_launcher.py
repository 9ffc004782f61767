"""``timecoin devnet``: real twistd processes on 127.0.0.1, started and stopped."""

import json
import os
import shlex

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support import ACCEPTED, make_datadir
from timecoin.api.client import RpcClient, read_cookie
from timecoin.bench.command import free_base_port
from timecoin.cli.devnet import start_network
from timecoin.ledger.keys import PrivateKey
from timecoin.testing.processes import run_cli


class LauncherTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_two_masternodes_finalize_a_cli_send_and_stop_cleanly(self):
        directory = make_datadir(self)
        base = free_base_port(2)
        network = yield start_network(reactor, 2, directory, base)
        self.addCleanup(lambda: network.stopping or network.stop())
        info = network.describe()
        self.assertEqual([n["api_url"] for n in info["nodes"]],
                         [f"http://127.0.0.1:{base + 1}", f"http://127.0.0.1:{base + 3}"])
        self.assertTrue(all(os.path.exists(k["key_file"]) for k in info["keys"]))
        node0, node1 = network.nodes
        dest = PrivateKey.devnet(60).address()
        out, err, code = yield run_cli(
            reactor, "send", "--key", info["keys"][5]["key_file"], "--to", dest,
            "--amount", "3", "--wait", "--json", "--rpc", node0.api_url,
            "--datadir", node0.datadir)
        self.assertEqual(code, 0, err)
        result = json.loads(out)
        self.assertIn(result["status"], ACCEPTED)
        rpc = RpcClient(node1.api_url, read_cookie(node1.datadir), reactor=reactor)
        status = yield rpc.call("waitfortransaction", result["txid"], 20)
        self.assertIn(status["status"], ACCEPTED)
        masternodes = yield rpc.call("getmasternodes")
        self.assertEqual(len(masternodes), 2)
        # The printed prefix is the command line that reaches node 1.
        prefix = shlex.split(info["nodes"][1]["cli"])
        self.assertEqual(prefix, ["timecoin", "--rpc", node1.api_url, "--datadir",
                                  node1.datadir])
        out, err, code = yield run_cli(reactor, *prefix[1:], "--json", "masternodes")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out), masternodes)
        self.assertTrue(all(m["active"] for m in masternodes))
        yield rpc.close()
        codes = yield network.stop()
        self.assertTrue(all(c in (0, -15) for c in codes), codes)
        for node in network.nodes:
            with open(os.path.join(node.datadir, "node.log")) as f:
                self.assertIn("journal and UTXO tables flushed", f.read())
