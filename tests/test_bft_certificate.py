"""Commit certificates and evidence: canonical encodings and every rejection."""

from twisted.trial import unittest

from tests.test_bft import IDS, NET, A, B, ed25519_verify, vote
from timecoin.consensus.bft_messages import PRECOMMIT, PREVOTE
from timecoin.consensus.certificate import (
    CertificateError,
    CommitCertificate,
    Evidence,
    verify_certificate,
    verify_evidence,
)
from timecoin.consensus.proposer import ValidatorSet

SET = ValidatorSet.from_stakes({IDS[0]: 5, IDS[1]: 2, IDS[2]: 2, IDS[3]: 1})


def cert(signers, block_hash=A, height=1):
    return CommitCertificate.from_votes([vote(v, PRECOMMIT, 0, block_hash, height)
                                         for v in signers])


class CertificateTests(unittest.TestCase):
    """verify_certificate accepts only > 2/3 of the stake, distinct, valid signers."""

    def rejects(self, certificate, reason, **kw):
        with self.assertRaises(CertificateError) as caught:
            verify_certificate(certificate, SET, NET, ed25519_verify, **kw)
        self.assertEqual(caught.exception.reason, reason)

    def test_quorum_accepted_and_roundtrips(self):
        good = cert(IDS[:3])  # 9 of 10
        self.assertTrue(verify_certificate(good, SET, NET, ed25519_verify, 1, A))
        self.assertEqual(CommitCertificate.decode(good.encode()), good)

    def test_too_little_stake(self):
        self.assertTrue(verify_certificate(cert([IDS[0], IDS[1]]), SET, NET, ed25519_verify))
        self.rejects(cert([IDS[1], IDS[2], IDS[3]]), "insufficient-stake")

    def test_duplicate_signers(self):
        good = cert(IDS[:3])
        doubled = CommitCertificate(1, 0, A, good.signatures[:1] + good.signatures[:2])
        self.rejects(doubled, "duplicate-signer")

    def test_wrong_hash_height_and_bad_signature(self):
        good = cert(IDS[:3])
        self.rejects(good, "wrong-hash", block_hash=B)
        self.rejects(good, "wrong-height", height=2)
        moved = CommitCertificate(2, 0, A, good.signatures)
        self.rejects(moved, "bad-signature")
        bad = ((good.signatures[0][0], b"\x01" * 64),) + good.signatures[1:]
        self.rejects(CommitCertificate(1, 0, A, bad), "bad-signature")

    def test_unknown_signer(self):
        outsider = ValidatorSet.from_stakes({IDS[0]: 1, IDS[1]: 1})
        with self.assertRaises(CertificateError):
            verify_certificate(cert(IDS[:3]), outsider, NET, ed25519_verify)


class EvidenceTests(unittest.TestCase):
    """Two votes of one validator for different blocks in one slot, verifiable alone."""

    def test_roundtrip_and_verify(self):
        evidence = Evidence.of(vote(IDS[1], PREVOTE, 3, B), vote(IDS[1], PREVOTE, 3, A))
        self.assertEqual(Evidence.decode(evidence.encode()), evidence)
        self.assertTrue(verify_evidence(evidence, SET, NET, ed25519_verify))

    def test_not_evidence(self):
        with self.assertRaises(CertificateError):
            Evidence.of(vote(IDS[1], PREVOTE, 3, A), vote(IDS[1], PREVOTE, 4, B))
        with self.assertRaises(CertificateError):
            Evidence.of(vote(IDS[1], PREVOTE, 3, A), vote(IDS[2], PREVOTE, 3, B))
        forged = Evidence.of(vote(IDS[1], PREVOTE, 3, A),
                             vote(IDS[1], PREVOTE, 3, B).__class__(PREVOTE, 1, 3, B, IDS[1],
                                                                   b"\x02" * 64))
        with self.assertRaises(CertificateError):
            verify_evidence(forged, SET, NET, ed25519_verify)
