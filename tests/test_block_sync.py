"""Block sync against lying peers: a follower fetches from several peers of an
in-memory mesh, one of which alters what it serves; each kind of lie bans it,
and the follower ends with the honest chain."""

import dataclasses

from twisted.trial import unittest

from tests.test_block_service import Network
from timecoin.consensus.bft_messages import PRECOMMIT, Vote
from timecoin.consensus.certificate import CommitCertificate, Evidence
from timecoin.finality.block_fetcher import BlockFetcher
from timecoin.finality.block_messages import Blocks, Tip
from timecoin.finality.blocks import network_tag
from timecoin.ledger.block import Block
from timecoin.ledger.networks import DEVNET
from timecoin.p2p import messages as m

TAG = network_tag(DEVNET.network_id)
LIAR, FOLLOWER = 2, 4


def signed(keys, certificate):
    """``certificate`` signed by ``keys`` instead (sorted, as the rules want)."""
    sigs = tuple(sorted((k.pubkey, k.sign(certificate.sign_bytes(TAG))) for k in keys))
    return dataclasses.replace(certificate, signatures=sigs)


class LyingPeerTests(unittest.TestCase):
    def chain(self, seconds=30, validators=4, evidence_of=None):
        """Masternodes 0-3 (the first ``validators`` active) commit blocks
        while the follower (4) is off; ``evidence_of``: a masternode whose
        double signing every node holds evidence of (block 1 deactivates it)."""
        net = Network(self, 5, validators=validators)
        net.mesh.down.add(FOLLOWER)
        if evidence_of is not None:
            key = net.keys[evidence_of]
            votes = [Vote(PRECOMMIT, 1, 0, h, key.pubkey) for h in (b"\1" * 32, b"\2" * 32)]
            votes = [dataclasses.replace(v, signature=key.sign(v.sign_bytes(TAG)))
                     for v in votes]
            for service in net.services:
                self.assertTrue(service.evidence_pool.add(Evidence.of(*votes)))
        net.start([0, 1, 2, 3])
        net.run(seconds)
        self.assertGreater(net.hosts[0].height(), 8)
        return net

    def sync(self, net, lie):
        """The follower starts with a small batch (so every peer gets ranges);
        the liar answers its requests with ``lie(height, block, certificate)``
        -> ``(block bytes, certificate bytes)`` entries (the bodies are added),
        ``None`` to leave a
        height out (and every one after it)."""
        liar = net.mesh.endpoints[LIAR]
        honest_answer = liar.handlers[m.GETBLOCKS]

        def answer(peer_id, message):
            if peer_id - 1 != FOLLOWER:
                return honest_answer(peer_id, message)
            entries = []
            top = min(net.hosts[LIAR].height(), message.from_height + message.limit - 1)
            for height in range(message.from_height, top + 1):
                host = net.hosts[LIAR]
                block = host.block_at(height)
                entry = lie(height, block, host.certificate_at(height))
                if entry is None:
                    break
                # The bodies the block confirms, as an honest server adds them.
                entries.append(tuple(entry) + (tuple(host.bodies[t] for t in block.txids),))
            liar.send(peer_id, Blocks(tuple(entries)))
        liar.handlers[m.GETBLOCKS] = answer
        net.mesh.down.discard(FOLLOWER)
        follower = net.services[FOLLOWER]
        follower.fetcher = BlockFetcher(batch=2, window=8, per_peer=2)
        follower.startService()
        net.run(30)
        return follower

    def assert_liar_banned_and_chain_honest(self, net, follower, reason):
        bans = [(a, b) for a, b, _ in net.mesh.bans]
        self.assertEqual(bans, [(FOLLOWER, LIAR)], net.mesh.bans)
        self.assertIn(reason, net.mesh.bans[0][2])
        self.assertEqual(follower.peers_banned, 1)
        self.assertEqual(follower.fetcher.banned, {LIAR + 1})
        top = net.hosts[FOLLOWER].height()
        self.assertGreaterEqual(top, min(net.heights([0, 1, 3])) - 1)
        for height in range(1, top + 1):
            self.assertEqual(net.hosts[FOLLOWER].block_at(height).hash,
                             net.hosts[0].block_at(height).hash, height)

    def test_honest_peers_serve_in_parallel_and_nobody_is_banned(self):
        net = self.chain()
        follower = self.sync(net, lambda h, b, c: (b.encode(), c.encode()))
        self.assertEqual(net.mesh.bans, [])
        self.assertGreaterEqual(net.hosts[FOLLOWER].height(), net.hosts[0].height() - 1)
        asked = {dst for dst, message in net.mesh.endpoints[FOLLOWER].sent
                 if message.KIND == m.GETBLOCKS}
        self.assertEqual(asked, {0, 1, 2, 3})
        self.assertGreater(follower.synced, 8)

    def test_a_certificate_one_signature_short_of_two_thirds(self):
        net = self.chain()

        def lie(height, block, certificate):
            short = dataclasses.replace(certificate, signatures=certificate.signatures[:2])
            return block.encode(), short.encode()
        follower = self.sync(net, lie)
        self.assert_liar_banned_and_chain_honest(net, follower, "insufficient-stake")

    def test_a_signature_by_a_masternode_outside_the_set(self):
        # Masternode 3 runs and is known, but is not in the active set.
        net = self.chain(validators=3)

        def lie(height, block, certificate):
            return block.encode(), signed([net.keys[0], net.keys[1], net.keys[3]],
                                          certificate).encode()
        follower = self.sync(net, lie)
        self.assert_liar_banned_and_chain_honest(net, follower, "unknown-signer")

    def test_a_signature_by_a_deactivated_masternode(self):
        # Block 1 deactivates masternode 3 (it double signed): from height 2
        # on, its signature no longer counts; before, it did.
        net = self.chain(seconds=40, evidence_of=3)
        self.assertEqual(net.hosts[0].block_at(1).header.deactivated, (net.keys[3].pubkey,))

        def lie(height, block, certificate):
            if height < 2:
                return block.encode(), certificate.encode()
            return block.encode(), signed([net.keys[0], net.keys[1], net.keys[3]],
                                          certificate).encode()
        follower = self.sync(net, lie)
        self.assert_liar_banned_and_chain_honest(net, follower, "unknown-signer")

    def test_a_certificate_for_another_block(self):
        net = self.chain()

        def lie(height, block, certificate):
            other = net.hosts[LIAR].certificate_at(height + 1) or certificate
            return block.encode(), CommitCertificate(
                height, other.round, other.block_hash, other.signatures).encode()
        follower = self.sync(net, lie)
        self.assert_liar_banned_and_chain_honest(net, follower, "another block")

    def test_a_block_whose_tx_root_does_not_match_its_txids(self):
        net = self.chain()

        def lie(height, block, certificate):
            # The header's Merkle root altered (bodies still match the txids;
            # a txid list altered instead is refused by the decoder itself).
            header = dataclasses.replace(block.header, tx_root=b"\x99" * 32)
            altered = Block(header, block.txids, block.reward_tx, block.last_commit)
            return altered.encode(), certificate.encode()
        follower = self.sync(net, lie)
        self.assert_liar_banned_and_chain_honest(net, follower, "tx_root")

    def test_a_header_set_hash_that_applying_it_does_not_give(self):
        # Even with a certificate that verifies (re-signed by the set, in a
        # later round than the honest one: the set never signed two blocks in
        # one round), a block whose masternode_set_hash is not what applying
        # it gives here is refused, and its supplier banned.
        net = self.chain()

        def lie(height, block, certificate):
            header = dataclasses.replace(block.header, masternode_set_hash=b"\x66" * 32)
            altered = Block(header, block.txids, block.reward_tx)
            forged = signed(net.keys[:3], CommitCertificate(
                height, certificate.round + 5, altered.hash, ()))
            return altered.encode(), forged.encode()
        follower = self.sync(net, lie)
        self.assert_liar_banned_and_chain_honest(net, follower, "wrong set hash")

    def test_an_old_chain_claimed_as_the_tip(self):
        net = self.chain()
        follower = self.sync(net, lambda h, b, c: (b.encode(), c.encode()) if h <= 2 else None)
        self.assert_liar_banned_and_chain_honest(net, follower, "claimed tip")

    def test_a_tip_is_answered_by_a_peer_above_only(self):
        net = self.chain()
        net.mesh.down.discard(FOLLOWER)
        endpoint = net.mesh.endpoints[0]
        endpoint.sent.clear()
        handler = endpoint.handlers[m.BLOCK_TIP]
        handler(5, Tip(net.hosts[0].height() + 3))
        handler(5, Tip(1))
        handler(5, Tip(1))  # once per sync interval
        tips = [(dst, msg) for dst, msg in endpoint.sent if msg.KIND == m.BLOCK_TIP]
        self.assertEqual(tips, [(4, Tip(net.hosts[0].height()))])

    def test_a_slow_peer_is_left_out_not_banned(self):
        net = self.chain()
        # The liar's replies to the follower never arrive.
        net.mesh.filter = lambda src, dst, message: not (
            (src, dst) == (LIAR, FOLLOWER) and message.KIND == m.BLOCKS)
        follower = self.sync(net, lambda h, b, c: (b.encode(), c.encode()))
        self.assertEqual(net.mesh.bans, [])
        self.assertGreater(follower.fetcher.timeouts, 0)
        self.assertGreaterEqual(net.hosts[FOLLOWER].height(), min(net.heights([0, 1, 3])) - 1)

