"""The block service without sockets: fake hosts, an in-memory mesh and a Clock."""

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from timecoin.consensus.bft_messages import PRECOMMIT, Vote
from timecoin.consensus.certificate import CertificateError, CommitCertificate, verify_certificate
from timecoin.consensus.proposer import ValidatorSet
from timecoin.finality.block_messages import (
    BlockPrecommitMessage,
    BlockPrevoteMessage,
    BlockProposalMessage,
    Blocks,
    GetBlocks,
)
from timecoin.finality.blocks import BlockService, network_tag
from timecoin.interfaces import IBlockHost, IBlockService, IPeerMessaging
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.keys import verify as ed25519_verify
from timecoin.ledger.networks import DEVNET, TESTNET, signing_network_id
from timecoin.p2p import messages as m
from timecoin.p2p.messages import decode_message, encode_message
from timecoin.proofs.verify import genesis_set, make_proof, verify_proof
from timecoin.testing.blocks import FakeBlockHost, Mesh

INTERVAL = 2.0


class Network:
    """``n`` block services, the first ``validators`` of them in the active set."""

    def __init__(self, testcase, n, validators=None, min_validators=1, weights=None):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.keys = [PrivateKey.devnet(i) for i in range(n)]
        count = n if validators is None else validators
        active = {k.pubkey: (weights[i] if weights else 10)
                  for i, k in enumerate(self.keys[:count])}
        self.mesh = Mesh(self.clock, [k.pubkey for k in self.keys], masternodes=active)
        self.hosts = [FakeBlockHost(DEVNET.network_id, active) for _ in range(n)]
        self.services = []
        for i, key in enumerate(self.keys):
            service = BlockService(self.clock, self.hosts[i], DEVNET.network_id, INTERVAL, key,
                                   min_validators=min_validators)
            service.attach(self.mesh.endpoints[i])
            self.services.append(service)
        testcase.addCleanup(self.stop)

    def start(self, indices=None):
        for i in range(len(self.services)) if indices is None else indices:
            self.services[i].startService()

    def stop(self):
        for service in self.services:
            if service.running:
                service.stopService()

    def run(self, seconds, step=0.01):
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def heights(self, indices=None):
        return [self.hosts[i].height() for i in (indices or range(len(self.hosts)))]

    def hashes_at(self, height, indices=None):
        return {self.hosts[i].block_at(height).hash for i in indices or range(len(self.hosts))
                if self.hosts[i].block_at(height) is not None}


