"""Carried commits and missed service: blocks carry the previous block's commit
certificate, validators verify it, and masternodes absent from enough of them
are deactivated identically on every node, within the guards."""

import dataclasses

from twisted.trial import unittest

from tests.test_block_checkpoint import NOW, Ledger
from timecoin.consensus.certificate import CommitCertificate
from timecoin.consensus.proposer import ProposerPriorities, ValidatorSet, replay_priorities
from timecoin.finality.blocks import network_tag
from timecoin.ledger.block import Block, BlockError, last_commit_hash
from timecoin.ledger.blockchain import BlockChain
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.missed import MISSED_SERVICE_BLOCKS, MissedService, select_missed
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.registration import BRONZE, Registration
from timecoin.ledger.registry import DEACTIVATION_BLOCKS, MasternodeRegistry
from timecoin.ledger.tx import OutPoint, TxRejected, sign_registration
from timecoin.node.blocks import NodeBlocks, last_signers

KEYS = [PrivateKey.devnet(i) for i in range(4)]
TAG = network_tag(DEVNET.network_id)


def certificate(block, signers):
    """A commit certificate of ``block`` signed by ``signers`` (PrivateKeys)."""
    unsigned = CommitCertificate(block.height, block.header.round, block.hash, ())
    message = unsigned.sign_bytes(TAG)
    return dataclasses.replace(unsigned, signatures=tuple(sorted(
        (k.pubkey, k.sign(message)) for k in signers)))


class Chain:
    """A :class:`Ledger` whose blocks carry commits, checked as the node does."""

    def __init__(self, threshold=3):
        self.l = Ledger()
        self.l.chain.missed_threshold = threshold
        self.host = NodeBlocks(None, self.l.chain, self.l.ledger, None, None, None, None,
                               None, None)
        self.time = NOW

    def build(self, last_commit=None):
        self.time += 2
        if last_commit is None:
            best = self.l.chain.certificate_at(self.l.chain.height())
            last_commit = best.encode() if best is not None else b""
        return self.l.ledger.build(0, self.l.proposer_of(0), self.time, last_commit=last_commit)

    def check(self, block):
        self.l.ledger.check(block, self.l.proposer_of, self.time,
                            verify_last_commit=self.host.verify_last_commit)

    def commit(self, block, signers=KEYS):
        cert = certificate(block, signers)
        self.l.chain.append(block, cert, self.l.ledger.transactions(block), last_signers(block))
        self.l.ledger.applied(block)
        return cert

    def step(self, signers=KEYS):
        block = self.build()
        self.check(block)
        self.commit(block, signers)
        return block


class CarriedCommitTests(unittest.TestCase):
    def setUp(self):
        self.c = Chain()

    def test_each_block_carries_the_certificate_of_the_one_before(self):
        first = self.c.step()
        self.assertEqual(first.last_commit, b"")
        self.assertEqual(first.header.last_commit_hash, bytes(32))
        second = self.c.build()
        self.assertEqual(second.last_commit, self.c.l.chain.certificate_at(1).encode())
        self.assertEqual(second.header.last_commit_hash, last_commit_hash(second.last_commit))
        self.c.check(second)
        self.assertEqual(Block.decode(second.encode()), second)
        self.assertEqual(second.header.fields()["last_commit_hash"],
                         second.header.last_commit_hash.hex())
        # The carried commit is under the block hash: another one is another block.
        other = self.c.build(certificate(first, KEYS[1:]).encode())
        self.assertNotEqual(other.hash, second.hash)

    def assertRefused(self, block, reason):
        with self.assertRaises(BlockError) as caught:
            self.c.check(block)
        self.assertIn(reason, str(caught.exception))

    def test_the_first_block_carries_none_and_the_later_ones_one(self):
        first = self.c.build(b"\1" * 40)
        self.assertRefused(first, "the first block carries a commit")
        self.c.step()
        self.assertRefused(self.c.build(b""), "carries no commit")

    def test_a_bad_carried_commit_is_refused(self):
        first = self.c.step()
        short = certificate(first, KEYS[:2])  # 20 of 40: not more than 2/3
        self.assertRefused(self.c.build(short.encode()), "does not verify")
        self.assertRefused(self.c.build(certificate(self.c.build(), KEYS).encode()),
                           "does not verify")  # a certificate of another block
        good = certificate(first, KEYS)
        pubkey, signature = good.signatures[0]
        forged = dataclasses.replace(good, signatures=(
            (pubkey, bytes([signature[0] ^ 1]) + signature[1:]),) + good.signatures[1:])
        self.assertRefused(self.c.build(forged.encode()), "does not verify")
        self.assertRefused(self.c.build(b"\x07" * 30), "malformed")
        block = self.c.build()
        swapped = Block(block.header, block.txids, block.reward_tx, good.encode()[:-1] + b"\0")
        self.assertRefused(swapped, "last_commit_hash")
        # Without a verifier no carried commit is taken.
        with self.assertRaises(BlockError):
            self.c.l.ledger.check(block, self.c.l.proposer_of, self.c.time)
        self.c.check(block)

    def test_the_set_that_signed_the_previous_block_verifies_its_commit(self):
        self.c.step()
        self.assertEqual(self.c.l.chain.active_set_at(0), self.c.l.chain.active_set_at(1))
        self.assertIsNone(self.c.l.chain.active_set_at(2))
        self.assertEqual(set(self.c.l.chain.active_set_at(1)), {k.pubkey for k in KEYS})


