"""Accountability: evidence verified, pooled, relayed, and deactivating its
offender through a block; unjustified deactivations refused."""

import dataclasses

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.test_block_checkpoint import NOW, Ledger
from tests.test_block_service import Network
from timecoin.consensus.bft_messages import PREVOTE, Vote
from timecoin.consensus.certificate import Evidence
from timecoin.consensus.evidence import EvidencePool
from timecoin.finality.block_messages import EvidenceMessage
from timecoin.finality.blocks import network_tag
from timecoin.interfaces import IEvidencePool
from timecoin.ledger.block import Block, BlockError
from timecoin.ledger.encoding import DecodeError
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.registry import DEACTIVATION_BLOCKS
from timecoin.p2p import messages as m
from timecoin.p2p.messages import decode_message, encode_message

TAG = network_tag(DEVNET.network_id)


def signed_prevote(key, height, round_, block_hash):
    vote = Vote(PREVOTE, height, round_, block_hash, key.pubkey)
    return dataclasses.replace(vote, signature=key.sign(vote.sign_bytes(TAG)))


def double_prevote(key, height=1, round_=0):
    """Evidence: ``key`` prevoted two blocks at (height, round)."""
    return Evidence.of(signed_prevote(key, height, round_, b"\1" * 32),
                       signed_prevote(key, height, round_, b"\2" * 32))


class EvidencePoolTests(unittest.TestCase):
    def test_provides_its_interface(self):
        verifyObject(IEvidencePool, EvidencePool())

    def test_one_piece_per_double_signing_and_bounded(self):
        keys = [PrivateKey.devnet(i) for i in range(3)]
        pool = EvidencePool(limit=2)
        self.assertTrue(pool.add(double_prevote(keys[0])))
        self.assertFalse(pool.add(double_prevote(keys[0])))
        self.assertTrue(pool.add(double_prevote(keys[0], round_=1)))
        self.assertEqual(len(pool), 2)
        self.assertTrue(pool.add(double_prevote(keys[1])))  # the oldest goes
        self.assertEqual(len(pool), 2)
        self.assertNotIn(double_prevote(keys[0]), pool)
        self.assertEqual(pool.offenders(), sorted([keys[0].pubkey, keys[1].pubkey]))
        self.assertEqual(pool.offenders({keys[1].pubkey: 10}), [keys[1].pubkey])
        self.assertTrue(pool.justifies(keys[1].pubkey))
        self.assertFalse(pool.justifies(keys[2].pubkey))
        pool.settled([keys[0].pubkey])
        self.assertEqual(pool.offenders(), [keys[1].pubkey])

    def test_the_wire_message_round_trips_and_refuses_a_non_conflict(self):
        evidence = double_prevote(PrivateKey.devnet(0))
        message = decode_message(encode_message(EvidenceMessage(evidence)))
        self.assertEqual(message.evidence, evidence)
        same = signed_prevote(PrivateKey.devnet(0), 1, 0, b"\1" * 32)
        forged = EvidenceMessage(Evidence(same, same))
        with self.assertRaises(DecodeError):
            decode_message(encode_message(forged))


class DeactivationLedgerTests(unittest.TestCase):
    def setUp(self):
        self.l = Ledger()

    def test_a_justified_deactivation_checks_and_takes_the_weight_out(self):
        offender = self.l.keys[3]
        block = self.l.ledger.build(0, self.l.keys[0], NOW, [offender, b"\x09" * 32])
        self.assertEqual(block.header.deactivated, (offender,))  # only active ones
        self.l.ledger.check(block, self.l.proposer_of, NOW, lambda pk: pk == offender)
        self.l.commit(block)
        self.assertNotIn(offender, self.l.chain.registry.active_set())
        self.assertEqual(len(self.l.chain.registry.active_set()), 3)
        self.assertEqual(block.header.masternode_set_hash,
                         self.l.chain.registry.masternode_set_hash())

    def test_an_unjustified_or_malformed_deactivation_is_refused(self):
        keys = self.l.keys
        block = self.l.ledger.build(0, keys[0], NOW, [keys[3]])
        for justified in (None, lambda pk: False):
            with self.assertRaises(BlockError):
                self.l.ledger.check(block, self.l.proposer_of, NOW, justified)
        pair = self.l.ledger.build(0, keys[0], NOW, [keys[2], keys[3]])
        unsorted = Block(dataclasses.replace(pair.header, deactivated=(keys[3], keys[2])),
                         pair.txids, pair.reward_tx)
        with self.assertRaises(BlockError):
            self.l.ledger.check(unsorted, self.l.proposer_of, NOW, lambda pk: True)
        stranger = Block(dataclasses.replace(block.header, deactivated=(b"\x09" * 32,)),
                         block.txids, block.reward_tx)
        with self.assertRaises(BlockError):
            self.l.ledger.check(stranger, self.l.proposer_of, NOW, lambda pk: True)


