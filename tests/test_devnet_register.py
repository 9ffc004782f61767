"""A fifth masternode by collateral on ``timecoin devnet --nodes 4``: real twistd
processes on 127.0.0.1, the commands as a user runs them. ``timecoin
masternode register`` from a funded dev key registers a node started with
``--masternode-key``; a block confirms it, it joins the active set on every
node, signs later blocks and is paid rewards; every node ends with equal
block hashes and equal ``gettxoutsetinfo``."""

import json
import os

from twisted.internet import defer, reactor

from tests.devnet_processes import LocalNetworkTestCase, start_extra_node
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.testing.processes import run_cli
from timecoin.testing.waiting import poll

#: The dev key that pays the collateral (funded by the devnet's genesis).
OWNER = 6
#: The fifth masternode's key and its reward address (a key holding nothing else).
MASTERNODE_KEY, REWARD_KEY = 4, 77


@defer.inlineCallbacks
def cli(*args):
    """``timecoin args`` as a child process: ``(stdout, stderr, exit code)``, text."""
    out, err, code = yield run_cli(reactor, *args)
    return out.decode(), err.decode(), code


class FifthMasternodeTests(LocalNetworkTestCase):
    @defer.inlineCallbacks
    def test_a_fifth_masternode_registers_joins_votes_and_earns(self):
        network = yield self.start_devnet()
        directory = network.directory
        key_file = os.path.join(directory, "masternode4.key")
        PrivateKey.devnet(MASTERNODE_KEY).save(key_file, DEVNET.network_id)
        fifth = yield start_extra_node(network, 4, key_file)
        rpcs = [self.rpc(n) for n in network.nodes]
        owner = network.describe()["keys"][OWNER]["key_file"]
        reward_address = PrivateKey.devnet(REWARD_KEY).address(DEVNET.network_id)
        node0 = network.nodes[0]
        out, err, code = yield cli(
            "masternode", "register", "--key", owner, "--masternode-key", key_file,
            "--tier", "bronze", "--reward-address", reward_address, "--wait", "--json",
            "--rpc", node0.api_url, "--datadir", node0.datadir)
        self.assertEqual(code, 0, err)
        registered = json.loads(out)
        pubkey = PrivateKey.devnet(MASTERNODE_KEY).pubkey.hex()
        self.assertEqual(registered["masternode"], pubkey)

        @defer.inlineCallbacks
        def active_everywhere():
            views = yield defer.gatherResults([r.call("getmasternodes") for r in rpcs])
            return [next((m for m in v if m["pubkey"] == pubkey), None) for v in views]
        views = yield poll(reactor, active_everywhere,
                           lambda vs: all(v is not None and v["active"] for v in vs),
                           timeout=60, interval=0.5)
        self.assertEqual({(v["tier"], v["weight"], v["reward_address"]) for v in views},
                         {("bronze", 10, reward_address)}, views)
        joined = max(v["registered_height"] for v in views)

        # It signs later blocks: its signature is in their commit certificates.
        @defer.inlineCallbacks
        def signed_blocks():
            top = yield rpcs[0].call("getblockcount")
            signers = []
            for height in range(joined + 1, top + 1):
                header = yield rpcs[0].call("getblockheader", height)
                signers.append({c["pubkey"] for c in header["commit"]})
            return signers
        signers = yield poll(reactor, signed_blocks,
                             lambda s: sum(pubkey in c for c in s) >= 2,
                             timeout=60, interval=1.0)
        self.assertGreaterEqual(sum(pubkey in c for c in signers), 2, signers)

        # Its reward address is paid by blocks (it held nothing before).
        paid = yield poll(reactor, lambda: rpcs[4].call("listunspent", reward_address),
                          lambda utxos: len(utxos) >= 2, timeout=60, interval=1.0)
        self.assertTrue(all(int(u["amount"]) > 0 for u in paid), paid)

        # Every node: equal block hashes at one height and equal set summaries.
        @defer.inlineCallbacks
        def views_of_the_chain():
            heights = yield defer.gatherResults([r.call("getblockcount") for r in rpcs])
            height = min(heights)
            headers = yield defer.gatherResults(
                [r.call("getblockheader", height) for r in rpcs])
            return {h["hash"] for h in headers}
        hashes = yield poll(reactor, views_of_the_chain, lambda h: len(h) == 1,
                            timeout=30, interval=0.5)
        self.assertEqual(len(hashes), 1)

        @defer.inlineCallbacks
        def set_summaries():
            infos = yield defer.gatherResults([r.call("gettxoutsetinfo") for r in rpcs])
            return {json.dumps(i, sort_keys=True) for i in infos}
        summaries = yield poll(reactor, set_summaries, lambda s: len(s) == 1,
                               timeout=30, interval=0.1)
        self.assertEqual(len(summaries), 1, summaries)
        self.assertEqual(fifth.exit_code, None)
