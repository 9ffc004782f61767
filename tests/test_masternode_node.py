"""Registration by collateral on a running node, through the command line:
register, refuse a duplicate, list, deregister, and survive a restart."""

import io
import json
import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support import api_url, cookie, make_datadir, start_node
from timecoin import cli
from timecoin.api.client import RpcClient, RpcError
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.registration import SILVER, Registration
from timecoin.ledger.tx import OutPoint, sign_registration

OWNER = PrivateKey.devnet(3)
INLINE = "[validation]\nsignature_workers = 0\n"


class MasternodeRegistrationNodeTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.datadir = make_datadir(self)
        with open(os.path.join(self.datadir, "timecoin.toml"), "w") as f:
            f.write(INLINE)
        self.masternode = PrivateKey.generate()
        self.files = {}
        for name, key in (("owner", OWNER), ("masternode", self.masternode)):
            self.files[name] = os.path.join(self.datadir, f"{name}.key")
            key.save(self.files[name])
        yield self.start()

    @defer.inlineCallbacks
    def start(self):
        # Without blocks: what finality alone does to the registry (pending
        # until a block confirms it) is what this test checks, unraced by a
        # block every 2 s; blocks confirming registrations: test_blockchain.
        self.node = yield start_node(self, reactor, self.datadir, blocks=False)
        self.rpc = RpcClient(api_url(self.node), cookie(self.node), reactor=reactor)
        self.addCleanup(self.rpc.close)

    @defer.inlineCallbacks
    def cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        status = yield cli.run_command(reactor, [*argv, "--rpc", api_url(self.node), "--datadir",
                                                 self.datadir, "--json"], out, err)
        self.assertNotIn("Traceback", err.getvalue())
        return status, out.getvalue(), err.getvalue()

    @defer.inlineCallbacks
    def mine(self):
        listed = yield self.rpc.call("getmasternodes")
        return {mn["pubkey"]: mn for mn in listed}.get(self.masternode.pubkey.hex())

    @defer.inlineCallbacks
    def test_register_list_deregister_restart(self):
        status, out, err = yield self.cli(
            "masternode", "register", "--key", self.files["owner"], "--masternode-key",
            self.files["masternode"], "--tier", "silver", "--wait")
        self.assertEqual(status, 0, err)
        result = json.loads(out)
        self.assertEqual(result["status"], "finalized")
        self.assertEqual(result["collateral"], f"{result['txid']}:0")
        mn = yield self.mine()
        self.assertEqual(
            {k: mn[k] for k in ("tier", "weight", "collateral", "registered_height", "active",
                                "online", "leaving", "reward_address")},
            {"tier": "silver", "weight": SILVER.weight, "collateral": result["collateral"],
             "registered_height": None, "active": False, "online": False, "leaving": False,
             "reward_address": OWNER.address()})
        # The active set is still the genesis one: no block confirmed it.
        self.assertNotIn(self.masternode.pubkey, self.node.registry.active_set())
        unspent = yield self.rpc.call("listunspent", OWNER.address())
        flagged = [f"{u['txid']}:{u['vout']}" for u in unspent if u["collateral"]]
        self.assertEqual(flagged, [result["collateral"]])

        # A second registration of the same masternode key: the command says so,
        # and the node refuses one sent anyway.
        status, _, err = yield self.cli(
            "masternode", "register", "--key", self.files["owner"], "--masternode-key",
            self.files["masternode"], "--tier", "bronze")
        self.assertEqual(status, 1)
        self.assertIn("registered already", err)
        change = [u for u in unspent if not u["collateral"]][0]
        again = sign_registration(
            OWNER, [OutPoint(bytes.fromhex(change["txid"]), change["vout"])],
            [(SILVER.collateral, OWNER.key_hash)], self.node.network.network_id,
            Registration(SILVER.code, 0, self.masternode.pubkey, OWNER.key_hash),
            self.masternode)
        e = yield self.assertFailure(self.rpc.call("sendrawtransaction", again.hex()), RpcError)
        self.assertIn("masternode-registered", e.message)

        status, out, err = yield self.cli("masternode", "deregister", "--key",
                                          self.files["owner"], "--wait")
        self.assertEqual(status, 0, err)
        self.assertEqual(json.loads(out)["collateral"], result["collateral"])
        self.assertTrue((yield self.mine())["leaving"])

        yield self.node.stopService()
        yield self.start()
        mn = yield self.mine()
        self.assertEqual((mn["tier"], mn["leaving"], mn["registered_height"]),
                         ("silver", True, None))
        status, out, _ = yield self.cli("masternodes")
        self.assertIn(self.masternode.pubkey.hex(), [m["pubkey"] for m in json.loads(out)])