class EvidenceServiceTests(unittest.TestCase):
    def test_evidence_from_a_peer_deactivates_the_offender_on_every_node(self):
        net = Network(self, 4)
        offender = net.keys[3]
        net.start()
        net.run(5)
        # A peer hands node 0 the evidence; it verifies, keeps and relays it.
        net.mesh.endpoints[0].handlers[m.EVIDENCE](2, EvidenceMessage(double_prevote(offender)))
        self.assertEqual(net.services[0].evidence, 1)
        net.run(30)
        for host in net.hosts:
            deactivating = [b.height for b, _ in host.committed
                            if offender.pubkey in b.header.deactivated]
            self.assertEqual(len(deactivating), 1)
            self.assertNotIn(offender.pubkey, host.validators())
        self.assertEqual([s.evidence for s in net.services], [1, 1, 1, 1])
        self.assertEqual([len(s.evidence_pool) for s in net.services], [0, 0, 0, 0])
        # The other three keep committing, with equal hashes.
        deactivated_at = deactivating[0]
        self.assertGreater(min(net.heights([0, 1, 2])), deactivated_at + 5)
        self.assertEqual(len(net.hashes_at(min(net.heights([0, 1, 2])), [0, 1, 2])), 1)
        self.assertFalse(net.services[3].is_validator())

    def test_evidence_with_a_bad_signature_is_neither_kept_nor_relayed(self):
        net = Network(self, 4)
        net.start()
        net.run(3)
        good = double_prevote(net.keys[3])
        forged = Evidence(good.first, dataclasses.replace(good.second, signature=b"\0" * 64))
        sent_before = len(net.mesh.endpoints[0].sent)
        net.mesh.endpoints[0].handlers[m.EVIDENCE](2, EvidenceMessage(forged))
        self.assertEqual(net.services[0].bad_evidence, 1)
        self.assertEqual(len(net.services[0].evidence_pool), 0)
        self.assertFalse([msg for _, msg in net.mesh.endpoints[0].sent[sent_before:]
                          if isinstance(msg, EvidenceMessage)])
        # Evidence against a masternode outside the active set is refused too.
        net.mesh.endpoints[0].handlers[m.EVIDENCE](
            2, EvidenceMessage(double_prevote(PrivateKey.devnet(9))))
        self.assertEqual(net.services[0].bad_evidence, 2)
        # And evidence older than the deactivation period.
        net.services[0].machine.height = DEACTIVATION_BLOCKS + 1
        net.mesh.endpoints[0].handlers[m.EVIDENCE](2, EvidenceMessage(good))
        self.assertEqual(net.services[0].bad_evidence, 3)
        self.assertEqual(len(net.services[0].evidence_pool), 0)

    def test_a_validator_refuses_a_block_with_an_unjustified_deactivation(self):
        net = Network(self, 4)
        victim = net.keys[3].pubkey
        # Node 0 deactivates node 3 with evidence no one else has seen
        # (evidence messages never leave it).
        net.mesh.filter = lambda src, dst, message: not isinstance(message, EvidenceMessage)
        net.services[0].evidence_pool.add(double_prevote(net.keys[3]))
        net.start()
        net.run(40)
        self.assertGreater(min(net.heights()), 8)
        for host in net.hosts:
            self.assertIn(victim, host.validators())
            self.assertFalse([b for b, _ in host.committed if b.header.deactivated])
        self.assertGreater(sum(s.bad_blocks for s in net.services[1:]), 0)

    def test_a_follower_takes_a_certified_deactivation_it_has_no_evidence_for(self):
        net = Network(self, 5, validators=4)
        offender = net.keys[3]
        net.start()
        net.run(5)
        net.mesh.endpoints[0].handlers[m.EVIDENCE](2, EvidenceMessage(double_prevote(offender)))
        net.run(40)
        follower = net.hosts[4]
        self.assertEqual(len(net.services[4].evidence_pool), 0)
        self.assertEqual(net.services[4].evidence, 0)  # evidence goes to masternodes
        self.assertNotIn(offender.pubkey, follower.validators())
        self.assertGreater(follower.height(), 10)
        for height in range(1, follower.height() + 1):
            self.assertEqual(follower.block_at(height).hash, net.hosts[0].block_at(height).hash)