class MissedCountTests(unittest.TestCase):
    def test_absence_is_counted_and_a_signature_resets_it(self):
        missed = MissedService()
        active = {k.pubkey: 10 for k in KEYS}
        for _ in range(3):
            missed.note(active, [k.pubkey for k in KEYS[:3]])
        self.assertEqual(missed.count(KEYS[3].pubkey), 3)
        self.assertEqual(missed.candidates(active, 3), [(KEYS[3].pubkey, 3)])
        self.assertEqual(missed.candidates(active, 4), [])
        missed.note(active, [k.pubkey for k in KEYS])
        self.assertEqual(missed.count(KEYS[3].pubkey), 0)
        # Leaving the signing set leaves the count.
        missed.note(active, [k.pubkey for k in KEYS[:3]])
        missed.note({k.pubkey: 10 for k in KEYS[:3]}, [k.pubkey for k in KEYS[:3]])
        self.assertEqual(missed.count(KEYS[3].pubkey), 0)

    def test_the_default_threshold(self):
        self.assertEqual(BlockChain(Ledger().genesis).missed_threshold, MISSED_SERVICE_BLOCKS)
        self.assertEqual(MISSED_SERVICE_BLOCKS, 50)

    def test_guards_keep_the_minimum_and_less_than_a_third_of_the_stake(self):
        a, b, c, d, e = (bytes([i]) * 32 for i in range(1, 6))
        active = {a: 10, b: 10, c: 10, d: 10, e: 10}
        # Two of five is 20 of 50 stake: not less than 1/3 -> only one.
        self.assertEqual(select_missed(active, [(d, 9), (e, 7)], (), 1), (d,))
        # Most missed first; ties by pubkey.
        self.assertEqual(select_missed(active, [(e, 9), (d, 7)], (), 1), (e,))
        self.assertEqual(select_missed(active, [(e, 7), (d, 7)], (), 1), (d,))
        # The network's minimum, evidence deactivations of the block counted.
        self.assertEqual(select_missed(active, [(e, 9)], (), 4), (e,))
        self.assertEqual(select_missed(active, [(e, 9)], (a,), 4), ())
        self.assertEqual(select_missed(active, [(a, 9)], (a,), 1), ())
        # A large masternode that does not fit is skipped, a smaller one taken.
        weighted = {a: 10, b: 10, c: 10, d: 20, e: 5}
        self.assertEqual(select_missed(weighted, [(d, 9), (e, 8)], (), 1), (e,))


