"""The BFT round machine's rules, one at a time, with Ed25519 signatures (PyNaCl)."""

import nacl.exceptions
import nacl.signing
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from timecoin.consensus.bft import BftMachine, BftTimeouts
from timecoin.consensus.bft_messages import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    Broadcast,
    BuildBlock,
    CommitBlock,
    EvidenceFound,
    Proposal,
    SendCertificate,
    ValidateBlock,
    Vote,
)
from timecoin.consensus.certificate import verify_certificate, verify_evidence
from timecoin.consensus.proposer import ValidatorSet
from timecoin.interfaces import IBftMachine

NET = b"testnet"
KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(4)]
IDS = [bytes(k.verify_key) for k in KEYS]
SIGNERS = dict(zip(IDS, KEYS, strict=True))
A, B = b"A" * 32, b"B" * 32
TIMEOUTS = BftTimeouts(propose=3.0, propose_delta=1.0, prevote=1.0, prevote_delta=0.5,
                       precommit=1.0, precommit_delta=0.5, rebroadcast=None)


def ed25519_verify(validator, data, signature):
    try:
        nacl.signing.VerifyKey(validator).verify(data, signature)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False


def signer(validator):
    return lambda data: SIGNERS[validator].sign(data).signature


def vote(validator, msg_type, round_, block_hash, height=1):
    unsigned = Vote(msg_type, height, round_, block_hash, validator)
    return Vote(msg_type, height, round_, block_hash, validator,
                signer(validator)(unsigned.sign_bytes(NET)))


def proposal(validator, round_, block_hash, pol_round=-1, height=1):
    unsigned = Proposal(height, round_, block_hash, pol_round, validator)
    return Proposal(height, round_, block_hash, pol_round, validator,
                    signer(validator)(unsigned.sign_bytes(NET)))


def broadcasts(actions, kind=None):
    return [a.message for a in actions if isinstance(a, Broadcast)
            and (kind is None or getattr(a.message, "msg_type", None) == kind)]


