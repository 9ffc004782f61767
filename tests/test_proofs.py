"""Finality proofs: round trips, and every reason a proof is refused, with
real Ed25519 certificates by devnet keys."""

import dataclasses
import time

from twisted.trial import unittest

from tests.proof_support import SignedChain, quorum_of
from timecoin.consensus.proposer import ValidatorSet
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import DEVNET, MAINNET, TESTNET
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.proofs.finality import (
    MAGIC,
    MAX_HANDOFFS,
    MAX_PROOF_SIZE,
    REASONS,
    FinalityProof,
    ProofError,
    SetHandoff,
)
from timecoin.proofs.verify import check_proof, verify_proof


def changing_chain():
    """Six blocks on 4 genesis masternodes: block 2 adds dev key 4 (weight 10),
    block 4 deactivates dev key 0; blocks 5 and 6 are signed by the set after 4."""
    chain = SignedChain(4)
    chain.add_block()
    joined = chain.add_key(4)
    chain.add_block(new_set={**chain.in_force, joined: 10})
    chain.add_block()
    gone = chain.key_of(sorted(chain.in_force)[0])
    left = {pk: w for pk, w in chain.in_force.items() if pk != gone.pubkey}
    chain.add_block(new_set=left, deactivated=(gone.pubkey,))
    chain.add_block(tx_count=5)
    chain.add_block(tx_count=7)
    return chain, gone.pubkey


class ProofTestCase(unittest.TestCase):
    """Shared assertions."""

    def refuses(self, data, reason, genesis, txid=None):
        with self.assertRaises(ProofError) as caught:
            verify_proof(data, genesis, txid)
        self.assertEqual(caught.exception.reason, reason, str(caught.exception))
        self.assertIn(reason, REASONS)
        return caught.exception

    def refuses_proof(self, proof, reason, genesis, txid=None):
        """``proof`` (an object) is refused both decoded and encoded."""
        with self.assertRaises(ProofError) as caught:
            check_proof(proof, genesis, txid)
        self.assertEqual(caught.exception.reason, reason, str(caught.exception))
        return self.refuses(proof.encode(), reason, genesis, txid)


class RoundTripTests(ProofTestCase):
    """A proof encodes canonically and verifies knowing only the genesis."""

    def test_every_txid_of_a_block_with_handoffs(self):
        chain, _ = changing_chain()
        for index in range(7):
            proof = chain.proof(tx_index=index)
            self.assertEqual([h.header.height for h in proof.handoffs], [2, 4])
            data = proof.encode()
            self.assertTrue(data.startswith(MAGIC))
            self.assertEqual(FinalityProof.decode(data), proof)
            self.assertEqual(FinalityProof.decode(data).encode(), data)
            self.assertEqual(verify_proof(data, chain.genesis, proof.txid), proof)

    def test_blocks_before_and_at_a_handoff(self):
        chain, _ = changing_chain()
        for height in range(1, 7):
            proof = chain.proof(height)
            self.assertEqual(verify_proof(proof.encode(), chain.genesis).height, height)
        # Block 2 changes the set but is signed by the genesis set: no hand-off.
        self.assertEqual(chain.proof(2).handoffs, ())
        self.assertEqual(len(chain.proof(3).handoffs), 1)

    def test_set_hashes_agree(self):
        """ValidatorSet.hash() is the registry's masternode_set_hash (one definition)."""
        genesis = make_genesis(DEVNET, 7)
        registry = MasternodeRegistry.from_genesis(genesis)
        self.assertEqual(ValidatorSet.from_stakes(registry.active_set()).hash(),
                         registry.masternode_set_hash())
        self.assertEqual(genesis.masternode_set_hash(), registry.masternode_set_hash())


