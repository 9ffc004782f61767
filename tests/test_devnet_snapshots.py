"""Real processes: four devnet masternodes cut a snapshot every 5 blocks, and a
fifth node started with an empty datadir and ``--peer`` joins by snapshot
(the default ``--sync``), then follows by block sync and ends with the same
best block and UTXO set hash as the others."""

import os
import sys

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.devnet_processes import DevnetNode, ProcessDevnet
from tests.support import make_datadir
from timecoin.api.client import RpcError
from timecoin.cli.devnet import DEVNET_NODE_CONFIG

SYNC_CONFIG = "\n[sync]\nsnapshot_interval = 5\n"


class JoiningNode(DevnetNode):
    """A plain node (no masternode key) dialling every masternode of the devnet."""

    def __init__(self, devnet):
        super().__init__(devnet, devnet.count)
        os.makedirs(self.datadir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.datadir, "timecoin.toml"), "w") as f:
            f.write(DEVNET_NODE_CONFIG.format(count=devnet.count) + SYNC_CONFIG)

    def _args(self):
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                "--pidfile=", "--logfile", os.path.join(self.datadir, "node.log"), "timecoin",
                "--network", "devnet", "--datadir", self.datadir,
                "--p2p", f"tcp:{self.p2p_port}:interface=127.0.0.1",
                "--api", f"tcp:{self.api_port}:interface=127.0.0.1"]
        for j in range(self.devnet.count):
            args += ["--peer", f"127.0.0.1:{self.devnet.base_port + 2 * j}"]
        return args


class SnapshotJoinTests(unittest.TestCase):
    timeout = 300

    @defer.inlineCallbacks
    def test_a_fifth_node_joins_four_masternodes_by_snapshot(self):
        devnet = ProcessDevnet(reactor, make_datadir(self), 4, config_text=SYNC_CONFIG)
        self.addCleanup(devnet.stop)
        yield devnet.start()
        first = devnet.nodes[0]
        while (yield first.rpc.call("getblockcount")) < 12:
            yield task.deferLater(reactor, 0.5, lambda: None)
        joiner = JoiningNode(devnet)
        self.addCleanup(joiner.kill)
        yield joiner.start()
        with open(os.path.join(joiner.datadir, "node.log")) as f:
            log = f.read()
        self.assertIn("joined by snapshot at block", log)
        base = int(log.split("joined by snapshot at block ")[1].split(";")[0])
        self.assertGreaterEqual(base, 10)
        self.assertEqual(base % 5, 0)
        with self.assertRaises(RpcError) as caught:
            yield joiner.rpc.call("getblock", 1)
        self.assertIn(f"joined from the snapshot at block {base}", str(caught.exception))
        # It follows the chain: the same best block and set as a masternode.
        deadline = reactor.seconds() + 120
        while True:
            theirs = yield first.rpc.call("getinfo")
            ours = yield joiner.rpc.call("getinfo")
            keys = ("height", "best_block_hash", "utxo_set_hash")
            if ours["height"] > base and all(ours[k] == theirs[k] for k in keys):
                break
            self.assertLess(reactor.seconds(), deadline,
                            f"the joined node does not agree: {ours} vs {theirs}")
            yield task.deferLater(reactor, 0.5, lambda: None)
        block = yield joiner.rpc.call("getblock", base)
        theirs = yield first.rpc.call("getblock", base)
        self.assertEqual(block["hash"], theirs["hash"])