class MissedServiceBlockTests(unittest.TestCase):
    def setUp(self):
        self.c = Chain(threshold=3)
        self.absent = KEYS[3].pubkey
        self.c.step()

    def test_a_masternode_absent_from_enough_carried_commits_is_deactivated(self):
        # Block 1's commit lacks key 3, carried by block 2; and so on.
        self.c.commit(self.c.build(), KEYS[:3])  # block 2 carries block 1's (all)
        for _ in range(3):
            block = self.c.build()
            self.assertEqual(block.header.missed, ())
            self.c.check(block)
            self.c.commit(block, KEYS[:3])
        self.assertEqual(self.c.l.chain.missed.count(self.absent), 3)
        block = self.c.build()
        self.assertEqual(block.header.missed, (self.absent,))
        self.assertEqual(block.header.deactivated, ())
        self.c.check(block)
        self.c.commit(block, KEYS[:3])
        entry = self.c.l.chain.registry.get(self.absent)
        self.assertTrue(entry.missed_service)
        self.assertEqual(entry.deactivated_at, block.height)
        self.assertNotIn(self.absent, self.c.l.chain.registry.active_set())
        self.assertEqual(len(self.c.l.chain.active_set_at(block.height)), 3)
        # It is out of the signing set: no longer counted, nor listed again.
        self.c.step(KEYS[:3])
        following = self.c.build()
        self.assertEqual(following.header.missed, ())
        self.c.check(following)

    def forged(self, block, missed):
        """``block`` with another missed list (and the set hash that goes with it)."""
        trial = dataclasses.replace(block.header, missed=missed)
        return Block(trial, block.txids, block.reward_tx, block.last_commit)

    def test_a_deactivation_not_justified_by_this_chain_is_refused(self):
        self.c.commit(self.c.build(), KEYS[:3])
        self.c.commit(self.c.build(), KEYS[:3])  # key 3 absent from one carried commit
        block = self.c.build()
        with self.assertRaises(BlockError) as caught:
            self.c.check(self.forged(block, (self.absent,)))
        self.assertIn("missed-service", str(caught.exception))
        for _ in range(2):
            self.c.commit(self.c.build(), KEYS[:3])
        due = self.c.build()
        self.assertEqual(due.header.missed, (self.absent,))
        with self.assertRaises(BlockError):  # leaving it out is refused too
            self.c.check(self.forged(due, ()))
        with self.assertRaises(BlockError):  # as is a masternode that signed
            self.c.check(self.forged(due, tuple(sorted((self.absent, KEYS[0].pubkey)))))
        self.c.check(due)

    def test_a_restarted_chain_replays_the_counts_and_the_sets(self):
        for _ in range(7):
            self.c.commit(self.c.build(), KEYS[:3])
        self.assertFalse(self.c.l.chain.registry.get(self.absent).active)
        live = self.c.l.chain
        again = BlockChain(self.c.l.genesis, registry=type(live.registry).from_rows(
            live.registry.rows()))
        for h in range(1, live.height() + 1):
            block = live.block_at(h)
            changed = live.active_set_at(h) if live.active_set_at(h) != \
                live.active_set_at(h - 1) else None
            again.restore(block, live.certificate_at(h), last_signers(block), changed)
        again.restored()
        for h in range(live.height() + 1):
            self.assertEqual(again.active_set_at(h), live.active_set_at(h), h)
        self.assertEqual(again.missed._missed, live.missed._missed)
        # Without the stored set, the height that changed it is not known.
        blind = BlockChain(self.c.l.genesis, registry=type(live.registry).from_rows(
            live.registry.rows()))
        for h in range(1, live.height() + 1):
            block = live.block_at(h)
            blind.restore(block, live.certificate_at(h), last_signers(block))
        blind.restored()
        changed_at = next(h for h in range(1, live.height() + 1)
                          if live.active_set_at(h) != live.active_set_at(h - 1))
        self.assertIsNone(blind.active_set_at(changed_at))
        self.assertEqual(blind.active_set_at(live.height()), live.registry.active_set())


