"""Blocks replies carry the transactions' bodies: the wire format, paging by
bytes, and the block service handing them to the host (fakes, a Clock)."""

from twisted.trial import unittest

from tests.support import devnet_funding, transfer
from tests.test_block_service import Network
from timecoin.consensus.certificate import CommitCertificate
from timecoin.finality import block_messages, block_sync
from timecoin.finality.block_messages import Blocks, GetBlocks
from timecoin.ledger.encoding import DecodeError
from timecoin.p2p import messages as m
from timecoin.p2p.messages import decode_message, encode_message

KEY0, OP0, AMOUNT0 = devnet_funding(0)
KEY1, OP1, AMOUNT1 = devnet_funding(1)
TO = devnet_funding(9)[0].key_hash
A = transfer(KEY0, [OP0], [(AMOUNT0 // 2, TO)], total=AMOUNT0)
C = transfer(KEY1, [OP1], [(AMOUNT1 // 2, TO)], total=AMOUNT1)


def network_with_bodies(testcase, txs, follower_has=False):
    """Four validators and a follower (index 4) cut off from them; every block
    holds ``txs``, which the validators serve and the follower lacks."""
    net = Network(testcase, 5, validators=4)
    for i, host in enumerate(net.hosts):
        host.txids = tuple(tx.txid for tx in txs)
        if i < 4 or follower_has:
            host.bodies = {tx.txid: tx.raw for tx in txs}
        else:
            host.missing = {tx.txid for tx in txs}
    return net


class BlocksWireTests(unittest.TestCase):
    def setUp(self):
        net = network_with_bodies(self, (A, C))
        net.start([0, 1, 2, 3])
        net.run(5)
        self.block, self.certificate = net.hosts[0].committed[0]

    def entry(self, bodies):
        return (self.block.encode(), self.certificate.encode(), bodies)

    def test_bodies_round_trip(self):
        message = Blocks((self.entry((A.raw, C.raw)),))
        self.assertEqual(decode_message(encode_message(message)), message)

    def test_bodies_that_are_not_the_blocks_txids_in_order_are_refused(self):
        for bodies in ((C.raw, A.raw), (A.raw,), (A.raw, C.raw, C.raw), (A.raw, b"junk")):
            data = encode_message(Blocks((self.entry(bodies),)))
            with self.assertRaises(DecodeError):
                decode_message(data)

    def test_a_reply_over_the_byte_bound_is_refused(self):
        message = Blocks((self.entry((A.raw, C.raw)),) * 3)
        size = 3 * block_messages.entry_size(*self.entry((A.raw, C.raw)))
        data = encode_message(message)
        self.patch(block_messages, "MAX_REPLY_BYTES", size - 1)
        with self.assertRaises(DecodeError):
            decode_message(data)
        with self.assertRaises(ValueError):
            encode_message(message)


class CertifiedBodiesTests(unittest.TestCase):
    def test_a_follower_lacking_the_transactions_applies_blocks_with_their_bodies(self):
        net = network_with_bodies(self, (A, C))
        net.start()
        net.run(30)
        follower = net.hosts[4]
        self.assertGreaterEqual(follower.height(), 5)
        self.assertEqual(follower.block_at(1).hash, net.hosts[0].block_at(1).hash)
        self.assertEqual(set(follower.committed_bodies), {(A.raw, C.raw)})
        self.assertGreater(net.services[4].synced, 0)

    def test_without_bodies_served_it_waits(self):
        net = network_with_bodies(self, (A,))
        for host in net.hosts[:4]:
            host.bodies = {}  # they cannot serve the bodies: empty replies
        net.start()
        net.run(20)
        self.assertGreater(min(net.heights([0, 1, 2, 3])), 3)
        self.assertEqual(net.hosts[4].height(), 0)

    def deliver(self, net, *entries):
        net.mesh.endpoints[4].handlers[m.BLOCKS](1, Blocks(tuple(entries)))
        net.run(1)

    def cut_off_follower(self):
        net = network_with_bodies(self, (A, C))
        net.start([0, 1, 2, 3])
        net.run(5)
        net.mesh.filter = lambda src, dst, message: 4 not in (src, dst)
        net.services[4].startService()
        block, certificate = net.hosts[0].committed[0]
        return net, block, certificate

    def test_bodies_that_do_not_verify_are_not_applied(self):
        net, block, certificate = self.cut_off_follower()
        entry = (block.encode(), certificate.encode(), (A.raw, C.raw))
        net.hosts[4].lying_bodies.add(block.hash)
        self.deliver(net, entry)
        self.assertEqual(net.hosts[4].height(), 0)
        self.assertEqual(net.services[4].lying_peers, 1)
        # From an honest peer, later: applied.
        net.hosts[4].lying_bodies.clear()
        self.deliver(net, entry)
        self.assertEqual(net.hosts[4].height(), 1)
        self.assertEqual(net.hosts[4].committed_bodies, [(A.raw, C.raw)])

    def test_a_certificate_one_signature_short_of_two_thirds_is_not_applied(self):
        net, block, certificate = self.cut_off_follower()
        # 4 validators of equal stake: 3 signatures are > 2/3, 2 are one short.
        self.assertGreaterEqual(len(certificate.signatures), 3)
        short = CommitCertificate(1, certificate.round, block.hash, certificate.signatures[:2])
        self.deliver(net, (block.encode(), short.encode(), (A.raw, C.raw)))
        self.assertEqual(net.hosts[4].height(), 0)
        self.assertEqual(net.hosts[4].committed_bodies, [])
        enough = CommitCertificate(1, certificate.round, block.hash, certificate.signatures[:3])
        self.deliver(net, (block.encode(), enough.encode(), (A.raw, C.raw)))
        self.assertEqual(net.hosts[4].height(), 1)

    def test_replies_are_paged_by_bytes(self):
        net = network_with_bodies(self, (A, C))
        net.start([0, 1, 2, 3])
        net.run(12)
        self.assertGreaterEqual(net.hosts[0].height(), 4)
        block, certificate = net.hosts[0].committed[0]
        one = block_messages.entry_size(block.encode(), certificate.encode(), (A.raw, C.raw))
        self.patch(block_sync, "MAX_REPLY_BYTES", 2 * one + one // 2)
        endpoint = net.mesh.endpoints[0]
        endpoint.sent.clear()
        endpoint.handlers[m.GETBLOCKS](2, GetBlocks(1, 4))
        (answer,) = [msg for _, msg in endpoint.sent if msg.KIND == m.BLOCKS]
        self.assertEqual(len(answer.entries), 2)
        self.assertEqual([e[2] for e in answer.entries], [(A.raw, C.raw)] * 2)