class BlockServiceTests(unittest.TestCase):
    def test_provides_its_interfaces(self):
        net = Network(self, 1)
        verifyObject(IBlockService, net.services[0])
        verifyObject(IBlockHost, net.hosts[0])
        verifyObject(IPeerMessaging, net.mesh.endpoints[0])

    def test_four_masternodes_commit_a_block_every_interval_with_equal_hashes(self):
        net = Network(self, 4)
        net.start()
        net.run(21)
        heights = net.heights()
        # The first height starts one interval after start; each commit is
        # followed by one interval before the next height starts.
        self.assertTrue(all(9 <= h <= 10 for h in heights), heights)
        for height in range(1, min(heights) + 1):
            self.assertEqual(len(net.hashes_at(height)), 1, height)
        times = [net.hosts[0].block_at(h).header.time for h in range(1, min(heights) + 1)]
        gaps = {b - a for a, b in zip(times, times[1:], strict=False)}
        self.assertTrue(gaps <= {2, 3}, gaps)
        # Every block carries a certificate of > 2/3 of the stake (3 of 4).
        for block, certificate in net.hosts[1].committed:
            self.assertEqual(certificate.block_hash, block.hash)
            self.assertGreaterEqual(len(certificate.signatures), 3)
        self.assertEqual(net.services[0].statistics()[0][3].get(1), min(heights) or None)

    def test_proposers_rotate_by_stake(self):
        net = Network(self, 4)
        net.start()
        net.run(41)
        proposers = [b.header.proposer for b, _ in net.hosts[0].committed]
        self.assertEqual(set(proposers), {k.pubkey for k in net.keys})

    def test_one_crashed_masternode_of_four_does_not_stop_blocks(self):
        net = Network(self, 4)
        net.mesh.down.add(3)
        net.start([0, 1, 2])
        net.run(40)
        heights = net.heights([0, 1, 2])
        self.assertTrue(all(h >= 8 for h in heights), heights)
        self.assertEqual(len(net.hashes_at(min(heights), [0, 1, 2])), 1)
        # Rounds whose proposer was the crashed node did not commit: missed proposals.
        self.assertGreater(net.services[0].missed_proposals, 0)

    def test_two_of_four_commit_nothing(self):
        net = Network(self, 4)
        net.mesh.down.update({2, 3})
        net.start([0, 1])
        net.run(40)
        self.assertEqual(net.heights([0, 1]), [0, 0])

    def test_too_small_an_active_set_commits_nothing(self):
        net = Network(self, 2, min_validators=3)
        net.start()
        net.run(30)
        self.assertEqual(net.heights(), [0, 0])
        self.assertFalse(net.services[0].is_validator())

    def test_a_restarted_masternode_catches_up_from_stored_blocks(self):
        net = Network(self, 4)
        net.mesh.down.add(3)
        net.start([0, 1, 2])
        net.run(20)
        self.assertEqual(net.heights([3]), [0])
        net.mesh.down.discard(3)
        net.start([3])
        net.run(20)
        heights = net.heights()
        self.assertLessEqual(max(heights) - min(heights), 1, heights)
        self.assertGreater(net.services[3].synced, 3)
        for height in range(1, min(heights) + 1):
            self.assertEqual(len(net.hashes_at(height)), 1)

    def test_a_follower_applies_only_certified_blocks(self):
        net = Network(self, 5, validators=4)
        net.start()
        net.run(21)
        follower = net.hosts[4]
        self.assertFalse(net.services[4].is_validator())
        self.assertGreaterEqual(follower.height(), min(net.heights([0, 1, 2, 3])) - 1)
        self.assertGreater(follower.height(), 5)
        for height in range(1, follower.height() + 1):
            self.assertEqual(follower.block_at(height).hash, net.hosts[0].block_at(height).hash)

    def test_blocks_with_a_forged_certificate_are_not_applied(self):
        net = Network(self, 5, validators=4)
        net.start([0, 1, 2, 3])
        net.run(9)
        block, certificate = net.hosts[0].committed[0]
        # Signatures by keys of the set over another block hash: not a commit.
        forged_sigs = tuple(sorted(
            (k.pubkey, k.sign(Vote(PRECOMMIT, 1, 0, b"\7" * 32, k.pubkey).sign_bytes(
                network_tag(DEVNET.network_id))))
            for k in net.keys[:4]))
        forged = CommitCertificate(1, 0, block.hash, forged_sigs)
        too_few = CommitCertificate(1, certificate.round, block.hash, certificate.signatures[:2])
        outsider = PrivateKey.devnet(99)
        unknown = CommitCertificate(1, 0, block.hash, tuple(sorted(
            [(outsider.pubkey, outsider.sign(certificate.sign_bytes(
                network_tag(DEVNET.network_id))))] + list(certificate.signatures[:2]))))
        # The follower starts cut off from the others: only what the test delivers.
        net.mesh.filter = lambda src, dst, message: 4 not in (src, dst)
        net.services[4].startService()
        handler = net.mesh.endpoints[4].handlers[m.BLOCKS]
        for bad in (forged, too_few, unknown):
            handler(1, Blocks(((block.encode(), bad.encode(), ()),)))
            net.run(1)
            self.assertEqual(net.hosts[4].height(), 0)
        handler(1, Blocks(((block.encode(), certificate.encode(), ()),)))
        net.run(1)
        self.assertEqual(net.hosts[4].height(), 1)
        self.assertEqual(net.hosts[4].block_at(1).hash, block.hash)

    def test_a_block_waits_for_its_missing_transactions(self):
        net = Network(self, 4)
        txid = b"\x42" * 32
        for host in net.hosts:
            host.txids = (txid,)
        # Node 3 is down, node 2's proposals are lost and node 2 lacks the
        # transaction: only 2 of 4 can prevote the blocks of 0 and 1.
        net.mesh.down.add(3)
        net.mesh.filter = lambda src, dst, message: not (
            src == 2 and message.KIND == m.BLOCK_PROPOSAL)
        net.hosts[2].missing.add(txid)
        net.start([0, 1, 2])
        net.run(15)
        self.assertEqual(net.heights([0, 1, 2]), [0, 0, 0])
        # Node 2 prevoted nil (propose timeout) rather than refusing the block.
        self.assertEqual(net.services[2].bad_blocks, 0)
        net.hosts[2].missing.clear()  # it arrived (and was finalized)
        net.run(20)
        self.assertTrue(all(h >= 1 for h in net.heights([0, 1, 2])), net.heights())
        self.assertEqual(len(net.hashes_at(1, [0, 1, 2])), 1)
        self.assertEqual(net.hosts[2].block_at(1).txids, (txid,))

    def test_blocks_found_invalid_are_never_committed(self):
        net = Network(self, 4)
        liar = net.keys[0].pubkey
        for host in net.hosts[1:]:
            host.refused_proposers.add(liar)
        net.start()
        net.run(60)
        self.assertGreater(min(net.heights()), 8)
        for host in net.hosts:
            self.assertNotIn(liar, {b.header.proposer for b, _ in host.committed})
        self.assertGreater(sum(s.bad_blocks for s in net.services[1:]), 0)
        self.assertEqual(len(net.hashes_at(min(net.heights()))), 1)

    def test_getblocks_is_answered_from_the_chain(self):
        net = Network(self, 4)
        net.start()
        net.run(12)
        endpoint = net.mesh.endpoints[0]
        endpoint.sent.clear()
        endpoint.handlers[m.GETBLOCKS](2, GetBlocks(1, 3))
        (dst, answer), = [(d, msg) for d, msg in endpoint.sent if msg.KIND == m.BLOCKS]
        self.assertEqual(dst, 1)
        self.assertEqual(len(answer.entries), 3)
        for height, (block_bytes, cert_bytes, bodies) in enumerate(answer.entries, 1):
            self.assertEqual(bodies, ())
            self.assertEqual(block_bytes, net.hosts[0].block_at(height).encode())
            self.assertEqual(CommitCertificate.decode(cert_bytes),
                             net.hosts[0].certificate_at(height))


