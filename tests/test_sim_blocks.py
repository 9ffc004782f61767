"""Blocks on the whole-node simulator: real nodes, one clock, in-memory links."""

import dataclasses

from prometheus_client import generate_latest
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from timecoin.consensus.bft_messages import Vote
from timecoin.finality.blocks import network_tag
from timecoin.interfaces import IPeerMessaging
from timecoin.ledger.networks import COIN, DEVNET, TESTNET
from timecoin.ledger.tx import TxRejected
from timecoin.sim import scenario
from timecoin.sim.block_liar import LyingBlockServer
from timecoin.sim.byzantine import SilentVotes
from timecoin.sim.cluster import Cluster


def make_cluster(testcase, size, listener=None, **options):
    cluster = Cluster(size, **options)
    testcase.addCleanup(cluster.close)
    if listener is not None:
        cluster.add_start_listener(listener)
    cluster.start()
    return cluster


def heights(cluster, indices=None):
    nodes = cluster.nodes
    return [nodes[i].chain.height() for i in (range(len(nodes)) if indices is None else indices)]


def assert_one_chain(testcase, cluster, indices=None):
    """Every node's blocks up to the lowest height are the same blocks."""
    nodes = [n for i, n in enumerate(cluster.nodes) if indices is None or i in indices]
    top = min(n.chain.height() for n in nodes)
    for height in range(1, top + 1):
        blocks = {n.chain.block_at(height).hash for n in nodes}
        testcase.assertEqual(len(blocks), 1, f"height {height}: {len(blocks)} blocks")
        headers = {n.chain.block_at(height).header.utxo_set_hash for n in nodes}
        testcase.assertEqual(len(headers), 1)
    return top


class BlockProductionTests(unittest.TestCase):
    def produce(self, size, seconds=30):
        cluster = make_cluster(self, size, seed=size)
        txs = [scenario.transfer_from_genesis(i) for i in range(size)]
        txids = [cluster.wait(cluster.submit(i, tx), 10) for i, tx in enumerate(txs)]
        start = cluster.clock.seconds()
        cluster.run(seconds)
        top = assert_one_chain(self, cluster)
        # One block per interval (the height starts an interval after each commit).
        expected = seconds / DEVNET.block_interval_s
        self.assertGreaterEqual(top, expected - 3, heights(cluster))
        self.assertLessEqual(max(heights(cluster)), expected + 1, heights(cluster))
        times = [cluster.nodes[0].chain.block_at(h).header.time for h in range(2, top + 1)]
        self.assertTrue(all(2 <= b - a <= 3 for a, b in zip(times, times[1:], strict=False)), times)
        self.assertGreaterEqual(times[0], int(start))
        # Every transaction is confirmed, in one block, on every node.
        for txid in txids:
            statuses = [cluster.status(i, txid) for i in range(size)]
            self.assertEqual({s["status"] for s in statuses}, {"confirmed"}, statuses)
            self.assertEqual(len({s["block_height"] for s in statuses}), 1)
        # The set at the best common block is the one every node reports, once
        # nothing else is finalized and every node holds the same blocks.
        cluster.run_until(lambda: len(set(heights(cluster))) == 1, 10)
        best = cluster.nodes[0].chain.block_at(cluster.nodes[0].chain.height())
        self.assertEqual(set(cluster.set_hashes()), {best.header.utxo_set_hash.hex()})
        return cluster

    def test_four_masternodes(self):
        cluster = self.produce(4)
        # Each masternode proposed: rewards reached every one of them.
        proposers = {cluster.nodes[0].chain.block_at(h).header.proposer
                     for h in range(1, cluster.nodes[0].chain.height() + 1)}
        self.assertEqual(len(proposers), 4)
        # The block metrics, as /metrics shows them.
        text = generate_latest(cluster.nodes[0].metrics.registry).decode()
        height = cluster.nodes[0].chain.height()
        self.assertIn(f"timecoin_block_height {float(height)}", text)
        self.assertIn('timecoin_block_rounds_bucket{le="1"}', text)
        self.assertIn("timecoin_block_commit_seconds_count", text)
        self.assertIn("timecoin_block_missed_proposals_total 0.0", text)
        rounds = [line for line in text.splitlines()
                  if line.startswith("timecoin_block_rounds_count")]
        self.assertTrue(rounds and float(rounds[0].split()[1]) >= height - 1, rounds)

    def test_ten_masternodes(self):
        self.produce(10)

    def test_one_crashed_masternode_of_four_does_not_stop_blocks(self):
        cluster = make_cluster(self, 4, seed=7)
        cluster.run(10)
        before = min(heights(cluster))
        cluster.stop_node(3)
        cluster.run(40)
        after = heights(cluster, [0, 1, 2])
        self.assertGreaterEqual(min(after), before + 12, after)
        assert_one_chain(self, cluster, [0, 1, 2])
        # Back again, it replays its stored blocks, fetches what it missed and
        # follows the others, with the same UTXO set at the same height.
        back = cluster.start_node(3)
        self.assertEqual(back.chain.height(), before)
        cluster.run(30)
        self.assertLessEqual(max(heights(cluster)) - min(heights(cluster)), 1, heights(cluster))
        assert_one_chain(self, cluster)
        self.assertGreater(back.block_service.synced, 0)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1
                          and len(set(cluster.set_hashes())) == 1, 10)

    def test_fewer_than_three_masternodes_commit_nothing_on_testnet_rules(self):
        def testnet_minimum(index, node):
            node.block_service.min_validators = TESTNET.min_masternodes
        cluster = make_cluster(self, 2, listener=testnet_minimum, seed=3)
        cluster.run(30)
        self.assertEqual(heights(cluster), [0, 0])
        self.assertFalse(any(n.block_service.is_validator() for n in cluster.nodes))