class EncodingRefusalTests(ProofTestCase):
    """Bytes that are not exactly one proof of this network."""

    def setUp(self):
        self.chain, _ = changing_chain()
        self.proof = self.chain.proof()
        self.data = self.proof.encode()

    def test_wrong_network(self):
        self.refuses(self.data, "wrong-network", make_genesis(TESTNET))
        other = bytearray(self.data)
        other[len(MAGIC) + 1] = TESTNET.network_id
        self.refuses(bytes(other), "wrong-network", self.chain.genesis)

    def test_header_of_another_network(self):
        header = dataclasses.replace(self.proof.header, network_id=MAINNET.network_id)
        self.refuses_proof(dataclasses.replace(self.proof, header=header), "wrong-network",
                           self.chain.genesis)

    def test_every_truncation(self):
        for end in range(len(self.data)):
            self.refuses(self.data[:end], "truncated", self.chain.genesis)

    def test_trailing_bytes(self):
        self.refuses(self.data + b"\x00", "trailing-bytes", self.chain.genesis)

    def test_oversized(self):
        self.refuses(self.data + bytes(MAX_PROOF_SIZE), "oversized", self.chain.genesis)

    def test_count_over_its_bound(self):
        data = bytearray(self.data)
        data[len(MAGIC) + 2:len(MAGIC) + 6] = (MAX_HANDOFFS + 1).to_bytes(4, "little")
        self.refuses(bytes(data), "over-limit", self.chain.genesis)

    def test_not_a_proof_and_version(self):
        self.refuses(b"GET / HTTP/1.0\r\n\r\n" * 3, "not-a-proof", self.chain.genesis)
        self.refuses("text", "not-a-proof", self.chain.genesis)
        data = bytearray(self.data)
        data[len(MAGIC)] = 2
        self.refuses(bytes(data), "unsupported-version", self.chain.genesis)

    def test_malformed_parts(self):
        data = bytearray(self.data)
        start = len(MAGIC) + 6 + 4  # the first hand-off's header, after its length
        data[start] ^= 0xFF  # its tag
        self.refuses(bytes(data), "malformed-header", self.chain.genesis)
        handoff = self.proof.handoffs[0]
        for members in ((), tuple(reversed(handoff.validators)),
                        ((handoff.validators[0][0], 0),) + handoff.validators[1:]):
            bad = dataclasses.replace(handoff, validators=members)
            self.refuses(dataclasses.replace(self.proof, handoffs=(bad,)).encode(),
                         "malformed-set", self.chain.genesis)

    def test_malformed_certificate(self):
        head = len(MAGIC) + 6
        header_length = int.from_bytes(self.data[head:head + 4], "little")
        at = head + 4 + header_length
        cert_length = int.from_bytes(self.data[at:at + 4], "little")
        data = bytearray(self.data)
        # The certificate's signature count (u16 after height, round, hash):
        count_at = at + 4 + 12 + 1 + 32
        data[count_at:count_at + 2] = (0xFFFF).to_bytes(2, "big")
        self.assertGreater(cert_length, 50)
        self.refuses(bytes(data), "malformed-certificate", self.chain.genesis)


class MerkleRefusalTests(ProofTestCase):
    """The txid must be in the block the certificate commits."""

    def setUp(self):
        self.chain, _ = changing_chain()
        self.proof = self.chain.proof(tx_index=2)

    def test_txid_not_in_block(self):
        other = self.chain.records[0][0].txids[0]
        self.refuses_proof(dataclasses.replace(self.proof, txid=other),
                           "txid-not-in-block", self.chain.genesis)

    def test_bad_path(self):
        path = (bytes(32),) + self.proof.path[1:]
        self.refuses_proof(dataclasses.replace(self.proof, path=path), "txid-not-in-block",
                           self.chain.genesis)
        self.refuses_proof(dataclasses.replace(self.proof, path=self.proof.path[:-1]),
                           "txid-not-in-block", self.chain.genesis)

    def test_wrong_position(self):
        for index, size in ((3, 7), (1, 7), (0, 7), (7, 7), (2, 3), (2, 9)):
            self.refuses_proof(dataclasses.replace(self.proof, index=index, size=size),
                               "txid-not-in-block", self.chain.genesis)

    def test_position_is_not_proved(self):
        """A path proves inclusion, not the position: another (index, size)
        giving the path the same shape verifies too (doc/proofs.md)."""
        for index, size in ((2, 8), (2, 6)):
            check_proof(dataclasses.replace(self.proof, index=index, size=size),
                        self.chain.genesis)

    def test_asked_for_another_txid(self):
        self.refuses(self.proof.encode(), "txid-mismatch", self.chain.genesis, bytes(32))


