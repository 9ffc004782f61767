"""``timecoin proof`` (over a fake node) and ``timecoin verify-proof``
(offline: no RPC at all) on proofs of a signed devnet chain."""

import json
import os

from tests.proof_support import SignedChain
from tests.test_cli import CliTestCase
from timecoin.api.client import RpcError


class ProofCommandTests(CliTestCase):
    def setUp(self):
        super().setUp()
        self.chain = SignedChain(masternodes=4)
        self.chain.add_block()
        self.chain.add_block(new_set={**self.chain.in_force, self.chain.add_key(6): 10})
        self.chain.add_block(tx_count=5)
        self.proof = self.chain.proof(3, tx_index=2)
        self.txid = self.proof.txid.hex()
        self.node.handlers["getfinalityproof"] = lambda txid: {
            "hex": self.proof.encode().hex(), "block_height": 3}
        with open(os.path.join(self.datadir, "timecoin.toml"), "w") as f:
            f.write("[node]\ndevnet_masternodes = 4\n")
        self.path = os.path.join(self.datadir, "p.proof")

    def verify(self, *extra):
        calls = len(self.node.calls)
        result = self.run_cli("verify-proof", self.path, *extra)
        self.assertEqual(len(self.node.calls), calls)  # offline: the node is never asked
        return result

    def test_proof_writes_the_file_and_verify_proof_accepts_it(self):
        status, out, err = self.run_cli("proof", self.txid.upper(), "--out", self.path)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, f"proof of {self.txid} (block 3) written to {self.path} "
                              f"({len(self.proof.encode())} bytes)\n")
        self.assertEqual(self.node.calls[-1], ("getfinalityproof", [self.txid]))
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), self.proof.encode())
        block_hash = self.proof.header.hash.hex()
        self.assertEqual(self.verify(), (0, f"ok: {self.txid} is in block 3 {block_hash}\n",
                                         ""))
        status, out, _ = self.verify("--txid", self.txid, "--json")
        self.assertEqual(json.loads(out), {"valid": True, "txid": self.txid, "block_height": 3,
                                           "block_hash": block_hash, "handoffs": 1})
        # Never overwritten.
        status, _, err = self.run_cli("proof", self.txid, "--out", self.path)
        self.assertEqual(status, 2)
        self.assertIn("refusing to overwrite", err)

    def test_without_out_the_hex_is_printed_and_verifies_from_a_file(self):
        status, out, _ = self.run_cli("proof", self.txid)
        self.assertEqual((status, out), (0, self.proof.encode().hex() + "\n"))
        with open(self.path, "w") as f:
            f.write(out)
        self.assertEqual(self.verify()[0], 0)

    def test_refusals_name_their_reason_and_exit_1(self):
        data = bytearray(self.proof.encode())
        data[-40] ^= 1  # inside the Merkle path
        with open(self.path, "wb") as f:
            f.write(bytes(data))
        status, out, _ = self.verify()
        self.assertEqual(status, 1)
        self.assertTrue(out.startswith("invalid: txid-not-in-block: "), out)
        self.assertEqual(json.loads(self.verify("--json")[1])["reason"], "txid-not-in-block")
        with open(self.path, "wb") as f:
            f.write(self.proof.encode()[:-1])
        status, out, _ = self.verify()
        self.assertEqual(status, 1)
        self.assertTrue(out.startswith("invalid: truncated"), out)
        with open(self.path, "wb") as f:
            f.write(self.proof.encode())
        self.assertTrue(self.verify("--txid", "ab" * 32)[1].startswith("invalid: txid-mismatch"))
        # Another genesis: in a devnet of 8 keys, the 3 signers are too few.
        status, out, _ = self.verify("--devnet-masternodes", "8")
        self.assertEqual(status, 1)
        self.assertTrue(out.startswith("invalid: insufficient-stake"), out)
        self.assertTrue(self.verify("--network", "testnet")[1].startswith(
            "invalid: wrong-network"))
        self.assertEqual(self.verify("--network", "testnet", "--devnet-masternodes", "4")[0], 2)
        self.assertEqual(self.run_cli("verify-proof", self.path + ".missing")[0], 1)
        self.assertEqual(self.run_cli("verify-proof", self.path, "--txid", "xyz")[0], 2)

    def test_the_node_s_error_is_the_command_s(self):
        def not_yet(txid):
            raise RpcError(-5, f"transaction {txid} is finalized but not in a block yet: "
                               "ask again after the next block")
        self.node.handlers["getfinalityproof"] = not_yet
        status, out, err = self.run_cli("proof", self.txid, "--out", self.path)
        self.assertEqual((status, out), (1, ""))
        self.assertIn("not in a block yet", err)
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(self.run_cli("proof", "nothex")[0], 2)