def equivocating_signer(offender):
    """A start listener: masternode ``offender`` signs, next to each of its
    prevotes and precommits for a block, a second one for another block."""
    def listener(index, node):
        if index != offender:
            return
        service = node.block_service
        honest_broadcast = service._broadcast

        def broadcast(message):
            honest_broadcast(message)
            if isinstance(message, Vote) and message.block_hash:
                twin = Vote(message.msg_type, message.height, message.round, b"\xee" * 32,
                            message.validator)
                signature = service._key.sign(twin.sign_bytes(network_tag(DEVNET.network_id)))
                honest_broadcast(dataclasses.replace(twin, signature=signature))
        service._broadcast = broadcast
    return listener


class AccountabilityTests(unittest.TestCase):
    def test_an_equivocating_masternode_is_deactivated_by_a_block_on_every_node(self):
        cluster = make_cluster(self, 4, listener=equivocating_signer(3), seed=11)
        offender = cluster.nodes[3].block_service._key.pubkey
        cluster.run(20)
        deactivated_at = set()
        for node in cluster.nodes:
            self.assertNotIn(offender, node.chain.registry.active_set())
            self.assertEqual(len(node.chain.registry.active_set()), 3)
            heights_ = [h for h in range(1, node.chain.height() + 1)
                        if offender in node.chain.block_at(h).header.deactivated]
            self.assertEqual(len(heights_), 1)
            deactivated_at.update(heights_)
        self.assertEqual(len(deactivated_at), 1)
        self.assertGreater(sum(n.block_service.evidence for n in cluster.nodes[:3]), 0)
        # The other three keep committing, one chain; the offender follows.
        before = min(heights(cluster, [0, 1, 2]))
        cluster.run(20)
        self.assertGreaterEqual(min(heights(cluster, [0, 1, 2])), before + 7)
        self.assertFalse(cluster.nodes[3].block_service.is_validator())
        assert_one_chain(self, cluster)
        # A transfer still finalizes and is confirmed by the three.
        txid = cluster.wait(cluster.submit(0, scenario.transfer_from_genesis(0)), 10)
        cluster.run(10)
        self.assertEqual({cluster.status(i, txid)["status"] for i in range(3)}, {"confirmed"})


#: Unanimity for confidence over samples of the whole set: with two
#: masternodes withholding their votes no poll reaches ``alpha``, and a set
#: stalls after ``max_rounds``.
UNANIMOUS = """
[consensus.avalanche]
sample_size = 4
alpha = 1.0
alpha_preference = 0.75
beta = 3
finality_confidence = 3
max_rounds = 5
"""