class BlockMessageTests(unittest.TestCase):
    def test_round_trips(self):
        key = PrivateKey.devnet(0)
        vote = Vote(PRECOMMIT, 3, 1, b"\1" * 32, key.pubkey, b"\2" * 64)
        block = FakeBlockHost(DEVNET.network_id, {key.pubkey: 1}).build_block(
            0, key.pubkey, 1_000_000)
        for message in (BlockPrecommitMessage(vote), GetBlocks(5, 16),
                        Blocks(((block.encode(), b"cert", ()),)), Blocks(())):
            self.assertEqual(decode_message(encode_message(message)), message)

    def test_a_vote_of_the_wrong_type_is_refused(self):
        key = PrivateKey.devnet(0)
        vote = Vote(PRECOMMIT, 3, 1, b"\1" * 32, key.pubkey, b"\2" * 64)
        data = bytearray(encode_message(BlockPrecommitMessage(vote)))
        data[0:2] = m.BLOCK_PREVOTE.to_bytes(2, "little")
        with self.assertRaises(m.DecodeError):
            decode_message(bytes(data))
        self.assertIsNotNone(BlockPrevoteMessage)
        self.assertIsNotNone(BlockProposalMessage)


class CertificatesVerifyAsProofsTests(unittest.TestCase):
    """The block service and the proof verifier sign and check over one
    network id (``signing_network_id``): what one commits, the other accepts."""

    def test_a_certificate_the_service_made_verifies_in_a_finality_proof(self):
        genesis = make_genesis(DEVNET, 4)  # dev keys 0..3, Bronze: the Network's set
        net = Network(self, 4)
        txids = (b"\x11" * 32, b"\x22" * 32, b"\x33" * 32)
        for host in net.hosts:
            host.txids = txids
        net.start()
        net.run(5)
        block, certificate = net.hosts[2].committed[0]
        self.assertEqual(network_tag(DEVNET.network_id), signing_network_id(DEVNET))
        proof = make_proof(genesis, (), block, certificate, txids[1]).encode()
        checked = verify_proof(proof, genesis, txid=txids[1])
        self.assertEqual((checked.height, checked.header.hash), (1, block.hash))
        # Signed for devnet: the same certificate under another network's id fails.
        with self.assertRaises(CertificateError) as caught:
            verify_certificate(certificate, ValidatorSet.from_stakes(genesis_set(genesis)),
                               signing_network_id(TESTNET), ed25519_verify,
                               height=1, block_hash=block.hash)
        self.assertEqual(caught.exception.reason, "bad-signature")