class CertificateRefusalTests(ProofTestCase):
    """The target's certificate against the set in force after the hand-offs."""

    def setUp(self):
        self.chain, self.gone = changing_chain()
        self.proof = self.chain.proof()
        self.header = self.proof.header

    def with_signers(self, signers):
        certificate = self.chain.certify(self.header, signers)
        return dataclasses.replace(self.proof, certificate=certificate)

    def test_one_signature_short_of_two_thirds(self):
        quorum = quorum_of(self.chain.in_force)
        check_proof(self.with_signers(quorum), self.chain.genesis)
        self.refuses_proof(self.with_signers(quorum[:-1]), "insufficient-stake",
                           self.chain.genesis)

    def test_deactivated_signer(self):
        signers = sorted(quorum_of(self.chain.in_force) + [self.gone])
        self.refuses_proof(self.with_signers(signers), "unknown-signer", self.chain.genesis)

    def test_bad_signature(self):
        signatures = list(self.proof.certificate.signatures)
        pubkey, signature = signatures[1]
        signatures[1] = (pubkey, signature[:-1] + bytes([signature[-1] ^ 1]))
        certificate = dataclasses.replace(self.proof.certificate, signatures=tuple(signatures))
        self.refuses_proof(dataclasses.replace(self.proof, certificate=certificate),
                           "bad-signature", self.chain.genesis)

    def test_signed_on_another_network(self):
        """A quorum's precommits for this block hash, but under testnet's id."""
        chain = SignedChain(4)
        chain.network = TESTNET
        chain.pubkeys.update(self.chain.pubkeys)
        certificate = chain.certify(self.header, quorum_of(self.chain.in_force))
        self.refuses_proof(dataclasses.replace(self.proof, certificate=certificate),
                           "bad-signature", self.chain.genesis)

    def test_certificate_of_another_block(self):
        signers = quorum_of(self.chain.in_force)
        other = self.chain.certify(self.header, signers, block_hash=bytes(32))
        self.refuses_proof(dataclasses.replace(self.proof, certificate=other), "wrong-hash",
                           self.chain.genesis)
        previous = self.chain.records[-2][1]
        self.refuses_proof(dataclasses.replace(self.proof, certificate=previous),
                           "wrong-height", self.chain.genesis)

    def test_duplicate_and_unsorted_signers(self):
        sigs = self.proof.certificate.signatures
        for signatures, reason in ((sigs[:1] + sigs, "duplicate-signer"),
                                   (tuple(reversed(sigs)), "unsorted-signers")):
            certificate = dataclasses.replace(self.proof.certificate, signatures=signatures)
            self.refuses_proof(dataclasses.replace(self.proof, certificate=certificate), reason,
                               self.chain.genesis)

    def test_no_validators(self):
        """Mainnet's genesis registers no masternode: nothing can sign block 1."""
        chain = SignedChain(4, network=MAINNET)
        chain.in_force = {pk: 10 for pk in list(chain.pubkeys)[:4]}
        chain.add_block()
        self.refuses(chain.proof().encode(), "no-validators", chain.genesis)