class RoundMachineTests(unittest.TestCase):
    """Each Tendermint rule on a 4-validator equal-stake set (quorum: 3)."""

    def setUp(self):
        self.validators = ValidatorSet.from_stakes(dict.fromkeys(IDS, 1))
        probe = BftMachine(NET, self.validators, None, None, ed25519_verify, TIMEOUTS)
        probe.start_height(1, 0.0)
        # A node that proposes neither round 0 nor round 1, and the proposers.
        self.p0, self.p1 = probe.proposer(0), probe.proposer(1)
        self.me = next(v for v in IDS if v not in (self.p0, self.p1))
        self.others = [v for v in IDS if v != self.me]
        self.m = BftMachine(NET, self.validators, self.me, signer(self.me), ed25519_verify,
                            TIMEOUTS)
        self.m.start_height(1, 0.0)
        self.m.on_tick(0.0)

    def deliver(self, message, now=0.1):
        if isinstance(message, Proposal):
            return self.m.on_proposal(message, now)
        return self.m.on_vote(message, now)

    def propose_valid(self, round_, block_hash, pol=-1, proposer=None, now=0.1):
        out = self.deliver(proposal(proposer or self.m.proposer(round_), round_, block_hash,
                                    pol), now)
        if any(isinstance(a, ValidateBlock) for a in out):
            out += self.m.on_block_validated(1, block_hash, True, now)
        return out

    def lock_on(self, block_hash, round_=0):
        self.propose_valid(round_, block_hash)
        out = []
        for v in [v for v in self.others if v != self.m.proposer(round_)][:2]:
            out += self.deliver(vote(v, PREVOTE, round_, block_hash))
        return out

    def test_provides_interface(self):
        self.assertTrue(verifyObject(IBftMachine, self.m))

    def test_valid_proposal_is_prevoted_after_validation(self):
        out = self.deliver(proposal(self.p0, 0, A))
        self.assertEqual([a for a in out if isinstance(a, ValidateBlock)],
                         [ValidateBlock(1, A)])
        self.assertEqual(broadcasts(out), [])  # waits for the caller's verdict
        out = self.m.on_block_validated(1, A, True, 0.2)
        (prevote,) = broadcasts(out, PREVOTE)
        self.assertEqual((prevote.block_hash, prevote.round, prevote.validator), (A, 0, self.me))
        self.assertTrue(ed25519_verify(self.me, prevote.sign_bytes(NET), prevote.signature))

    def test_invalid_proposal_is_prevoted_nil(self):
        self.deliver(proposal(self.p0, 0, A))
        (prevote,) = broadcasts(self.m.on_block_validated(1, A, False, 0.2), PREVOTE)
        self.assertEqual(prevote.block_hash, NIL)

    def test_proposal_from_wrong_proposer_is_ignored(self):
        self.assertEqual(self.deliver(proposal(self.me, 0, A)), [])
        self.assertEqual(self.m.stats.ignored, 1)

    def test_nil_prevote_on_propose_timeout(self):
        self.assertEqual(broadcasts(self.m.on_tick(2.9)), [])
        (prevote,) = broadcasts(self.m.on_tick(3.0), PREVOTE)
        self.assertEqual(prevote.block_hash, NIL)

    def test_timeouts_grow_per_round(self):
        self.assertEqual(self.m.next_deadline(), 3.0)
        self.m.on_tick(3.0)
        for v in self.others:  # a nil prevote quorum: precommit nil
            self.deliver(vote(v, PREVOTE, 0, NIL), 3.1)
        for v in self.others:  # any precommit quorum schedules the precommit timeout
            self.deliver(vote(v, PRECOMMIT, 0, NIL), 3.2)
        self.assertEqual(self.m.next_deadline(), 3.2 + 1.0)
        self.m.on_tick(4.2)
        self.assertEqual(self.m.round, 1)
        self.assertEqual(self.m.next_deadline(), 4.2 + 3.0 + 1.0)

    def test_bad_signature_is_dropped(self):
        good = vote(self.others[0], PREVOTE, 0, A)
        forged = Vote(PREVOTE, 1, 0, A, self.others[0], b"\x00" * 64)
        self.assertEqual(self.deliver(forged), [])
        self.assertEqual(self.m.stats.bad_signatures, 1)
        self.deliver(good)
        self.assertEqual(self.m.stats.bad_signatures, 1)

    def test_prevote_quorum_locks_and_precommits(self):
        out = self.lock_on(A)
        (precommit,) = broadcasts(out, PRECOMMIT)
        self.assertEqual(precommit.block_hash, A)
        self.assertEqual((self.m.locked_value, self.m.locked_round), (A, 0))
        self.assertEqual((self.m.valid_value, self.m.valid_round), (A, 0))

    def test_nil_prevote_quorum_precommits_nil(self):
        self.m.on_tick(3.0)
        out = []
        for v in self.others[:2]:
            out += self.deliver(vote(v, PREVOTE, 0, NIL), 3.1)
        (precommit,) = broadcasts(out, PRECOMMIT)
        self.assertEqual(precommit.block_hash, NIL)

    def test_locked_node_prevotes_nil_for_another_block(self):
        self.lock_on(A)
        self.advance_to_round(1)
        out = self.propose_valid(1, B)
        (prevote,) = broadcasts(out, PREVOTE)
        self.assertEqual(prevote.block_hash, NIL)
        self.assertEqual(self.m.locked_value, A)

    def test_locked_node_prevotes_its_lock_reproposed(self):
        self.lock_on(A)
        self.advance_to_round(1)
        out = self.deliver(proposal(self.p1, 1, A, pol_round=0))
        (prevote,) = broadcasts(out, PREVOTE)
        self.assertEqual(prevote.block_hash, A)

    def test_unlocks_on_a_later_pol(self):
        self.lock_on(A)
        self.advance_to_round(1)
        # Round 1 had a prevote quorum for B that this node did not take part in.
        for v in self.others:
            self.deliver(vote(v, PREVOTE, 1, B), 5.0)
        self.m.on_block_validated(1, B, True, 5.0)
        self.advance_to_round(2, now=20.0)
        out = self.propose_valid(2, B, pol=1, now=20.1)
        (prevote,) = broadcasts(out, PREVOTE)
        self.assertEqual(prevote.block_hash, B)

    def test_repropose_waits_for_the_pol(self):
        self.advance_to_round(1)
        out = self.propose_valid(1, B, pol=0)
        self.assertEqual(broadcasts(out, PREVOTE), [])  # no POL for B in round 0 seen
        for v in self.others:
            out = self.deliver(vote(v, PREVOTE, 0, B), 5.0)
        (prevote,) = broadcasts(out, PREVOTE)
        self.assertEqual(prevote.block_hash, B)

    def test_valid_value_is_reproposed_by_later_proposer(self):
        proposer = self.p0
        m = BftMachine(NET, self.validators, proposer, signer(proposer), ed25519_verify,
                       TIMEOUTS)
        m.start_height(1, 0.0)
        out = m.on_tick(0.0)
        self.assertEqual(out, [BuildBlock(1, 0)])
        sent = broadcasts(m.on_block_built(1, 0, A, 0.1))
        (own,) = [p for p in sent if isinstance(p, Proposal)]
        self.assertEqual((own.block_hash, own.pol_round), (A, -1))
        self.assertEqual([(v.msg_type, v.block_hash) for v in sent if isinstance(v, Vote)],
                         [(PREVOTE, A)])
        others = [v for v in IDS if v != proposer]
        for v in others[:2]:
            m.on_vote(vote(v, PREVOTE, 0, A), 0.2)
        self.assertEqual(m.valid_value, A)
        # Round 0 fails (precommits nil); when it proposes again it re-proposes A with POL 0.
        for v in others:
            m.on_vote(vote(v, PRECOMMIT, 0, NIL), 0.3)
        later = []
        now = 1.0
        while not later and m.round < 12:
            for v in others:
                m.on_vote(vote(v, PRECOMMIT, m.round, NIL), now)
            now += 100.0
            later = [p for p in broadcasts(m.on_tick(now)) if isinstance(p, Proposal)]
        (again,) = later
        self.assertGreater(again.round, 0)
        self.assertEqual((again.block_hash, again.pol_round), (A, 0))

    def test_precommit_quorum_commits_with_certificate(self):
        self.lock_on(A)
        out = []
        for v in self.others[:2]:
            out += self.deliver(vote(v, PRECOMMIT, 0, A), 0.5)
        (commit,) = [a for a in out if isinstance(a, CommitBlock)]
        self.assertEqual((commit.height, commit.block_hash), (1, A))
        self.assertEqual(len(commit.certificate.signatures), 3)
        self.assertTrue(verify_certificate(commit.certificate, self.validators, NET,
                                           ed25519_verify, height=1, block_hash=A))
        self.assertEqual(self.m.step, "committed")

    def test_late_round_skip_on_one_third(self):
        self.deliver(vote(self.others[0], PREVOTE, 5, NIL))
        self.assertEqual(self.m.round, 0)
        self.deliver(vote(self.others[1], PRECOMMIT, 5, NIL))
        self.assertEqual(self.m.round, 5)

    def test_equivocation_is_evidence(self):
        v = self.others[0]
        self.deliver(vote(v, PREVOTE, 0, A))
        out = self.deliver(vote(v, PREVOTE, 0, B))
        (found,) = [a.evidence for a in out if isinstance(a, EvidenceFound)]
        self.assertEqual(found.validator, v)
        self.assertTrue(verify_evidence(found, self.validators, NET, ed25519_verify))

    def test_next_height_drops_votes_and_helps_laggards(self):
        self.lock_on(A)
        for v in self.others[:2]:
            self.deliver(vote(v, PRECOMMIT, 0, A), 0.5)
        self.m.start_height(2, 1.0)
        self.assertEqual(len(self.m._votes), 0)
        out = self.deliver(vote(self.others[2], PREVOTE, 3, NIL, height=1), 1.1)
        self.assertEqual(out, [SendCertificate(self.others[2], self.m.last_certificate)])
        # A lagging node takes the certificate and commits.
        lag = BftMachine(NET, self.validators, self.others[2], signer(self.others[2]),
                         ed25519_verify, TIMEOUTS)
        lag.start_height(1, 0.0)
        out = lag.on_certificate(self.m.last_certificate, 1.2)
        self.assertEqual(out, [ValidateBlock(1, A)])
        (commit,) = lag.on_block_validated(1, A, True, 1.3)
        self.assertEqual(commit.block_hash, A)

    def advance_to_round(self, round_, now=None):
        """Time out rounds until ``round_`` (nil prevotes and precommits from the others)."""
        now = now if now is not None else 10.0 * round_
        while self.m.round < round_:
            r = self.m.round
            for v in self.others:
                self.deliver(vote(v, PRECOMMIT, r, NIL), now)
            self.m.on_tick(now + 100.0)
            now += 100.0