class StalledSetTests(unittest.TestCase):
    def stalled_race(self, seed=11):
        """``a`` reaches every node before its rival ``b``; nodes 0 and 2
        withhold their Snowball votes (not their block votes), so the set
        stalls everywhere with every vote for ``a``."""
        cluster = make_cluster(self, 4, seed=seed, config_text=UNANIMOUS)
        cluster.make_byzantine(0, SilentVotes())
        cluster.make_byzantine(2, SilentVotes())
        a = scenario.transfer_from_genesis(5, COIN)
        b = scenario.transfer_from_genesis(5, 2 * COIN)
        cluster.wait(cluster.submit(1, a), 10)
        cluster.run_until(lambda: all(n.mempool.get(a.txid) for n in cluster.nodes), 10,
                          "a everywhere")
        try:
            cluster.wait(cluster.submit(3, b), 10)
        except TxRejected:
            pass
        self.cluster = cluster
        cluster.run_until(lambda: all(n.finality.stalled() for n in cluster.nodes), 20,
                          "the set stalled everywhere")
        return cluster, a, b

    def test_a_block_decides_a_stalled_set_identically_on_every_node(self):
        cluster, a, b = self.stalled_race()
        # A block decides it: the same member confirmed in the same block everywhere.
        cluster.run_until(lambda: {s for pair in map(cluster.statuses, (a.txid, b.txid))
                                   for s in pair} <= {"confirmed", "rejected"}, 30,
                          "a block decided the set")
        pairs = set(zip(cluster.statuses(a.txid), cluster.statuses(b.txid), strict=True))
        # The member every node voted for: a node never votes a block for a
        # member whose rival it answered "yes" for.
        self.assertEqual(pairs, {("confirmed", "rejected")})
        winner, loser = a, b
        heights_of = {cluster.status(i, winner.txid)["block_height"] for i in range(4)}
        self.assertEqual(len(heights_of), 1)
        (height,) = heights_of
        block = cluster.nodes[0].chain.block_at(height)
        self.assertIn(winner.txid, block.txids)
        for i in range(4):
            self.assertEqual(cluster.status(i, loser.txid)["reason"],
                             f"conflict: decided by block {height}")
        assert_one_chain(self, cluster)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1, 10)
        self.assertEqual(len(set(cluster.set_hashes())), 1)


class BlockSyncTests(unittest.TestCase):
    def test_a_lagging_node_syncs_from_several_peers_and_bans_the_liar(self):
        lagging, liar = 3, 2
        servers = {}

        def lying_server(index, node):
            if index == liar:
                service = node.block_service
                servers[index] = service._network = LyingBlockServer(service._network, ())
        cluster = make_cluster(self, 4, listener=lying_server, seed=21)
        server = servers[liar]
        verifyObject(IPeerMessaging, server)
        server.victims.add(cluster.nodes[lagging].block_service._key.pubkey)
        cluster.run(6)
        cluster.stop_node(lagging)
        cluster.run(160)
        back = cluster.start_node(lagging)
        self.assertGreaterEqual(min(heights(cluster, [0, 1, 2])) - back.chain.height(), 50)
        cluster.run_until(lambda: len(set(heights(cluster))) == 1
                          and len(set(cluster.set_hashes())) == 1, 60,
                          "the lagging node caught up")
        assert_one_chain(self, cluster)
        # The liar served it short certificates and was banned for them.
        self.assertGreater(server.lies, 0)
        service = back.block_service
        self.assertEqual(service.peers_banned, 1)
        self.assertEqual(len(service.fetcher.banned), 1)
        banned = [b["address"] for b in back.peer_network.list_banned()]
        self.assertEqual(banned, [cluster.hosts[liar].ip])
        self.assertIn("certificate", back.peer_network.list_banned()[0]["reason"])
        # What it applied came with certificates, from the honest peers.
        self.assertGreaterEqual(service.synced, 50)
        # ... from several of them at once.
        suppliers = [p for p, n in service.fetcher.received_from.items() if n > 0]
        self.assertGreaterEqual(len(suppliers), 2, service.fetcher.received_from)