class HandoffRefusalTests(ProofTestCase):
    """The chain of hand-offs from the genesis set to the target's signers."""

    def setUp(self):
        self.chain, _ = changing_chain()
        self.proof = self.chain.proof()
        self.first, self.second = self.proof.handoffs

    def test_omitted_handoff(self):
        """Without block 2's hand-off the new member's signature is unknown."""
        skipped = dataclasses.replace(self.proof, handoffs=(self.second,))
        error = self.refuses_proof(skipped, "unknown-signer", self.chain.genesis)
        self.assertEqual(error.height, 4)

    def test_skipped_removal(self):
        """Skipping block 4's hand-off (it only removed a member) verifies only
        if the signers hold more than 2/3 of the older, larger set."""
        skipped = dataclasses.replace(self.proof, handoffs=(self.first,))
        self.refuses_proof(skipped, "insufficient-stake", self.chain.genesis)
        everyone = self.chain.certify(self.proof.header, sorted(self.chain.in_force))
        check_proof(dataclasses.replace(skipped, certificate=everyone), self.chain.genesis)

    def test_out_of_order(self):
        swapped = dataclasses.replace(self.proof, handoffs=(self.second, self.first))
        self.refuses_proof(swapped, "handoff-out-of-order", self.chain.genesis)
        doubled = dataclasses.replace(self.proof, handoffs=(self.first, self.first))
        self.refuses_proof(doubled, "handoff-out-of-order", self.chain.genesis)
        early = self.chain.proof(3)
        late = dataclasses.replace(early, handoffs=early.handoffs + (self.second,))
        self.refuses_proof(late, "handoff-out-of-order", self.chain.genesis)

    def test_set_not_matching_its_header(self):
        members = dict(self.first.validators)
        first_key = sorted(members)[0]
        members[first_key] = 1000  # a Gold weight the header never committed to
        forged = dataclasses.replace(self.first, validators=tuple(sorted(members.items())))
        self.refuses_proof(dataclasses.replace(self.proof, handoffs=(forged, self.second)),
                           "set-hash-mismatch", self.chain.genesis)

    def test_handoff_that_changes_nothing(self):
        block, certificate, after = self.chain.records[0]
        idle = SetHandoff(block.header, certificate, tuple(sorted(after.items())))
        padded = dataclasses.replace(self.proof, handoffs=(idle,) + self.proof.handoffs)
        self.refuses_proof(padded, "handoff-no-change", self.chain.genesis)

    def test_handoff_one_signature_short(self):
        signers = quorum_of(self.chain.records[2][2])[:-1]  # the set in force at block 4
        short = dataclasses.replace(
            self.second, certificate=self.chain.certify(self.second.header, signers))
        error = self.refuses_proof(dataclasses.replace(self.proof,
                                                       handoffs=(self.first, short)),
                                   "insufficient-stake", self.chain.genesis)
        self.assertEqual(error.height, 4)

    def test_handoff_certificate_of_another_block(self):
        wrong = dataclasses.replace(self.first, certificate=self.second.certificate)
        self.refuses_proof(dataclasses.replace(self.proof, handoffs=(wrong, self.second)),
                           "wrong-height", self.chain.genesis)


class LargeSetTests(ProofTestCase):
    """A 100-masternode set verifies in milliseconds."""

    def test_hundred_masternodes(self):
        chain = SignedChain(100)
        chain.add_block()
        gone = sorted(chain.in_force)[5]
        chain.add_block(new_set={pk: w for pk, w in chain.in_force.items() if pk != gone},
                        deactivated=(gone,))
        chain.add_block(tx_count=2000)
        data = chain.proof(tx_index=1234).encode()
        verify_proof(data, chain.genesis)  # warm up
        runs = 5
        started = time.perf_counter()
        for _ in range(runs):
            proof = verify_proof(data, chain.genesis)
        elapsed = (time.perf_counter() - started) / runs
        self.assertEqual(len(proof.certificate.signatures), 67)
        self.assertEqual(len(proof.handoffs[0].validators), 99)
        # Two certificates of 67 Ed25519 signatures: tens of milliseconds on an
        # idle machine (doc/proofs.md); the bound leaves room for a loaded one.
        self.assertLess(elapsed, 2.0)
        self.assertLess(len(data), 20_000)

