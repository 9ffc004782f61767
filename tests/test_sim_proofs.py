"""Finality proofs on the whole-node simulator: a transaction confirmed in a
block gets a proof the offline verifier accepts, through the RPC too; after a
registration changes the active set a later block's proof carries the
hand-off, and both still verify once the node restarted from its database."""

import dataclasses

from twisted.trial import unittest

from timecoin.api.rpc import RpcError, RpcMethods
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.registration import BRONZE, Registration
from timecoin.ledger.tx import sign_registration
from timecoin.proofs.finality import ProofError
from timecoin.proofs.verify import verify_proof
from timecoin.sim import scenario
from timecoin.sim.cluster import Cluster

NEW_MASTERNODE = PrivateKey.devnet(20)


def registration(index):
    """Dev key ``index`` registers :data:`NEW_MASTERNODE` as Bronze with its
    genesis output (the collateral to itself, output 0; the change back)."""
    key, outpoint, total = scenario.funding(index)
    outputs = [(BRONZE.collateral, key.key_hash),
               (total - BRONZE.collateral - scenario.FEE, key.key_hash)]
    return sign_registration(key, [outpoint], outputs, DEVNET.network_id,
                             Registration(BRONZE.code, 0, NEW_MASTERNODE.pubkey, key.key_hash),
                             NEW_MASTERNODE)


class SimProofTests(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(4, seed=12)
        self.addCleanup(self.cluster.close)
        self.cluster.start()

    def confirm(self, tx, index=0):
        txid = self.cluster.wait(self.cluster.submit(index, tx), 10)
        self.cluster.run_until(lambda: all(
            (self.cluster.status(i, txid) or {}).get("status") == "confirmed"
            for i in range(4)), 30, "confirmed everywhere")
        return txid

    def proof(self, index, txid):
        node = self.cluster.nodes[index]
        result = self.cluster.wait(RpcMethods(node).call("getfinalityproof", [txid.hex()]), 0)
        return bytes.fromhex(result["hex"]), result["block_height"]

    def test_a_confirmed_transaction_has_a_proof_the_verifier_accepts(self):
        txid = self.confirm(scenario.transfer_from_genesis(0))
        genesis = self.cluster.nodes[0].genesis
        heights = set()
        for index in range(4):  # every node builds one; each verifies
            data, height = self.proof(index, txid)
            proof = verify_proof(data, genesis, txid=txid)
            self.assertEqual((proof.txid, proof.height, proof.handoffs), (txid, height, ()))
            self.assertEqual(proof.header.hash, self.cluster.nodes[index].chain
                             .block_at(height).hash)
            heights.add(height)
        self.assertEqual(len(heights), 1)
        # Unknown to the node: a clear JSON-RPC error, no proof.
        d = RpcMethods(self.cluster.nodes[0]).call("getfinalityproof", ["ab" * 32])
        e = self.cluster.wait(self.assertFailure(d, RpcError), 0)
        self.assertEqual((e.code, e.message), (-5, "transaction not found: " + "ab" * 32))

    def test_a_proof_after_the_active_set_changed_carries_the_handoff(self):
        before = self.confirm(scenario.transfer_from_genesis(1))
        reg = self.confirm(registration(2))
        node = self.cluster.nodes[0]
        changed_at = self.cluster.status(0, reg)["block_height"]
        self.assertIn(NEW_MASTERNODE.pubkey, node.registry.active_set())
        self.assertEqual(node.proofs.handoff_heights(), [changed_at])
        self.cluster.run(2 * DEVNET.block_interval_s)  # the next block: signed by the new set
        after = self.confirm(scenario.transfer_from_genesis(3, amount=2 * COIN))
        genesis = node.genesis
        built = {}
        for index in (0, 3):
            data, height = built[index] = self.proof(index, after)
            self.assertGreater(height, changed_at)
            proof = verify_proof(data, genesis, txid=after)
            self.assertEqual([h.header.height for h in proof.handoffs], [changed_at])
            self.assertEqual(proof.handoffs[0].active_set(), node.registry.active_set())
            self.assertEqual(len(proof.handoffs[0].validators), 5)
            # The hand-off is checked: its set must be the one its header names.
            with self.assertRaises(ProofError) as caught:
                verify_proof(_with_weights_doubled(proof), genesis, txid=after)
            self.assertEqual((caught.exception.reason, caught.exception.height),
                             ("set-hash-mismatch", changed_at))
        old_data, _ = self.proof(0, before)
        self.assertEqual(verify_proof(old_data, genesis, txid=before).handoffs, ())
        # After a restart the sets come from the database: the same proofs.
        restarted = self.cluster.restart_node(0)
        self.assertEqual(restarted.proofs.handoff_heights(), [changed_at])
        self.assertEqual(self.proof(0, after), built[0])
        self.assertEqual(self.proof(0, before)[0], old_data)


def _with_weights_doubled(proof):
    handoff = proof.handoffs[0]
    doubled = tuple((pubkey, 2 * weight) for pubkey, weight in handoff.validators)
    return dataclasses.replace(
        proof, handoffs=(dataclasses.replace(handoff, validators=doubled),)).encode()
