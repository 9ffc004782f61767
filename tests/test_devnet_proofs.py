"""Finality proofs on ``timecoin devnet --nodes 4``: real twistd processes on
127.0.0.1, the commands as a user runs them (``send --wait``, ``proof``,
``verify-proof`` offline), and a tampered file refused with its reason."""

import dataclasses
import json
import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support import ACCEPTED, make_datadir
from timecoin.api.client import RpcClient, read_cookie
from timecoin.bench.command import free_base_port
from timecoin.cli.devnet import start_network
from timecoin.ledger.keys import PrivateKey
from timecoin.proofs.finality import FinalityProof
from timecoin.testing.processes import run_cli
from timecoin.testing.waiting import poll


@defer.inlineCallbacks
def cli(*args):
    """``timecoin args`` as a child process: ``(stdout, stderr, exit code)``, text."""
    out, err, code = yield run_cli(reactor, *args)
    return out.decode(), err.decode(), code


class DevnetProofTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_send_wait_proof_and_verify_offline(self):
        directory = make_datadir(self)
        network = yield start_network(reactor, 4, directory, free_base_port(4))
        self.addCleanup(lambda: network.stopping or network.stop())
        info = network.describe()
        node = network.nodes[2]
        rpc_args = ("--rpc", node.api_url, "--datadir", node.datadir)
        out, err, code = yield cli(
            "send", "--key", info["keys"][5]["key_file"], "--to",
            PrivateKey.devnet(61).address(), "--amount", "2", "--wait", "--json", *rpc_args)
        self.assertEqual(code, 0, err)
        sent = json.loads(out)
        self.assertIn(sent["status"], ACCEPTED)
        txid = sent["txid"]
        rpc = RpcClient(node.api_url, read_cookie(node.datadir), reactor=reactor)
        self.addCleanup(rpc.close)
        status = yield poll(reactor, lambda: rpc.call("gettransaction", txid),
                            lambda s: s["status"] == "confirmed", timeout=60, interval=0.25)
        height = status["block_height"]
        header = yield rpc.call("getblockheader", height)
        path = os.path.join(directory, "payment.proof")
        out, err, code = yield cli("proof", txid, "--out", path, *rpc_args)
        self.assertEqual(code, 0, err)
        self.assertIn(f"(block {height}) written to {path}", out)
        # Offline: no --rpc, a data directory only for the devnet's size.
        out, err, code = yield cli("verify-proof", path, "--txid", txid,
                                       "--datadir", node.datadir)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"ok: {txid} is in block {height} {header['hash']}\n")
        out, err, code = yield cli("verify-proof", path, "--devnet-masternodes",
                                       "4", "--json", "--datadir", directory)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["block_hash"], header["hash"])
        # A tampered signature: refused, with its reason, exit 1.
        with open(path, "rb") as f:
            proof = FinalityProof.decode(f.read())
        signer, signature = proof.certificate.signatures[0]
        forged = dataclasses.replace(proof.certificate, signatures=(
            (signer, bytes([signature[0] ^ 1]) + signature[1:]),
            *proof.certificate.signatures[1:]))
        tampered = os.path.join(directory, "tampered.proof")
        with open(tampered, "wb") as f:
            f.write(dataclasses.replace(proof, certificate=forged).encode())
        out, err, code = yield cli("verify-proof", tampered, "--datadir",
                                       node.datadir)
        self.assertEqual(code, 1, err)
        self.assertTrue(out.startswith("invalid: bad-signature"), out)
        self.assertIn(f"(block {height})", out)
        codes = yield network.stop()
        self.assertTrue(all(c in (0, -15) for c in codes), codes)