class ReplayTests(unittest.TestCase):
    """Proposer priorities replayed with the set each height had."""

    def test_replay_matches_a_machine_that_followed_every_height(self):
        a, b, c, d = (bytes([i]) * 32 for i in range(1, 5))
        sets = [{a: 10, b: 10, c: 10, d: 10}] * 5 + [{a: 10, b: 10, c: 10}] * 7 + \
            [{a: 10, b: 10, c: 10, d: 10}] * 4 + [{a: 10, b: 100, c: 10, d: 10}] * 3
        live = ProposerPriorities(ValidatorSet.from_stakes(sets[0]))
        proposers = []
        for active in sets[1:]:  # as BftMachine.start_height moves them
            proposers.append(live.proposer(0))
            live.advance()
            following = ValidatorSet.from_stakes(active)
            if following != live.validators:
                live = live.with_validators(following)
        replayed = replay_priorities(iter(sets))
        self.assertEqual(replayed.priorities, live.priorities)
        self.assertEqual(replayed.validators, live.validators)
        # Replaying with the current set throughout (the old way) differs.
        naive = ProposerPriorities(ValidatorSet.from_stakes(sets[-1]))
        for _ in sets[1:]:
            naive.advance()
        self.assertNotEqual(naive.priorities, live.priorities)
        self.assertIn(d, proposers)
        self.assertIsNone(replay_priorities([sets[0], None, sets[0]]))


class ReannouncementTests(unittest.TestCase):
    """A masternode deactivated for missed service rejoins by announcing again."""

    def setUp(self):
        self.registry = MasternodeRegistry.from_genesis(make_genesis(DEVNET, 4))
        self.key = KEYS[3]
        self.collateral = self.registry.get(self.key.pubkey).collateral

    def announcement(self, inputs):
        return sign_registration(self.key, inputs, [(BRONZE.collateral, self.key.key_hash)],
                                 DEVNET.network_id,
                                 Registration(BRONZE.code, 0, self.key.pubkey, self.key.key_hash),
                                 self.key)

    def test_missed_service_lasts_until_the_masternode_announces(self):
        again = self.announcement([self.collateral, OutPoint(b"\3" * 32, 0)])
        with self.assertRaises(TxRejected):  # active: registered already
            self.registry.check_registration(again)
        changes = self.registry.apply_block(1, [], missed=[self.key.pubkey])
        self.assertEqual(changes["deactivated"], [self.key.pubkey])
        self.assertNotIn(self.key.pubkey, self.registry.active_set())
        # No rejoining by itself, unlike evidence deactivations.
        self.registry.apply_block(1 + DEACTIVATION_BLOCKS, [])
        self.assertNotIn(self.key.pubkey, self.registry.active_set())
        self.assertTrue(self.registry.get(self.key.pubkey).missed_service)
        # Announcing without spending its collateral is a duplicate.
        with self.assertRaises(TxRejected):
            self.registry.check_registration(self.announcement([OutPoint(b"\3" * 32, 0)]))
        self.registry.check_registration(again)
        self.assertTrue(self.registry.finalized(again))
        self.assertNotIn(self.key.pubkey, self.registry.active_set())  # until a block
        changes = self.registry.apply_block(2 + DEACTIVATION_BLOCKS, [again])
        self.assertEqual(changes["joined"], [self.key.pubkey])
        entry = self.registry.get(self.key.pubkey)
        self.assertTrue(entry.active)
        self.assertFalse(entry.missed_service)
        self.assertEqual(entry.collateral, OutPoint(again.txid, 0))
        self.assertEqual(entry.registered_height, 2 + DEACTIVATION_BLOCKS)
        self.assertEqual(len(self.registry.active_set()), 4)
        # The reason survives storage rows.
        self.registry.apply_block(3 + DEACTIVATION_BLOCKS, [], missed=[self.key.pubkey])
        stored = MasternodeRegistry.from_rows(self.registry.rows())
        self.assertTrue(stored.get(self.key.pubkey).missed_service)
        self.assertEqual(stored.active_set(), self.registry.active_set())

    def test_an_evidence_deactivation_keeps_its_period(self):
        self.registry.apply_block(1, [], [self.key.pubkey])
        self.assertFalse(self.registry.get(self.key.pubkey).missed_service)
        with self.assertRaises(TxRejected):
            self.registry.check_registration(
                self.announcement([self.collateral, OutPoint(b"\3" * 32, 0)]))
        self.registry.apply_block(1 + DEACTIVATION_BLOCKS, [])
        self.assertIn(self.key.pubkey, self.registry.active_set())
